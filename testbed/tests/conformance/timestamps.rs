//! Write timestamps and reconciliation: the semantics the processor relies on.
//!
//! References: Cassandra CQL reference, "Data Manipulation" (dml.html) § "Update parameters"
//! (TIMESTAMP, TTL) and § INSERT/UPDATE/DELETE; the tie-breaking order (higher timestamp, then
//! deletion, then the greater value) is Cassandra's `Cells.resolveRegular`, as documented in
//! DataStax's "Query timestamps" page.

use std::time::Duration;

use scylla::value::MaybeUnset;

use crate::common::*;

async fn kv_table(prefix: &str) -> (scylla::client::session::Session, String) {
    let (session, ks) = session_in_keyspace(prefix).await;
    run(
        &session,
        &["CREATE TABLE kv (k int PRIMARY KEY, v text, w text)"],
    )
    .await;
    (session, ks)
}

// dml.html § Update parameters, TIMESTAMP: a write carrying an older timestamp than the
// stored cell loses (last write wins by timestamp, not arrival).
#[tokio::test]
async fn older_write_arriving_later_loses() {
    let (s, _) = kv_table("ts_older").await;
    run(
        &s,
        &[
            "INSERT INTO kv (k, v) VALUES (1, 'new') USING TIMESTAMP 2000",
            "INSERT INTO kv (k, v) VALUES (1, 'old') USING TIMESTAMP 1000",
        ],
    )
    .await;
    let got: Vec<(String, i64)> = rows(&s, "SELECT v, WRITETIME(v) FROM kv WHERE k = 1", ()).await;
    assert_eq!(got, vec![("new".to_string(), 2000)]);
}

// dml.html § Update parameters, TIMESTAMP: a newer timestamp replaces the stored value.
#[tokio::test]
async fn newer_write_wins() {
    let (s, _) = kv_table("ts_newer").await;
    run(
        &s,
        &[
            "INSERT INTO kv (k, v) VALUES (1, 'old') USING TIMESTAMP 1000",
            "UPDATE kv USING TIMESTAMP 2000 SET v = 'new' WHERE k = 1",
        ],
    )
    .await;
    let got: Vec<(String,)> = rows(&s, "SELECT v FROM kv WHERE k = 1", ()).await;
    assert_eq!(got, vec![("new".to_string(),)]);
}

// Reconciliation order: on equal timestamps a deletion wins over a value, whichever arrives
// first.
#[tokio::test]
async fn deletion_wins_a_timestamp_tie() {
    let (s, _) = kv_table("ts_tie_del").await;
    run(
        &s,
        &[
            "INSERT INTO kv (k, v, w) VALUES (1, 'x', 'keep') USING TIMESTAMP 1000",
            "DELETE v FROM kv USING TIMESTAMP 1000 WHERE k = 1",
            "DELETE w FROM kv USING TIMESTAMP 1000 WHERE k = 2",
            "INSERT INTO kv (k, w) VALUES (2, 'late') USING TIMESTAMP 1000",
        ],
    )
    .await;
    let got: Vec<(i32, Option<String>, Option<String>)> =
        rows(&s, "SELECT k, v, w FROM kv WHERE k IN (1, 2)", ()).await;
    let mut got = got;
    got.sort();
    assert_eq!(
        got,
        vec![(1, None, Some("keep".into())), (2, None, None)],
        "a tombstone must beat a value with the same timestamp in both arrival orders"
    );
}

// Reconciliation order: on equal timestamps between two values, the greater value wins,
// whichever arrives first.
#[tokio::test]
async fn greater_value_wins_a_timestamp_tie() {
    let (s, _) = kv_table("ts_tie_val").await;
    run(
        &s,
        &[
            "INSERT INTO kv (k, v) VALUES (1, 'b') USING TIMESTAMP 1000",
            "INSERT INTO kv (k, v) VALUES (1, 'a') USING TIMESTAMP 1000",
            "INSERT INTO kv (k, v) VALUES (2, 'a') USING TIMESTAMP 1000",
            "INSERT INTO kv (k, v) VALUES (2, 'b') USING TIMESTAMP 1000",
        ],
    )
    .await;
    let mut got: Vec<(i32, String)> = rows(&s, "SELECT k, v FROM kv WHERE k IN (1, 2)", ()).await;
    got.sort();
    assert_eq!(got, vec![(1, "b".into()), (2, "b".into())]);
}

// dml.html § DELETE: "USING TIMESTAMP ... only data older than the given timestamp is
// deleted"; a newer row survives an older deletion.
#[tokio::test]
async fn older_delete_keeps_newer_row() {
    let (s, _) = kv_table("ts_old_del").await;
    run(
        &s,
        &[
            "INSERT INTO kv (k, v) VALUES (1, 'x') USING TIMESTAMP 2000",
            "DELETE FROM kv USING TIMESTAMP 1000 WHERE k = 1",
        ],
    )
    .await;
    let got: Vec<(String,)> = rows(&s, "SELECT v FROM kv WHERE k = 1", ()).await;
    assert_eq!(got, vec![("x".to_string(),)]);
}

// dml.html § DELETE with TIMESTAMP: a deletion shadows writes with lower timestamps even when
// they arrive after it (a late, replayed upsert must not resurrect a deleted user).
#[tokio::test]
async fn deletion_shadows_later_arriving_older_write() {
    let (s, _) = kv_table("ts_shadow").await;
    run(
        &s,
        &[
            "DELETE FROM kv USING TIMESTAMP 2000 WHERE k = 1",
            "INSERT INTO kv (k, v) VALUES (1, 'stale') USING TIMESTAMP 1000",
        ],
    )
    .await;
    let got: Vec<(String,)> = rows(&s, "SELECT v FROM kv WHERE k = 1", ()).await;
    assert!(got.is_empty(), "older write must stay deleted, got {got:?}");
    run(
        &s,
        &["INSERT INTO kv (k, v) VALUES (1, 'fresh') USING TIMESTAMP 3000"],
    )
    .await;
    let got: Vec<(String,)> = rows(&s, "SELECT v FROM kv WHERE k = 1", ()).await;
    assert_eq!(got, vec![("fresh".to_string(),)]);
}

// dml.html § DELETE: deleting a partition removes the rows older than the deletion and only
// those.
#[tokio::test]
async fn partition_deletion_removes_only_older_rows() {
    let (s, _) = session_in_keyspace("ts_part_del").await;
    run(
        &s,
        &[
            "CREATE TABLE t (k int, c int, v text, PRIMARY KEY (k, c))",
            "INSERT INTO t (k, c, v) VALUES (1, 1, 'old') USING TIMESTAMP 1000",
            "INSERT INTO t (k, c, v) VALUES (1, 2, 'new') USING TIMESTAMP 3000",
            "DELETE FROM t USING TIMESTAMP 2000 WHERE k = 1",
        ],
    )
    .await;
    let got: Vec<(i32, String)> = rows(&s, "SELECT c, v FROM t WHERE k = 1", ()).await;
    assert_eq!(got, vec![(2, "new".to_string())]);
}

// dml.html § DELETE: a range of clustering keys can be deleted with a slice restriction on
// the last restricted clustering column.
#[tokio::test]
async fn range_deletion_removes_the_slice() {
    let (s, _) = session_in_keyspace("ts_range_del").await;
    run(
        &s,
        &["CREATE TABLE t (k int, c int, v int, PRIMARY KEY (k, c))"],
    )
    .await;
    for c in 1..=5 {
        s.query_unpaged("INSERT INTO t (k, c, v) VALUES (1, ?, ?)", (c, c))
            .await
            .expect("insert");
    }
    run(&s, &["DELETE FROM t WHERE k = 1 AND c >= 2 AND c < 4"]).await;
    let got: Vec<(i32,)> = rows(&s, "SELECT c FROM t WHERE k = 1", ()).await;
    assert_eq!(got, vec![(1,), (4,), (5,)]);
}

// dml.html § Update parameters: timestamps apply per cell; each column keeps its own newest
// value.
#[tokio::test]
async fn reconciliation_is_per_cell() {
    let (s, _) = kv_table("ts_per_cell").await;
    run(
        &s,
        &[
            "UPDATE kv USING TIMESTAMP 2000 SET v = 'v2000' WHERE k = 1",
            "UPDATE kv USING TIMESTAMP 1000 SET w = 'w1000' WHERE k = 1",
            "UPDATE kv USING TIMESTAMP 1500 SET v = 'v1500', w = 'w1500' WHERE k = 1",
        ],
    )
    .await;
    let got: Vec<(String, String, i64, i64)> = rows(
        &s,
        "SELECT v, w, WRITETIME(v), WRITETIME(w) FROM kv WHERE k = 1",
        (),
    )
    .await;
    assert_eq!(got, vec![("v2000".into(), "w1500".into(), 2000, 1500)]);
}

// Native protocol v4 § 4.1.4 flag 0x20 and dml.html § Update parameters: the client's default
// timestamp is used when the statement has none, and USING TIMESTAMP overrides it.
#[tokio::test]
async fn client_default_timestamp_is_used_unless_overridden() {
    let (s, _) = kv_table("ts_client").await;
    let mut stmt =
        scylla::statement::unprepared::Statement::new("INSERT INTO kv (k, v) VALUES (1, 'a')");
    stmt.set_timestamp(Some(5_000));
    s.query_unpaged(stmt, ())
        .await
        .expect("insert with client timestamp");
    let mut stmt = scylla::statement::unprepared::Statement::new(
        "INSERT INTO kv (k, w) VALUES (1, 'b') USING TIMESTAMP 7000",
    );
    stmt.set_timestamp(Some(6_000));
    s.query_unpaged(stmt, ())
        .await
        .expect("insert with both timestamps");
    let got: Vec<(i64, i64)> = rows(
        &s,
        "SELECT WRITETIME(v), WRITETIME(w) FROM kv WHERE k = 1",
        (),
    )
    .await;
    assert_eq!(got, vec![(5_000, 7_000)]);
}

// dml.html § Update parameters: "If not specified, the coordinator will use the current time
// (in microseconds) at the start of statement execution as the timestamp."
#[tokio::test]
async fn server_default_timestamp_is_now_in_microseconds() {
    let (s, _) = kv_table("ts_server").await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64;
    run(&s, &["INSERT INTO kv (k, v) VALUES (1, 'a')"]).await;
    let got: Vec<(i64,)> = rows(&s, "SELECT WRITETIME(v) FROM kv WHERE k = 1", ()).await;
    let ts = got[0].0;
    assert!(
        (before - 60_000_000..before + 60_000_000).contains(&ts),
        "writetime {ts} is not within a minute of now ({before} µs)"
    );
}

// dml.html § INSERT vs § UPDATE: an INSERT creates the row itself (a row marker), so the row
// survives setting every non-key column to null.
#[tokio::test]
async fn inserted_row_survives_null_columns() {
    let (s, _) = kv_table("ts_marker").await;
    run(
        &s,
        &[
            "INSERT INTO kv (k, v) VALUES (1, 'x')",
            "UPDATE kv SET v = null WHERE k = 1",
        ],
    )
    .await;
    let got: Vec<(i32, Option<String>, Option<String>)> =
        rows(&s, "SELECT k, v, w FROM kv WHERE k = 1", ()).await;
    assert_eq!(got, vec![(1, None, None)]);
}

// dml.html § UPDATE: an UPDATE writes only columns, no row marker, so the row disappears when
// its columns are all deleted.
#[tokio::test]
async fn updated_row_disappears_with_its_last_column() {
    let (s, _) = kv_table("ts_no_marker").await;
    run(
        &s,
        &[
            "UPDATE kv SET v = 'x' WHERE k = 1",
            "DELETE v FROM kv WHERE k = 1",
        ],
    )
    .await;
    let got: Vec<(i32,)> = rows(&s, "SELECT k FROM kv WHERE k = 1", ()).await;
    assert!(
        got.is_empty(),
        "row without marker must vanish, got {got:?}"
    );
}

// Native protocol v4 § 3 [value] and dml.html § INSERT: binding null writes a tombstone for the
// column (the previous value is deleted).
#[tokio::test]
async fn null_bind_deletes_the_column() {
    let (s, _) = kv_table("ts_null_bind").await;
    run(&s, &["INSERT INTO kv (k, v, w) VALUES (1, 'x', 'y')"]).await;
    let insert = s
        .prepare("INSERT INTO kv (k, v, w) VALUES (?, ?, ?)")
        .await
        .expect("prepare");
    s.execute_unpaged(&insert, (1, None::<String>, "z"))
        .await
        .expect("execute");
    let got: Vec<(Option<String>, String)> = rows(&s, "SELECT v, w FROM kv WHERE k = 1", ()).await;
    assert_eq!(got, vec![(None, "z".to_string())]);
}

// Native protocol v4 § 3 [value] (-2 "not set"): an unset value leaves the column untouched.
#[tokio::test]
async fn unset_bind_leaves_the_column() {
    let (s, _) = kv_table("ts_unset").await;
    run(&s, &["INSERT INTO kv (k, v, w) VALUES (1, 'keep', 'y')"]).await;
    let insert = s
        .prepare("INSERT INTO kv (k, v, w) VALUES (?, ?, ?)")
        .await
        .expect("prepare");
    s.execute_unpaged(&insert, (1, MaybeUnset::<String>::Unset, "z"))
        .await
        .expect("execute");
    let got: Vec<(String, String)> = rows(&s, "SELECT v, w FROM kv WHERE k = 1", ()).await;
    assert_eq!(got, vec![("keep".to_string(), "z".to_string())]);
}

// dml.html § Update parameters, TTL: data written with a TTL expires after that many seconds
// (the row marker of an INSERT too).
#[tokio::test]
async fn ttl_expires_the_row() {
    let (s, _) = kv_table("ts_ttl").await;
    run(
        &s,
        &["INSERT INTO kv (k, v) VALUES (1, 'brief') USING TTL 1"],
    )
    .await;
    let present: Vec<(String,)> = rows(&s, "SELECT v FROM kv WHERE k = 1", ()).await;
    assert_eq!(present.len(), 1, "row must exist before its TTL elapses");
    eventually("row with TTL 1 expires", Duration::from_secs(5), || async {
        rows::<(String,)>(&s, "SELECT v FROM kv WHERE k = 1", ())
            .await
            .is_empty()
    })
    .await;
}

// dml.html § Selectors, TTL(): returns the remaining time to live in seconds, null without TTL.
#[tokio::test]
async fn ttl_function_reports_remaining_seconds() {
    let (s, _) = kv_table("ts_ttl_fn").await;
    run(
        &s,
        &[
            "INSERT INTO kv (k, v, w) VALUES (1, 'a', 'b') USING TTL 1000",
            "UPDATE kv SET w = 'c' WHERE k = 1",
        ],
    )
    .await;
    let got: Vec<(Option<i32>, Option<i32>)> =
        rows(&s, "SELECT TTL(v), TTL(w) FROM kv WHERE k = 1", ()).await;
    let ttl = got[0].0.expect("v has a TTL");
    assert!((990..=1000).contains(&ttl), "remaining TTL {ttl}");
    assert_eq!(got[0].1, None, "w was rewritten without TTL");
}

// dml.html § UPDATE with TTL: only the columns set by the statement get the TTL; the row
// (created by INSERT) and other columns stay.
#[tokio::test]
async fn update_ttl_applies_to_set_columns_only() {
    let (s, _) = kv_table("ts_ttl_update").await;
    run(
        &s,
        &[
            "INSERT INTO kv (k, v, w) VALUES (1, 'a', 'b')",
            "UPDATE kv USING TTL 1 SET v = 'short' WHERE k = 1",
        ],
    )
    .await;
    eventually("v expires", Duration::from_secs(5), || async {
        let got: Vec<(Option<String>, Option<String>)> =
            rows(&s, "SELECT v, w FROM kv WHERE k = 1", ()).await;
        got == vec![(None, Some("b".to_string()))]
    })
    .await;
}

// ddl.html § Table options, default_time_to_live: applies when a write has no TTL; an explicit
// TTL of 0 means no TTL.
#[tokio::test]
async fn table_default_ttl_applies_unless_zero_given() {
    let (s, _) = session_in_keyspace("ts_default_ttl").await;
    run(
        &s,
        &[
            "CREATE TABLE t (k int PRIMARY KEY, v text) WITH default_time_to_live = 1000",
            "INSERT INTO t (k, v) VALUES (1, 'default')",
            "INSERT INTO t (k, v) VALUES (2, 'forever') USING TTL 0",
        ],
    )
    .await;
    let mut got: Vec<(i32, Option<i32>)> =
        rows(&s, "SELECT k, TTL(v) FROM t WHERE k IN (1, 2)", ()).await;
    got.sort();
    assert!(
        matches!(got[0], (1, Some(t)) if (990..=1000).contains(&t)),
        "{got:?}"
    );
    assert_eq!(got[1], (2, None));
}

// dml.html § Update parameters: a prepared upsert with `USING TIMESTAMP ?`, replayed out of
// order, converges to the newest version (the processor's write pattern).
#[tokio::test]
async fn prepared_upserts_with_timestamps_converge_regardless_of_order() {
    let (s, _) = kv_table("ts_prepared").await;
    let upsert = s
        .prepare("INSERT INTO kv (k, v) VALUES (?, ?) USING TIMESTAMP ?")
        .await
        .expect("prepare");
    for (v, ts) in [
        ("v3", 3_000i64),
        ("v1", 1_000),
        ("v2", 2_000),
        ("v3", 3_000),
    ] {
        s.execute_unpaged(&upsert, (7, v, ts))
            .await
            .expect("upsert");
    }
    let got: Vec<(String, i64)> = rows(&s, "SELECT v, WRITETIME(v) FROM kv WHERE k = 7", ()).await;
    assert_eq!(got, vec![("v3".to_string(), 3_000)]);
}
