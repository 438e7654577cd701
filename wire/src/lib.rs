//! Amplitude's ingestion HTTP API as Rust types: the upload request and event object
//! (HTTP V2 `/2/httpapi` and Batch `/batch` share them), every response body, and the
//! documented limits as constants.
//!
//! Every item cites the section of the repository's `docs/amplitude-behaviour.md` that it
//! models ("spec §N" means section N of that page). This crate does no I/O.
//!
//! ```
//! use amplitude_wire::{Event, UploadRequest, ResponseBody};
//! let req = UploadRequest::new("KEY", vec![Event::new("Sign Up").with_user_id("user-12345")]);
//! let body = serde_json::to_string(&req).unwrap();
//! assert!(body.contains("\"event_type\":\"Sign Up\""));
//! let ok: ResponseBody = serde_json::from_str(
//!     r#"{"code":200,"events_ingested":1,"payload_size_bytes":60,"server_upload_time":1}"#).unwrap();
//! assert_eq!(ok.events_ingested, Some(1));
//! ```

mod endpoint;
pub mod limits;
mod region;
mod request;
mod response;

pub use endpoint::{Api, Endpoint};
pub use region::Region;
pub use request::{Event, UploadOptions, UploadRequest};
pub use response::{error_text, IndexMap, RateMap, ResponseBody};
