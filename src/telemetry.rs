//! Logs (`tracing`, filtered by `USERSTREAM_LOG` or `RUST_LOG`) and Prometheus metrics.
//!
//! Metrics go through the `metrics` facade into one process-wide Prometheus recorder, so every
//! stage running in the process (`userstream run` hosts three) shows up on the same `/metrics`.
//! Labels stay low-cardinality: a reason or an outcome, never a user id, topic offset or URL.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Installs the log subscriber once; later calls (tests) are harmless.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_env("USERSTREAM_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        handle
    })
}

/// Readiness as the stage sees it: `/healthz` answers 200 while ready, 503 otherwise.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<AtomicBool>);

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Errors of the telemetry endpoint.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot listen for /metrics on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the /metrics server failed")]
    Serve(#[source] std::io::Error),
}

/// Serves `/metrics` and `/healthz` on `addr` until `shutdown` is cancelled.
pub async fn serve_metrics(
    addr: SocketAddr,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), TelemetryError> {
    prometheus();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    tracing::info!(%addr, "serving /metrics and /healthz");
    crate::http::serve(listener, metrics_router(health), shutdown)
        .await
        .map_err(TelemetryError::Serve)
}

/// The `/metrics` and `/healthz` routes, for servers that add them to their own router.
pub fn metrics_router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(|| async { prometheus().render() }))
        .route("/healthz", get(healthz))
        .with_state(health)
}

async fn healthz(State(health): State<Health>) -> (StatusCode, &'static str) {
    if health.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
