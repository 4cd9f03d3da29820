//! The `payymo_refresh` cookie: where a browser portal keeps its refresh token, out of reach of
//! JavaScript (`HttpOnly`), sent only to the session endpoints (`Path=/api/v1/auth`) and never on
//! a request started by another site (`SameSite=Strict`).

use std::time::Duration;

use axum::http::{HeaderMap, header};

pub const NAME: &str = "payymo_refresh";

/// Where the cookie is sent: the session endpoints, and nothing else.
const ATTRIBUTES: &str = "Path=/api/v1/auth; HttpOnly; SameSite=Strict";

/// Whether the cookie may travel only over HTTPS: when the public URL is `https://`. Without a
/// public URL the service answers on its bound address over plain HTTP (local development),
/// where a `Secure` cookie would never come back.
pub fn secure_for(public_url: Option<&str>) -> bool {
    public_url.is_some_and(|url| url.starts_with("https://"))
}

/// The `Set-Cookie` value that stores `token` for `max_age`.
pub fn set(token: &str, max_age: Duration, secure: bool) -> String {
    format!("{NAME}={token}; {ATTRIBUTES}; Max-Age={}{}", max_age.as_secs(), secure_suffix(secure))
}

/// The `Set-Cookie` value that makes the browser forget the cookie.
pub fn clear(secure: bool) -> String {
    format!("{NAME}=; {ATTRIBUTES}; Max-Age=0{}", secure_suffix(secure))
}

fn secure_suffix(secure: bool) -> &'static str {
    if secure { "; Secure" } else { "" }
}

/// The refresh token in the request's `Cookie` headers, if any (an empty value counts as none).
pub fn read(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(NAME)?.strip_prefix('='))
        .find(|token| !token.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn cookies(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::COOKIE, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped_to_the_session_endpoints() {
        assert_eq!(
            set("rt_abc", Duration::from_secs(2_592_000), false),
            "payymo_refresh=rt_abc; Path=/api/v1/auth; HttpOnly; SameSite=Strict; Max-Age=2592000"
        );
        assert_eq!(
            set("rt_abc", Duration::from_secs(60), true),
            "payymo_refresh=rt_abc; Path=/api/v1/auth; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert_eq!(clear(false), "payymo_refresh=; Path=/api/v1/auth; HttpOnly; SameSite=Strict; Max-Age=0");
    }

    #[test]
    fn secure_only_behind_an_https_public_url() {
        assert!(secure_for(Some("https://pay.example.com")));
        assert!(!secure_for(Some("http://127.0.0.1:8080")));
        assert!(!secure_for(None));
    }

    #[test]
    fn the_token_is_found_among_other_cookies_and_headers() {
        assert_eq!(read(&cookies(&["payymo_refresh=rt_1"])).as_deref(), Some("rt_1"));
        assert_eq!(read(&cookies(&["theme=dark;  payymo_refresh=rt_2 ; lang=en"])).as_deref(), Some("rt_2"));
        assert_eq!(read(&cookies(&["theme=dark", "payymo_refresh=rt_3"])).as_deref(), Some("rt_3"));
        assert_eq!(read(&cookies(&["payymo_refresh_old=rt_4; xpayymo_refresh=rt_5"])), None);
        assert_eq!(read(&cookies(&["payymo_refresh="])), None);
        assert_eq!(read(&HeaderMap::new()), None);
    }
}
