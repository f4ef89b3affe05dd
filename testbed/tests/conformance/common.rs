//! Shared helpers: which node to test, sessions, unique keyspaces, error classification.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, PrepareError, RequestAttemptError};
use userstream_testbed::Testbed;

/// The node under test: `USERSTREAM_CQL_CONFORMANCE_NODE` (host:port of a real Cassandra 4+ or
/// ScyllaDB), else one in-process testbed shared by every case of this test binary.
pub fn node() -> String {
    if let Ok(node) = std::env::var("USERSTREAM_CQL_CONFORMANCE_NODE") {
        if !node.is_empty() {
            return node;
        }
    }
    static TESTBED: OnceLock<Testbed> = OnceLock::new();
    TESTBED
        .get_or_init(|| {
            Testbed::start("127.0.0.1:0".parse().expect("literal address"))
                .expect("in-process CQL testbed starts")
        })
        .addr()
        .to_string()
}

/// A session with the driver's default settings.
pub async fn session() -> Session {
    SessionBuilder::new()
        .known_node(node())
        .build()
        .await
        .expect("the default SessionBuilder connects")
}

/// A keyspace name unique to this process and call, so cases run in parallel.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// Creates a fresh keyspace (SimpleStrategy, RF 1) and returns its name.
pub async fn keyspace(session: &Session, prefix: &str) -> String {
    let name = unique_name(prefix);
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {name} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            &[],
        )
        .await
        .expect("CREATE KEYSPACE");
    name
}

/// A session plus a fresh keyspace it has switched to with `use_keyspace`.
pub async fn session_in_keyspace(prefix: &str) -> (Session, String) {
    let session = session().await;
    let ks = keyspace(&session, prefix).await;
    session
        .use_keyspace(&ks, false)
        .await
        .expect("use_keyspace");
    (session, ks)
}

/// Runs each statement unpaged, failing with the statement on error.
pub async fn run(session: &Session, statements: &[&str]) {
    for s in statements {
        if let Err(e) = session.query_unpaged(*s, &[]).await {
            panic!("{s}: {e}");
        }
    }
}

/// The server error kind and message behind a driver error, if the server answered one.
pub fn db_error(error: &ExecutionError) -> Option<(DbError, String)> {
    let attempt = match error {
        ExecutionError::LastAttemptError(a) => a,
        ExecutionError::PrepareError(PrepareError::AllAttemptsFailed { first_attempt }) => {
            first_attempt
        }
        _ => return None,
    };
    match attempt {
        RequestAttemptError::DbError(kind, message) => Some((kind.clone(), message.clone())),
        _ => None,
    }
}

/// Asserts `result` failed with a server error of kind `expected`.
pub fn expect_db_error<T: std::fmt::Debug>(
    result: Result<T, ExecutionError>,
    expected: DbError,
    what: &str,
) {
    match result {
        Ok(v) => panic!("{what}: expected {expected:?}, got success {v:?}"),
        Err(e) => match db_error(&e) {
            Some((kind, _)) if kind == expected => {}
            _ => panic!("{what}: expected {expected:?}, got {e}"),
        },
    }
}

/// Polls `probe` until it returns true or `deadline` passes.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < deadline {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not true within {deadline:?}");
}

/// Runs `query` unpaged and deserializes every row as `T`.
pub async fn rows<T>(
    session: &Session,
    query: &str,
    values: impl scylla::serialize::row::SerializeRow,
) -> Vec<T>
where
    T: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
{
    let result = session
        .query_unpaged(query, values)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    let rows = result
        .into_rows_result()
        .unwrap_or_else(|e| panic!("{query} returned no rows result: {e}"));
    rows.rows::<T>()
        .unwrap_or_else(|e| panic!("{query}: row type mismatch: {e}"))
        .collect::<Result<Vec<T>, _>>()
        .unwrap_or_else(|e| panic!("{query}: row deserialization: {e}"))
}

/// The names of the columns `query` returns.
pub async fn column_names(session: &Session, query: &str) -> Vec<String> {
    let result = session
        .query_unpaged(query, &[])
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    let rows = result.into_rows_result().expect("rows result");
    rows.column_specs()
        .iter()
        .map(|c| c.name().to_string())
        .collect()
}
