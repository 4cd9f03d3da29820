//! Interactive API documentation at `/docs` (Swagger UI), with every asset compiled into the
//! binary so it renders on a machine with no internet; and the error catalogue at
//! `/docs/errors`, which the `type` of every problem points into.

use axum::{
    Router,
    http::header,
    response::{Html, IntoResponse},
    routing::get,
};

use crate::state::AppState;

const INDEX: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Payymo core API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/init.js"></script>
</body>
</html>
"#;

/// `validatorUrl: null` keeps Swagger UI from calling its public validator.
const INIT: &str = r##"window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
"##;

const BUNDLE: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");
const ERRORS: &str = include_str!("../../docs/errors.md");

/// Only our own scripts and styles; Swagger UI sets some inline styles and data-URI images.
const DOCS_CSP: &str =
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";
const ASSET_CACHE: &str = "public, max-age=86400";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/docs", get(|| async { ([(header::CONTENT_SECURITY_POLICY, DOCS_CSP)], Html(INDEX)) }))
        .route("/docs/errors", get(|| async { ([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], ERRORS) }))
        .route("/docs/assets/init.js", get(|| async { asset("text/javascript; charset=utf-8", INIT.as_bytes()) }))
        .route("/docs/assets/swagger-ui-bundle.js", get(|| async { asset("text/javascript; charset=utf-8", BUNDLE) }))
        .route("/docs/assets/swagger-ui.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
}

fn asset(content_type: &'static str, body: &'static [u8]) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, ASSET_CACHE)], body)
}
