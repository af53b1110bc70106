//! What xtask's executables share: the catalogue. `xtask` is the command line;
//! `perflab-alloc` is the micro engine's allocation worker, the same catalogue built with
//! dhat's counting allocator.

pub mod catalogue;
pub mod selftest;
