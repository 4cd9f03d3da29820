//! `/docs` works with no internet: every asset it loads is ours.

use crate::support::TestApp;

#[tokio::test]
async fn docs_page_loads_only_local_assets() {
    let app = TestApp::spawn().await;
    let response = app.get("/docs").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(response.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'self'"));
    let html = response.text().await.unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "the page must not load remote assets");

    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            assets.push(part.split('"').next().unwrap().to_owned());
        }
    }
    assert_eq!(assets.len(), 3, "{assets:?}");
    for asset in assets {
        let response = app.get(&asset).await;
        assert_eq!(response.status(), 200, "{asset}");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with("text/javascript") || content_type.starts_with("text/css"),
            "{asset}: {content_type}"
        );
        assert!(response.bytes().await.unwrap().len() > 10, "{asset} is empty");
    }
    let init = app.get("/docs/assets/init.js").await.text().await.unwrap();
    assert!(init.contains("/api/v1/openapi.json") && init.contains("validatorUrl: null"));
}

#[tokio::test]
async fn error_catalogue_documents_every_code() {
    let app = TestApp::spawn().await;
    let catalogue = app.get("/docs/errors").await.text().await.unwrap();
    for code in payymo::http::error::ErrorCode::ALL {
        assert!(catalogue.contains(&format!("`{}`", code.as_str())), "docs/errors.md lacks {}", code.as_str());
    }
}
