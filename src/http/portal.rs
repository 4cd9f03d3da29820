//! The reference client portal at `/app`: plain ES modules and one stylesheet (`assets/portal/`),
//! compiled into the binary and served under a content hash with a year of caching, behind a
//! strict Content-Security-Policy. The portal calls nothing but the public `/api/v1`, exactly as
//! a customer's own portal would; this module only hands out its files.
//!
//! Every asset lives under `/app/assets/{hash}/`, where `hash` covers all of them: the modules
//! import each other by relative path, so one hash in the directory name versions them together
//! and no import needs rewriting. The page itself (`/app`) is never cached, so a new binary's
//! page names the new hash at once.

use std::sync::LazyLock;

use axum::{
    Router,
    extract::Path,
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// A file of the portal.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $content_type:literal),+ $(,)?) => {
        &[$(Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../../assets/portal/", $name)),
        }),+]
    };
}

const ASSETS: &[Asset] = assets![
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "ui.js" => "text/javascript; charset=utf-8",
    "overview.js" => "text/javascript; charset=utf-8",
    "transactions.js" => "text/javascript; charset=utf-8",
    "inbox.js" => "text/javascript; charset=utf-8",
    "matches.js" => "text/javascript; charset=utf-8",
    "invoices.js" => "text/javascript; charset=utf-8",
    "banks.js" => "text/javascript; charset=utf-8",
    "developers.js" => "text/javascript; charset=utf-8",
    "portal.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
];

const PAGE: &str = include_str!("../../assets/portal/index.html");

/// Scripts and styles from our own origin only, no inline script or style, calls to our own
/// API only, and never framed.
pub const PORTAL_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

/// The hash of every asset together, and the page naming it.
struct Build {
    hash: String,
    page: String,
}

static BUILD: LazyLock<Build> = LazyLock::new(|| {
    let mut digest = Sha256::new();
    for asset in ASSETS {
        digest.update(asset.name.as_bytes());
        digest.update([0]);
        digest.update(asset.body);
    }
    let hash: String = digest.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    let page = PAGE.replace("{{assets}}", &format!("/app/assets/{hash}"));
    Build { hash, page }
});

pub fn router() -> Router<AppState> {
    Router::new().route("/app", get(page)).route("/app/", get(page)).route("/app/assets/{hash}/{name}", get(asset))
}

async fn page() -> Response {
    ([(header::CONTENT_SECURITY_POLICY, PORTAL_CSP), (header::CACHE_CONTROL, "no-cache")], Html(BUILD.page.clone()))
        .into_response()
}

/// An asset of this build; another build's hash is a 404, so a stale page cannot mix versions.
async fn asset(Path((hash, name)): Path<(String, String)>) -> Response {
    match ASSETS.iter().find(|a| a.name == name).filter(|_| hash == BUILD.hash) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, ASSET_CACHE),
                (header::CONTENT_SECURITY_POLICY, PORTAL_CSP),
            ],
            asset.body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_this_builds_assets_and_has_no_inline_script() {
        assert!(BUILD.page.contains(&format!("/app/assets/{}/app.js", BUILD.hash)));
        assert!(!BUILD.page.contains("{{assets}}"));
        assert_eq!(BUILD.page.matches("<script").count(), BUILD.page.matches("<script type=\"module\" src=").count());
        assert!(!BUILD.page.contains("style=\""), "inline styles break the CSP");
    }

    #[test]
    fn every_module_imports_only_files_that_are_served() {
        let import = regex::Regex::new(r#"from "\./([a-z]+\.js)""#).expect("regex");
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).expect("utf-8");
            for found in import.captures_iter(text) {
                assert!(ASSETS.iter().any(|a| a.name == &found[1]), "{} imports {}", asset.name, &found[1]);
            }
        }
    }
}
