//! Serving stored results over HTTP, IPFS-gateway style:
//!
//! - `GET /ipfs/<cid>`: the result's root directory, as a JSON listing
//! - `GET /ipfs/<cid>/<path>`: a file's bytes, a directory's listing, or a symlink's target
//!
//! Unknown CIDs and paths are 404 with a message saying what was not found; malformed CIDs and
//! paths with `.` or `..` segments are 400. Symbolic links are never followed.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::store::{Entry, LookupError, ResultStore};

/// The routes, over `store`.
pub fn router(store: Arc<ResultStore>) -> Router {
    Router::new()
        .route("/ipfs/{cid}", get(root))
        .route("/ipfs/{cid}/", get(root))
        .route("/ipfs/{cid}/{*path}", get(inner))
        .fallback(fallback)
        .with_state(store)
}

/// Serves `store` on `listener` until the task is dropped or the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<ResultStore>,
) -> std::io::Result<()> {
    axum::serve(listener, router(store)).await
}

async fn root(State(store): State<Arc<ResultStore>>, UrlPath(cid): UrlPath<String>) -> Response {
    respond(store, cid, String::new()).await
}

async fn inner(
    State(store): State<Arc<ResultStore>>,
    UrlPath((cid, path)): UrlPath<(String, String)>,
) -> Response {
    respond(store, cid, path).await
}

async fn fallback() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "not found: results are served at /ipfs/<cid> and /ipfs/<cid>/<path>\n".to_owned(),
    )
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn respond(store: Arc<ResultStore>, cid: String, path: String) -> Response {
    let looked_up = {
        let (cid, path) = (cid.clone(), path.clone());
        tokio::task::spawn_blocking(move || store.lookup(&cid, &path)).await
    };
    let entry = match looked_up {
        Ok(Ok(entry)) => entry,
        Ok(Err(e)) => {
            let status = match e {
                LookupError::BadCid { .. } | LookupError::BadPath { .. } => StatusCode::BAD_REQUEST,
                LookupError::UnknownCid { .. }
                | LookupError::NotFound { .. }
                | LookupError::ThroughSymlink { .. } => StatusCode::NOT_FOUND,
                LookupError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            };
            return text(status, format!("{e}\n"));
        }
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("lookup failed: {e}\n"),
            );
        }
    };
    let ipfs_path = if path.is_empty() {
        format!("/ipfs/{cid}")
    } else {
        format!("/ipfs/{cid}/{path}")
    };
    let mut response = match entry {
        Entry::File { path: file, size } => match tokio::fs::File::open(&file).await {
            Ok(f) => {
                let body = Body::from_stream(tokio_util::io::ReaderStream::new(f));
                let mut r = (StatusCode::OK, body).into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
                r
            }
            Err(e) => {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("opening {ipfs_path}: {e}\n"),
                );
            }
        },
        Entry::Directory { entries } => {
            let listing = serde_json::json!({ "path": ipfs_path, "entries": entries });
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                listing.to_string(),
            )
                .into_response()
        }
        Entry::Symlink { target } => {
            let mut r = text(StatusCode::OK, target.clone());
            if let Ok(v) = HeaderValue::from_str(&target) {
                r.headers_mut().insert("x-symlink-target", v);
            }
            r
        }
    };
    if let Ok(v) = HeaderValue::from_str(&ipfs_path) {
        response.headers_mut().insert("x-ipfs-path", v);
    }
    response
}
