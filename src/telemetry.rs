//! Logs (`tracing`, filtered by `USERSTREAM_LOG` or `RUST_LOG`) and Prometheus metrics.
//!
//! Metrics go through the `metrics` facade into one process-wide Prometheus recorder, so every
//! stage running in the process (`userstream run` hosts three) shows up on the same `/metrics`.
//! Labels stay low-cardinality: a reason or an outcome, never a user id, topic offset or URL.
//!
//! A stage's `--metrics-listen` also serves, at `/`, a live status page for a person to watch
//! (`telemetry/status.html`: one self-contained file whose script polls `/metrics` and
//! `/healthz`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
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
    // Colour codes only for a person at a terminal: a log file or a collector gets plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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

/// Readiness of a process, made of the readiness of its parts: each stage (`userstream run`
/// hosts three) and each processor lane reports its own, and the process is ready while every
/// part is. `/healthz` answers 200 then, and 503 naming the parts that are not.
///
/// A part reports only for itself, so one lane that recovers cannot mark ready a process whose
/// other lane is still failing.
#[derive(Debug, Clone)]
pub struct Health {
    parts: Arc<Mutex<BTreeMap<String, bool>>>,
    part: Arc<str>,
}

impl Health {
    /// The readiness of a new process, with its first part `part`, not ready yet.
    pub fn new(part: &str) -> Self {
        let health = Self {
            parts: Arc::default(),
            part: Arc::from(part),
        };
        health.set_ready(false);
        health
    }

    /// Another part of the same process, not ready yet.
    pub fn part(&self, part: &str) -> Self {
        let health = Self {
            parts: Arc::clone(&self.parts),
            part: Arc::from(part),
        };
        health.set_ready(false);
        health
    }

    /// Sets this part's readiness, and publishes the process's as the `userstream_ready` gauge
    /// (what `/healthz` answers, for dashboards that only scrape `/metrics`).
    pub fn set_ready(&self, ready: bool) {
        let mut parts = self.lock();
        parts.insert(self.part.to_string(), ready);
        let process_ready = parts.values().all(|ready| *ready);
        metrics::gauge!("userstream_ready").set(if process_ready { 1.0 } else { 0.0 });
    }

    /// Whether every part of the process is ready.
    pub fn is_ready(&self) -> bool {
        self.lock().values().all(|ready| *ready)
    }

    /// The parts that are not ready.
    pub fn not_ready(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, ready)| !**ready)
            .map(|(part, _)| part.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, bool>> {
        self.parts.lock().unwrap_or_else(PoisonError::into_inner)
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

/// The live status page served at `/` beside `/metrics` and `/healthz`.
const STATUS_PAGE: &str = include_str!("telemetry/status.html");

/// Serves the status page (`/`), `/metrics` and `/healthz` on `addr` until `shutdown` is
/// cancelled.
pub async fn serve_metrics(
    addr: SocketAddr,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), TelemetryError> {
    prometheus();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    tracing::info!(%addr, "serving the status page (/), /metrics and /healthz");
    let router = metrics_router(health).route("/", get(|| async { Html(STATUS_PAGE) }));
    crate::http::serve(listener, router, shutdown)
        .await
        .map_err(TelemetryError::Serve)
}

/// Serves the status page, `/metrics` and `/healthz` in the background when `listen` is set (a stage's
/// `--metrics-listen`); the task ends with `shutdown`.
pub fn spawn_metrics_server(
    listen: Option<SocketAddr>,
    health: &Health,
    shutdown: &CancellationToken,
) -> Option<tokio::task::JoinHandle<Result<(), TelemetryError>>> {
    listen.map(|addr| tokio::spawn(serve_metrics(addr, health.clone(), shutdown.clone())))
}

/// The `/metrics` and `/healthz` routes, for servers that add them to their own router.
pub fn metrics_router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(|| async { prometheus().render() }))
        .route("/healthz", get(healthz))
        .with_state(health)
}

async fn healthz(State(health): State<Health>) -> (StatusCode, String) {
    let not_ready = health.not_ready();
    if not_ready.is_empty() {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", not_ready.join(", ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_ready_only_while_every_part_is() {
        let process = Health::new("cdc");
        let lane_a = process.part("process lane 0");
        let lane_b = process.part("process lane 1");
        assert!(!process.is_ready(), "parts start not ready");
        for part in [&process, &lane_a, &lane_b] {
            part.set_ready(true);
        }
        assert!(process.is_ready());

        // One lane fails, the other goes on succeeding: not ready until the failing one recovers.
        lane_a.set_ready(false);
        lane_b.set_ready(true);
        assert!(!process.is_ready());
        assert_eq!(process.not_ready(), ["process lane 0"]);
        lane_a.set_ready(true);
        assert!(process.is_ready());
    }
}
