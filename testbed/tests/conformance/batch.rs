//! Batches. References: Cassandra CQL reference, "Data Manipulation" (dml.html) § BATCH;
//! native protocol v4 § 4.1.7 BATCH.

use scylla::statement::batch::{Batch, BatchType};

use crate::common::*;

async fn table(prefix: &str) -> scylla::client::session::Session {
    let (s, _) = session_in_keyspace(prefix).await;
    run(
        &s,
        &["CREATE TABLE t (k int, c int, v text, PRIMARY KEY (k, c))"],
    )
    .await;
    s
}

// Protocol § 4.1.7: a logged batch may mix prepared and simple statements, each with its own
// values; all of them are applied.
#[tokio::test]
async fn logged_batch_mixes_prepared_and_simple() {
    let s = table("batch_mixed").await;
    let prepared = s
        .prepare("INSERT INTO t (k, c, v) VALUES (?, ?, ?)")
        .await
        .expect("prepare");
    let mut batch = Batch::new(BatchType::Logged);
    batch.append_statement(prepared.clone());
    batch.append_statement("INSERT INTO t (k, c, v) VALUES (1, 2, 'simple')");
    batch.append_statement(prepared);
    batch.append_statement("UPDATE t SET v = ? WHERE k = 1 AND c = 4");
    s.batch(&batch, ((1, 1, "p1"), (), (1, 3, "p3"), ("bound",)))
        .await
        .expect("batch");
    let got: Vec<(i32, String)> = rows(&s, "SELECT c, v FROM t WHERE k = 1", ()).await;
    assert_eq!(
        got,
        vec![
            (1, "p1".into()),
            (2, "simple".into()),
            (3, "p3".into()),
            (4, "bound".into())
        ]
    );
}

// dml.html § BATCH: UNLOGGED batches apply their statements too.
#[tokio::test]
async fn unlogged_batch_applies() {
    let s = table("batch_unlogged").await;
    let prepared = s
        .prepare("INSERT INTO t (k, c, v) VALUES (?, ?, ?)")
        .await
        .expect("prepare");
    let mut batch = Batch::new(BatchType::Unlogged);
    for _ in 0..3 {
        batch.append_statement(prepared.clone());
    }
    s.batch(&batch, ((2, 1, "a"), (2, 2, "b"), (2, 3, "c")))
        .await
        .expect("batch");
    let got: Vec<(i64,)> = rows(&s, "SELECT COUNT(*) FROM t WHERE k = 2", ()).await;
    assert_eq!(got, vec![(3,)]);
}

// dml.html § BATCH: "all updates in a BATCH belong to a single timestamp" by default, so an
// insert and a delete of the same row in one batch tie, and the deletion wins.
#[tokio::test]
async fn batch_statements_share_one_timestamp() {
    let s = table("batch_one_ts").await;
    run(&s, &["BEGIN BATCH INSERT INTO t (k, c, v) VALUES (3, 1, 'x'); UPDATE t SET v = 'y' WHERE k = 3 AND c = 2; APPLY BATCH"]).await;
    let got: Vec<(i64, i64)> = rows(
        &s,
        "SELECT WRITETIME(v), WRITETIME(v) FROM t WHERE k = 3 AND c IN (1, 2)",
        (),
    )
    .await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].0, got[1].0,
        "both statements carry the batch timestamp"
    );
    run(&s, &["BEGIN BATCH INSERT INTO t (k, c, v) VALUES (3, 5, 'z'); DELETE FROM t WHERE k = 3 AND c = 5; APPLY BATCH"]).await;
    let got: Vec<(i32,)> = rows(&s, "SELECT c FROM t WHERE k = 3 AND c = 5", ()).await;
    assert!(
        got.is_empty(),
        "the deletion must win the tie inside the batch"
    );
}

// dml.html § BATCH: `BEGIN BATCH USING TIMESTAMP t` applies t to every statement.
#[tokio::test]
async fn batch_level_timestamp_applies_to_all() {
    let s = table("batch_using_ts").await;
    run(&s, &["BEGIN UNLOGGED BATCH USING TIMESTAMP 4242 INSERT INTO t (k, c, v) VALUES (4, 1, 'a'); INSERT INTO t (k, c, v) VALUES (4, 2, 'b'); APPLY BATCH"]).await;
    let got: Vec<(i64,)> = rows(&s, "SELECT WRITETIME(v) FROM t WHERE k = 4", ()).await;
    assert_eq!(got, vec![(4242,), (4242,)]);
}

// Protocol § 4.1.7 flag 0x20: a batch's client timestamp applies to its statements, and an
// older batch loses to newer data.
#[tokio::test]
async fn batch_client_timestamp_reconciles() {
    let s = table("batch_client_ts").await;
    run(
        &s,
        &["INSERT INTO t (k, c, v) VALUES (5, 1, 'newer') USING TIMESTAMP 9000"],
    )
    .await;
    let prepared = s
        .prepare("INSERT INTO t (k, c, v) VALUES (?, ?, ?)")
        .await
        .expect("prepare");
    let mut batch = Batch::new(BatchType::Logged);
    batch.append_statement(prepared.clone());
    batch.append_statement(prepared);
    batch.set_timestamp(Some(8000));
    s.batch(&batch, ((5, 1, "older"), (5, 2, "fresh")))
        .await
        .expect("batch");
    let got: Vec<(i32, String, i64)> =
        rows(&s, "SELECT c, v, WRITETIME(v) FROM t WHERE k = 5", ()).await;
    assert_eq!(
        got,
        vec![(1, "newer".into(), 9000), (2, "fresh".into(), 8000)]
    );
}
