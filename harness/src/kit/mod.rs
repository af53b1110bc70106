//! The guide's kit: helpers several experiments share that belong to the guide's domain, not
//! to the measuring machinery — the users fixture, a port of Go's `database/sql` pool, query
//! plans, Redis helpers and the guide's worker pool. The machinery (`load`, `micro`,
//! `analysis`, …) never imports from here.

pub mod fixtures;
pub mod pgpool;
pub mod plan;
pub mod redis_util;
pub mod workerpool;
