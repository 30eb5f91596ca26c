//! Serving stored results over HTTP, IPFS-gateway style:
//!
//! - `GET /ipfs/<cid>`: the result's root directory, as a JSON listing
//! - `GET /ipfs/<cid>/<path>`: a file's bytes, a directory's listing, or a symlink's target
//! - `GET /ipfs/<cid>?format=car` (or with `Accept: application/vnd.ipld.car`): the whole DAG as
//!   a CARv1, as a trustless gateway answers, so anyone can fetch a result (or an input this
//!   provider fetched) and check every block against the CID; this is what lets one job's
//!   result be another job's input
//!
//! Unknown CIDs and paths are 404 with a message saying what was not found; malformed CIDs and
//! paths with `.` or `..` segments are 400. Symbolic links are never followed.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::car::{CAR_CONTENT_TYPE, CarWriter};
use crate::store::{Entry, LookupError, ResultStore};

/// Whether the request asks for a CAR (`?format=car` or an `Accept` naming the CAR type).
fn wants_car(uri: &Uri, headers: &HeaderMap) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "format=car"))
        || headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/vnd.ipld.car"))
}

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

async fn root(
    State(store): State<Arc<ResultStore>>,
    UrlPath(cid): UrlPath<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if wants_car(&uri, &headers) {
        return car(store, cid).await;
    }
    respond(store, cid, String::new()).await
}

async fn inner(
    State(store): State<Arc<ResultStore>>,
    UrlPath((cid, path)): UrlPath<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if wants_car(&uri, &headers) {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "a CAR is served for a whole CID only (fix: GET /ipfs/{cid}?format=car, which holds {path} too)\n"
            ),
        );
    }
    respond(store, cid, path).await
}

/// The CAR of everything stored as `cid`: its blocks, made again from the stored files (each
/// once), written to a scratch file in the store and streamed from there.
async fn car(store: Arc<ResultStore>, cid_text: String) -> Response {
    let Ok(cid) = cid::Cid::try_from(cid_text.as_str()) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("{}\n", LookupError::BadCid { text: cid_text }),
        );
    };
    let Some(path) = store.get_any(&cid) else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "{}\n",
                LookupError::UnknownCid {
                    cid: cid.to_string()
                }
            ),
        );
    };
    let scratch = store.staging_path();
    let built = {
        let scratch = scratch.clone();
        tokio::task::spawn_blocking(move || write_car(&cid, &path, &scratch)).await
    };
    let opened = match built {
        Ok(Ok(())) => tokio::fs::File::open(&scratch).await.map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("opening the CAR: {e}"),
            )
        }),
        Ok(Err(e)) => Err(e),
        Err(e) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("building the CAR failed: {e}"),
        )),
    };
    // The open file stays readable after its name is gone.
    let _ = std::fs::remove_file(&scratch);
    let file = match opened {
        Ok(f) => f,
        Err((status, message)) => return text(status, format!("{message}\n")),
    };
    let size = file.metadata().await.map(|m| m.len()).ok();
    let mut r = (
        StatusCode::OK,
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10)),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(CAR_CONTENT_TYPE),
    );
    if let Some(size) = size {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{cid}.car\"")) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=29030400, immutable"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("/ipfs/{cid}")) {
        h.insert("x-ipfs-path", v);
    }
    r
}

fn write_car(
    cid: &cid::Cid,
    path: &std::path::Path,
    to: &std::path::Path,
) -> Result<(), (StatusCode, String)> {
    let failed = |e: &dyn std::fmt::Display| {
        let _ = std::fs::remove_file(to);
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("building the CAR of {cid}: {e}"),
        )
    };
    let file = std::fs::File::create(to).map_err(|e| failed(&e))?;
    let mut writer = CarWriter::new(std::io::BufWriter::new(file), cid).map_err(|e| failed(&e))?;
    let mut seen = std::collections::HashSet::new();
    let root = crate::cid::blocks_of_path(path, &mut |c, block| {
        if seen.insert(*c) {
            writer.block(c, block)?;
        }
        Ok(())
    })
    .map_err(|e| failed(&e))?;
    std::io::Write::flush(&mut writer.into_inner()).map_err(|e| failed(&e))?;
    if crate::store::canonical(&root) != crate::store::canonical(cid) {
        let _ = std::fs::remove_file(to);
        return Err((
            StatusCode::NOT_FOUND,
            format!(
                "{cid} is stored here, but was fetched with another chunking than this server makes blocks with, so its blocks cannot be served (fix: fetch it from the gateway it came from)"
            ),
        ));
    }
    Ok(())
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
