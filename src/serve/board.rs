//! The board at `/`: one page and its script and style, embedded in the binary (no build step,
//! nothing fetched from elsewhere). The page reads its token from the URL's fragment, so the
//! token never travels in a request line, a log or a `Referer`.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::Server;

const PAGE: &str = include_str!("assets/board.html");
const SCRIPT: &str = include_str!("assets/board.js");
const STYLE: &str = include_str!("assets/board.css");
const ICON: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>\
                    <rect width='16' height='16' rx='3' fill='#1d2330'/>\
                    <path d='M4 8l3 3 5-6' stroke='#5fd37a' stroke-width='2' fill='none'/></svg>";

/// A Content-Security-Policy that lets the page run its own script and style only: no inline
/// script, nothing from another origin, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(crate) fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/", get(|| asset(PAGE, "text/html; charset=utf-8")))
        .route(
            "/board.js",
            get(|| asset(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route(
            "/board.css",
            get(|| asset(STYLE, "text/css; charset=utf-8")),
        )
        .route("/favicon.svg", get(|| asset(ICON, "image/svg+xml")))
}

async fn asset(body: &'static str, kind: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
}
