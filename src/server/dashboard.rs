//! The built-in dashboard at `GET /`: one HTML page, a hand-written script and a style sheet,
//! all embedded in the binary so the dashboard works without internet access.
//!
//! The script reads the JSON API under `/api/v1/` and draws the charts as inline SVG. A
//! Content-Security-Policy header allows only this server as a source, so the page never
//! loads anything from elsewhere.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The page.
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// The script that fetches the API and draws the page.
pub const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
/// The style sheet.
pub const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");

/// Allows scripts, styles, images and requests from this server only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_load_nothing_external() {
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("dashboard.js", DASHBOARD_JS),
            ("dashboard.css", DASHBOARD_CSS),
        ] {
            for pattern in ["//cdn", "googleapis", "@import", "<script src=\"http"] {
                assert!(!text.contains(pattern), "{name} contains {pattern}");
            }
        }
    }

    #[test]
    fn page_links_embedded_assets() {
        assert!(INDEX_HTML.contains("src=\"/assets/dashboard.js\""));
        assert!(INDEX_HTML.contains("href=\"/assets/dashboard.css\""));
    }
}
