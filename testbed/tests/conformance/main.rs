//! CQL conformance suite: every case states Cassandra's documented behaviour (the CQL
//! reference section is cited in each case) and checks it against the node under test — a
//! real Cassandra/ScyllaDB in `USERSTREAM_CQL_CONFORMANCE_NODE`, else the in-process testbed.

mod batch;
mod collections;
mod common;
mod conditional;
mod ddl;
mod driver;
mod errors;
mod select;
mod timestamps;
mod types;
