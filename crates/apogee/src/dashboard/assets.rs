//! The page and its script and style, embedded in the binary (no build step, nothing fetched
//! from elsewhere: the dashboard works on a machine without internet access).

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The one page; the script draws each view into it.
const INDEX_HTML: &str = include_str!("assets/index.html");
/// The views and their calls to the API.
const APP_JS: &str = include_str!("assets/app.js");
/// The look.
const STYLE_CSS: &str = include_str!("assets/style.css");
/// The tab icon (an inline SVG, so the browser does not ask for a missing favicon).
const ICON_SVG: &str = include_str!("assets/icon.svg");

/// `GET /`.
pub(super) async fn index() -> Response {
    with_type("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /assets/{name}`.
pub(super) async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => with_type("text/javascript; charset=utf-8", APP_JS),
        "style.css" => with_type("text/css; charset=utf-8", STYLE_CSS),
        "icon.svg" => with_type("image/svg+xml", ICON_SVG),
        _ => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// `body` with its content type; not cached, so a new binary's page is seen at once.
fn with_type(content_type: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")], body).into_response()
}
