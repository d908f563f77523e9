//! Support for cuecast's end-to-end tests: real peers started on loopback, and the
//! daemon run as a process with a config written for the test.

pub mod daemon;
pub mod http;
pub mod peers;
pub mod schema;
pub mod sync;
