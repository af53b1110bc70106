//! The guide's kit: helpers several experiments share that belong to the guide's domain, not
//! to the measuring machinery — the users fixture, a port of Go's `database/sql` pool, query
//! plans, Redis helpers, the guide's worker pool, and the HTTP server and client the service
//! experiments share. The machinery (`load`, `micro`,
//! `analysis`, …) never imports from here.

pub mod fixtures;
pub mod http;
pub mod pgpool;
pub mod plan;
pub mod redis_util;
pub mod workerpool;
