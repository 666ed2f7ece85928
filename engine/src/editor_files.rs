//! The editor's files (`ui/dist`, built by `scripts/ui.sh`), served next to the API: `/` is the
//! editor, and the few files wasm-bindgen writes are served with the content types a browser
//! needs (`application/wasm` for streaming compilation).

use std::path::{Component, Path, PathBuf};

use axum::{
    Router,
    body::Body,
    extract::{Path as UrlPath, State},
    http::{StatusCode, header},
    response::Response,
    routing::get,
};

/// Where the editor's files are when nothing says: the `ui/dist` of the source tree this binary
/// was built from, which is where `scripts/ui.sh` writes them.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist")
}

/// The routes serving the editor from `dir`.
pub fn routes(dir: PathBuf) -> Router {
    Router::new().route("/", get(index)).route("/{*file}", get(file)).with_state(dir)
}

async fn index(State(dir): State<PathBuf>) -> Response {
    serve(&dir, "index.html").await
}

async fn file(State(dir): State<PathBuf>, UrlPath(file): UrlPath<String>) -> Response {
    serve(&dir, &file).await
}

async fn serve(dir: &Path, file: &str) -> Response {
    let relative = Path::new(file);
    // Only plain names below the directory: no `..`, no absolute paths.
    if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return answer(StatusCode::NOT_FOUND, "text/plain", Body::from("not found"));
    }
    let content_type = match relative.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    match tokio::fs::read(dir.join(relative)).await {
        Ok(bytes) => answer(StatusCode::OK, content_type, Body::from(bytes)),
        Err(_) if file == "index.html" => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            Body::from(format!(
                "the editor is not built: run scripts/ui.sh (looked in {})",
                dir.display()
            )),
        ),
        Err(_) => answer(StatusCode::NOT_FOUND, "text/plain", Body::from("not found")),
    }
}

fn answer(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    response
}
