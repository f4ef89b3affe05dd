//! `cql-testbed`: serve the in-memory CQL endpoint until SIGINT/SIGTERM.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// An in-memory CQL endpoint (native protocol v4) faithful to Cassandra's write semantics.
/// For tests and the local no-Docker stack only.
#[derive(Debug, Parser)]
#[command(name = "cql-testbed", version)]
struct Args {
    /// Address to listen on for CQL clients.
    #[arg(
        long,
        env = "USERSTREAM_CQL_TESTBED_LISTEN",
        default_value = "127.0.0.1:9042"
    )]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "CQL testbed listening");
    userstream_testbed::serve(listener, shutdown_signal()).await?;
    tracing::info!("CQL testbed stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; stopping on SIGINT only");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
