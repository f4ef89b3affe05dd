//! Testbed-specific acceptance tests at the wire level, always against an in-process testbed:
//! raw native protocol frames (version negotiation, Unprepared, errors that keep the
//! connection, concurrent streams) and the real `cqlsh` client.

mod client;
mod cqlsh;
mod protocol;
