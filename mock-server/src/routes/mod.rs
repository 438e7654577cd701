//! The route families, one module each, under the router (`server.rs`) and above the shared
//! steps (`steps.rs`) and the state: ingestion (`/2/httpapi`, `/batch`), the identify APIs
//! (`/identify`, `/groupidentify`, `/attribution`), the `/__mock/` admin routes and
//! `/metrics`. `exchange` holds what they share about one request (its body, its journal
//! entry, the answer not yet sent).

pub(crate) mod admin;
pub(crate) mod exchange;
pub(crate) mod identify;
pub(crate) mod ingest;
pub(crate) mod metrics;
