//! `userstream fixture-server`: the randomuser.me API served from captured responses, so the
//! pipeline runs without the internet, plus misbehaviour on request for the fetcher's tests.
//!
//! # Data
//!
//! Every `*.json` file of `--fixtures-dir` is loaded at start-up; one that cannot be read or
//! parsed stops the start-up with an error naming it. A file is either a bare array of records
//! or an object with a `results` array (any other members, such as `info`, are ignored). Each
//! record is served exactly as captured — key order, escapes, indentation and CRLF line ends
//! included — because the fetcher must meet the genuine old shapes. Records are numbered by file
//! name, then position in the file.
//!
//! # `GET /api/`
//!
//! Also `/api`, and `/api/{version}/` (the version is accepted and ignored: records are served
//! in whatever version they were captured). Query parameters:
//!
//! * `results` — records per page, 1 to 5000 (default 1).
//! * `page` — from 1 (default 1). Page `p` holds records `(p−1)·results .. p·results` of the
//!   seed's order; past the end it is empty. One seed, paged to the end, yields every record
//!   (after the `nat` filter) exactly once.
//! * `seed` — any string. The order is a permutation of all records derived from the seed
//!   (records sorted by SHA-256 of seed and record id), stable across restarts. Without a seed
//!   the server picks a random one and reports it in `info.seed`.
//! * `nat` — comma list, case-insensitive; keeps records whose `nat` is listed. Records without
//!   a `nat` (the legacy and `inc=` captures) are left out whenever `nat` is given.
//! * `inc` / `exc` — comma lists of top-level field names (case-insensitive): keep only the
//!   listed fields, then drop the excluded ones. For legacy `{"user": {…}, "seed": …}` records
//!   they act inside `user`, and the wrapper stays as it was.
//! * `noinfo` — present (with any value) to leave out `info`.
//!
//! Other parameters (`format`, `gender`, …) are ignored. The response is
//! `{"results": […], "info": {"seed": …, "results": <records in this page>, "page": p,
//! "version": "1.4"}}`. A `results` or `page` that is not a number in range gets
//! **400** with `{"error": "<what was wrong>"}`, the API's error shape.
//!
//! # Misbehaviour
//!
//! Prefix any API path with `/_fault/{scenario}/{spec}`, e.g.
//! `/_fault/retry-test-7/status-503-x2/api/?results=10&seed=s`. `{scenario}` is any id the test
//! picks; the server counts requests per scenario, so tests running in parallel against one
//! server never disturb each other. `{spec}` is one of:
//!
//! | spec | response |
//! |---|---|
//! | `status-500`, `status-503` | that status, `application/json`, the API's body `{"error": "Uh oh, something has gone wrong. …"}` |
//! | `html` | 200, `text/html`, an HTML error page |
//! | `truncated` | 200, `application/json`, the normal body cut in half (never parses) |
//! | `slow-{duration}` | the normal response after the delay (humantime: `2s`, `1500ms`; at most 1h) |
//! | `error-body` | 200, `application/json`, the API's `{"error": …}` body |
//! | `close` | the connection is dropped without a response |
//!
//! Any spec may end in `-x{N}` (e.g. `close-x3`): only the first N requests of the scenario
//! misbehave, later ones are served normally — how retry tests prove recovery. A malformed spec
//! gets 400 with an `{"error": …}` naming it. `--fault <spec>` applies one spec to every `/api`
//! request (one shared counter), for demos; a `/_fault/…` path takes precedence over it.
//!
//! `GET /healthz` answers 200 once the records are loaded; `GET /metrics` has the request counts.
//!
//! Tests (and the fetcher's tests) can run a server in-process on port 0 with
//! [`FixtureServer::start`].

mod api;
mod fault;
mod fixtures;
mod raw_json;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use fault::{Fault, FaultSpec, FaultSpecError};

use crate::error::Retryable;
use crate::telemetry::{metrics_router, Health};

/// The body randomuser.me sends when it fails.
pub const API_ERROR_MESSAGE: &str =
    "Uh oh, something has gone wrong. Please tweet us @randomapi about the issue. Thank you.";

const JSON: &str = "application/json; charset=utf-8";

const HTML_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n\
<body>\n<h1>Bad Gateway</h1>\n<p>The upstream server is temporarily unavailable.</p>\n\
</body>\n</html>\n";

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to serve the API on.
    #[arg(
        long,
        env = "USERSTREAM_FIXTURE_SERVER_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    pub listen: SocketAddr,

    /// Folder of captured randomuser.me responses; every *.json in it is loaded at start-up.
    #[arg(
        long,
        env = "USERSTREAM_FIXTURES_DIR",
        default_value = "fixtures/randomuser"
    )]
    pub fixtures_dir: PathBuf,

    /// Misbehave on every /api request, for demos (tests use /_fault/{scenario}/{spec}/api/).
    ///
    /// SPEC is one of: status-500 or status-503 (that status with the API's {"error": …} JSON
    /// body); html (200 with an HTML page); truncated (200, JSON content type, body cut in half);
    /// slow-DURATION (the normal response after a humantime delay such as 2s or 1500ms, at most
    /// 1h); error-body (200 with the API's {"error": …} body); close (drop the connection without
    /// a response). Append -xN (e.g. status-503-x2) to misbehave on the first N requests only and
    /// serve normally after that. The same specs work per test in the path
    /// /_fault/{scenario}/{spec}/api/, counted per scenario id.
    #[arg(long, env = "USERSTREAM_FIXTURE_SERVER_FAULT", value_name = "SPEC")]
    pub fault: Option<FaultSpec>,
}

/// Why the fixture server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot list the fixtures folder {}", path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no *.json files in the fixtures folder {}", path.display())]
    NoFixtures { path: PathBuf },
    #[error("cannot read the fixture file {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the fixture file {} is not valid JSON", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the fixture file {}: {reason}", path.display())]
    Shape { path: PathBuf, reason: String },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the fixture server failed while serving")]
    Serve(#[source] std::io::Error),
    #[error("the fixture server's task ended abnormally")]
    Task(#[source] tokio::task::JoinError),
}

impl Retryable for Error {
    fn is_retryable(&self) -> bool {
        // A busy port or a failed accept loop may clear up; bad fixtures stay bad.
        matches!(self, Self::Bind { .. } | Self::Serve(_))
    }
}

/// Serves the API until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let mut server = FixtureServer::start_until(&config, shutdown.child_token()).await?;
    server.finished().await
}

/// A running fixture server, stopped by [`FixtureServer::stop`] or when dropped.
#[derive(Debug)]
pub struct FixtureServer {
    addr: SocketAddr,
    record_count: usize,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl FixtureServer {
    /// Loads the fixtures and starts serving on `config.listen` (port 0 picks a free port).
    pub async fn start(config: &Config) -> Result<Self, Error> {
        Self::start_until(config, CancellationToken::new()).await
    }

    async fn start_until(config: &Config, shutdown: CancellationToken) -> Result<Self, Error> {
        let (records, file_count) = fixtures::load(&config.fixtures_dir)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let record_count = records.len();
        let state = Arc::new(AppState {
            records,
            fault: config.fault,
            fault_count: AtomicU64::new(0),
            scenarios: fault::Scenarios::default(),
            shutdown: shutdown.clone(),
        });
        let health = Health::new("fixture-server");
        health.set_ready(true);
        let app = router(state).merge(metrics_router(health));
        tracing::info!(
            %addr,
            records = record_count,
            files = file_count,
            dir = %config.fixtures_dir.display(),
            fault = ?config.fault,
            "serving captured randomuser.me responses at /api/"
        );
        let task = tokio::spawn(crate::http::serve(listener, app, shutdown.clone()));
        Ok(Self {
            addr,
            record_count,
            shutdown,
            task,
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`; the API is at `{url}/api/`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many records the server loaded.
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// Stops accepting requests, lets in-flight ones finish, and waits for the server to end.
    pub async fn stop(mut self) -> Result<(), Error> {
        self.shutdown.cancel();
        self.finished().await
    }

    async fn finished(&mut self) -> Result<(), Error> {
        match (&mut self.task).await {
            Ok(served) => served.map_err(Error::Serve),
            Err(join) => Err(Error::Task(join)),
        }
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

struct AppState {
    records: Vec<fixtures::Record>,
    /// The `--fault` spec, applied to every `/api` request without a `/_fault/…` prefix.
    fault: Option<FaultSpec>,
    /// Requests seen by `fault`, for its `-xN` limit.
    fault_count: AtomicU64,
    scenarios: fault::Scenarios,
    /// Cuts `slow-…` delays short so a shutdown is not held up by them.
    shutdown: CancellationToken,
}

type ApiParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new();
    for path in ["/api", "/api/", "/api/{version}", "/api/{version}/"] {
        router = router.route(path, get(api)).route(
            &format!("/_fault/{{scenario}}/{{spec}}{path}"),
            get(api_with_fault),
        );
    }
    router.fallback(not_found).with_state(state)
}

async fn api(State(state): State<Arc<AppState>>, params: ApiParams) -> Response {
    let fault = state
        .fault
        .and_then(|spec| spec.for_request(state.fault_count.fetch_add(1, Ordering::Relaxed)));
    respond(&state, params, fault).await
}

/// The path parameters of `/_fault/{scenario}/{spec}/api/…` (a `version` is ignored).
#[derive(serde::Deserialize)]
struct FaultPath {
    scenario: String,
    spec: String,
}

async fn api_with_fault(
    State(state): State<Arc<AppState>>,
    Path(path): Path<FaultPath>,
    params: ApiParams,
) -> Response {
    let spec = match path.spec.parse::<FaultSpec>() {
        Ok(spec) => spec,
        Err(error) => return bad_request(&error),
    };
    let fault = spec.for_request(state.scenarios.next(&path.scenario));
    respond(&state, params, fault).await
}

async fn respond(state: &AppState, params: ApiParams, fault: Option<Fault>) -> Response {
    let outcome = fault.map_or("served", Fault::label);
    metrics::counter!("userstream_fixture_server_requests_total", "outcome" => outcome)
        .increment(1);
    if fault.is_some() {
        tracing::debug!(outcome, "misbehaving on purpose");
    }
    match fault {
        Some(Fault::Status500) => api_error(StatusCode::INTERNAL_SERVER_ERROR),
        Some(Fault::Status503) => api_error(StatusCode::SERVICE_UNAVAILABLE),
        Some(Fault::ErrorBody) => api_error(StatusCode::OK),
        Some(Fault::Html) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            HTML_PAGE,
        )
            .into_response(),
        Some(Fault::Close) => dropped_connection(),
        Some(Fault::Truncated) => match page(state, params) {
            Ok(body) => json(StatusCode::OK, truncate(body)),
            Err(refused) => bad_request(&refused),
        },
        Some(Fault::Slow(delay)) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = state.shutdown.cancelled() => {
                    return error_json(StatusCode::SERVICE_UNAVAILABLE, "the fixture server is shutting down");
                }
            }
            served(state, params)
        }
        None => served(state, params),
    }
}

fn served(state: &AppState, params: ApiParams) -> Response {
    match page(state, params) {
        Ok(body) => json(StatusCode::OK, body),
        Err(refused) => bad_request(&refused),
    }
}

/// The normal body for the query.
fn page(state: &AppState, params: ApiParams) -> Result<String, api::QueryError> {
    let Query(params) = params.map_err(api::QueryError::Malformed)?;
    let query = api::ApiQuery::parse(&params)?;
    let seed = query.seed.clone().unwrap_or_else(api::random_seed);
    Ok(api::render(&state.records, &query, &seed))
}

/// The first half of `body`: a proper prefix of a JSON object never parses.
fn truncate(mut body: String) -> String {
    let mut cut = body.len() / 2;
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    body.truncate(cut);
    body
}

/// A response whose body fails before its first byte: hyper then drops the connection without
/// having written the status line, which is what a crashed upstream looks like to a client.
fn dropped_connection() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "connection dropped on purpose (close fault)",
        ))
    });
    Response::new(Body::from_stream(failing))
}

fn api_error(status: StatusCode) -> Response {
    error_json(status, API_ERROR_MESSAGE)
}

/// 400 with the whole error chain as the message, so the client learns what was wrong.
fn bad_request(error: &dyn std::error::Error) -> Response {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    error_json(StatusCode::BAD_REQUEST, &message)
}

fn error_json(status: StatusCode, message: &str) -> Response {
    json(status, serde_json::json!({ "error": message }).to_string())
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, JSON)], body).into_response()
}

async fn not_found(uri: Uri) -> Response {
    error_json(
        StatusCode::NOT_FOUND,
        &format!(
            "no such endpoint {}: the API is at /api/ (or /_fault/{{scenario}}/{{spec}}/api/)",
            uri.path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_never_parses_and_keeps_utf8() {
        for body in [
            "{\"results\":[],\"info\":{}}",
            "{\"results\":[{\"name\":\"ÉÉÉÉÉÉÉÉ\"}]}",
            "{}",
        ] {
            let cut = truncate(body.to_owned());
            assert!(cut.len() < body.len());
            assert!(
                serde_json::from_str::<serde_json::Value>(&cut).is_err(),
                "{cut:?}"
            );
        }
    }

    #[test]
    fn only_transient_errors_are_retryable() {
        let bind = Error::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            source: std::io::ErrorKind::AddrInUse.into(),
        };
        assert!(bind.is_retryable());
        let missing = Error::NoFixtures {
            path: PathBuf::from("x"),
        };
        assert!(!missing.is_retryable());
    }
}
