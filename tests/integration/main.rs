//! The integration suite: one test binary, one module per component, every endpoint read from
//! the `USERSTREAM_*` environment (see `scripts/local-stack env`), with localhost defaults.

mod cdc;
mod common;
mod evolution;
mod fault_proxy;
mod fetcher;
mod fixture_server;
mod harness;
mod kafka;
mod operations;
mod pipeline;
mod registry;
mod reliability;
mod sink;
mod snapshot;
mod status_page;
mod store;
