//! Job results: the directory a job leaves behind, its IPFS CID, where it is kept and how it is
//! served.
//!
//! - [`layout`]: a result directory holds `stdout`, `stderr`, `exitCode` and `outputs/`.
//! - [`cid_of_path`]: its CID, exactly what `ipfs add -r --cid-version=1 --raw-leaves` prints
//!   (checked against js-ipfs's `ipfs-unixfs-importer` in the tests).
//! - [`ResultStore`]: results kept content-addressed on disk, `<root>/<cid>/`.
//! - [`server`]: `GET /ipfs/<cid>[/<path>]` over HTTP, with no way out of a result; and
//!   `GET /ipfs/<cid>?format=car`, a trustless gateway's verifiable answer.
//! - [`Fetcher`]: content by CID from trustless gateways, every block verified, kept in the store.
//! - [`car`]: the CARv1 format those answers are in.
//! - [`IpfsPinner`]: also adds and pins results to an IPFS node, checking it agrees on the CID.

pub mod car;
mod cid;
mod fetch;
pub mod layout;
mod pin;
pub mod server;
mod store;

pub use ::cid::Cid;
pub use cid::{CHUNK_SIZE, CidError, MAX_LINKS_PER_NODE, cid_of_bytes, cid_of_path};
pub use fetch::{FetchError, FetchLimits, Fetcher};
pub use pin::{IpfsPinner, PinError};
pub use store::{DirEntry, Entry, LookupError, ResultStore, StoreError};
