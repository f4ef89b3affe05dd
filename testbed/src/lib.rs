//! A test-only, in-memory CQL endpoint faithful to Cassandra's write semantics.
//!
//! It speaks the CQL native protocol v4 well enough for the `scylla` driver (default
//! settings) and cqlsh, and stores data the way Cassandra reconciles it: every cell carries its
//! write timestamp, the highest timestamp wins, tombstones win ties, INSERT writes a row
//! marker, null binds write tombstones, unset binds write nothing, and TTLs expire. It is one
//! node, memory only; it is never a product database.
//!
//! # Layout
//! - `server`: TCP accept loop, per-connection frame handling, prepared statement cache.
//! - `frame`: protocol framing and the spec's primitive notations.
//! - `cql`: lexer, parser and syntax tree of the supported CQL.
//! - `engine`: statement execution — DDL, writes, SELECT, system tables.
//! - `storage`: cells, rows and partitions with Cassandra's reconciliation rules.
//! - `schema`, `types`, `values`: catalog, data types, literal and bind value handling.
//! - `token`: Murmur3 tokens (partition order).
//!
//! Use [`serve`] inside a tokio runtime, or [`Testbed::start`] for a node on its own thread
//! (handy from tests whose runtimes come and go).

mod bigint;
mod cql;
mod engine;
mod error;
mod frame;
mod schema;
mod server;
mod storage;
mod token;
mod types;
mod values;

use std::net::SocketAddr;
use std::thread::JoinHandle;

pub use server::{serve, ServeError};

/// A testbed node running on a dedicated thread with its own runtime; stopped on drop.
pub struct Testbed {
    addr: SocketAddr,
    /// Dropping it (or sending) tells the server to stop.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Testbed {
    /// Binds `addr` (port 0 picks a free port) and serves on a background thread.
    pub fn start(addr: SocketAddr) -> std::io::Result<Testbed> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("cql-testbed")
            .build()?;
        // Bound with std so this works from inside another runtime too.
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cql-testbed".into())
            .spawn(move || {
                let shutdown = async {
                    // Either a send or the sender being dropped means stop.
                    let _ = stopped.await;
                };
                runtime.block_on(async {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            if let Err(error) = serve(listener, shutdown).await {
                                tracing::error!(%error, "CQL testbed stopped");
                            }
                        }
                        Err(error) => {
                            tracing::error!(%error, "CQL testbed cannot use its listener")
                        }
                    }
                });
            })?;
        Ok(Testbed {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
