//! SELECT. References: Cassandra CQL reference, "Data Manipulation" (dml.html) § SELECT and
//! its subsections (Selection clause, The WHERE clause, Ordering results, Limiting results,
//! Allowing filtering).

use scylla::errors::DbError;

use crate::common::*;

async fn clustered(prefix: &str) -> scylla::client::session::Session {
    let (s, _) = session_in_keyspace(prefix).await;
    run(
        &s,
        &["CREATE TABLE t (k int, c int, v text, n int, PRIMARY KEY (k, c))"],
    )
    .await;
    let insert = s
        .prepare("INSERT INTO t (k, c, v, n) VALUES (?, ?, ?, ?)")
        .await
        .expect("prepare");
    for k in 1..=3 {
        for c in 1..=4 {
            s.execute_unpaged(&insert, (k, c, format!("{k}-{c}"), k * 10 + c))
                .await
                .expect("insert");
        }
    }
    s
}

// § Selection clause: `*` selects every column: partition key, clustering columns, then the
// other columns in alphabetical order.
#[tokio::test]
async fn star_selects_columns_in_schema_order() {
    let (s, _) = session_in_keyspace("sel_star").await;
    run(
        &s,
        &[
            "CREATE TABLE t (z int, a int, y text, b text, PRIMARY KEY (z, a))",
            "INSERT INTO t (z, a, y, b) VALUES (1, 2, 'y', 'b')",
        ],
    )
    .await;
    assert_eq!(
        column_names(&s, "SELECT * FROM t").await,
        vec!["z", "a", "b", "y"]
    );
}

// § Selection clause: an alias (AS) renames the result column.
#[tokio::test]
async fn alias_renames_result_columns() {
    let s = clustered("sel_alias").await;
    assert_eq!(
        column_names(&s, "SELECT v AS value, c AS position FROM t WHERE k = 1").await,
        vec!["value", "position"]
    );
}

// § The WHERE clause: the partition key can be restricted with = and IN.
#[tokio::test]
async fn partition_key_in_selects_those_partitions() {
    let s = clustered("sel_in").await;
    let mut got: Vec<(i32, i32)> =
        rows(&s, "SELECT k, c FROM t WHERE k IN (1, 3) AND c = 2", ()).await;
    got.sort();
    assert_eq!(got, vec![(1, 2), (3, 2)]);
}

// § The WHERE clause: clustering columns can be restricted with slices; rows come back in
// clustering order.
#[tokio::test]
async fn clustering_slice_returns_rows_in_order() {
    let s = clustered("sel_slice").await;
    let got: Vec<(i32,)> = rows(&s, "SELECT c FROM t WHERE k = 2 AND c > 1 AND c <= 3", ()).await;
    assert_eq!(got, vec![(2,), (3,)]);
}

// § The WHERE clause: IN on a clustering column.
#[tokio::test]
async fn clustering_in_selects_those_rows() {
    let s = clustered("sel_ck_in").await;
    let got: Vec<(i32,)> = rows(&s, "SELECT c FROM t WHERE k = 2 AND c IN (4, 1)", ()).await;
    assert_eq!(got, vec![(1,), (4,)]);
}

// ddl.html § Clustering order: WITH CLUSTERING ORDER BY (c DESC) stores and returns rows in
// descending order.
#[tokio::test]
async fn clustering_order_desc_is_the_default_read_order() {
    let (s, _) = session_in_keyspace("sel_desc").await;
    run(
        &s,
        &[
            "CREATE TABLE t (k int, c int, PRIMARY KEY (k, c)) WITH CLUSTERING ORDER BY (c DESC)",
            "INSERT INTO t (k, c) VALUES (1, 1)",
            "INSERT INTO t (k, c) VALUES (1, 3)",
            "INSERT INTO t (k, c) VALUES (1, 2)",
        ],
    )
    .await;
    let got: Vec<(i32,)> = rows(&s, "SELECT c FROM t WHERE k = 1", ()).await;
    assert_eq!(got, vec![(3,), (2,), (1,)]);
    let got: Vec<(i32,)> = rows(&s, "SELECT c FROM t WHERE k = 1 ORDER BY c ASC", ()).await;
    assert_eq!(got, vec![(1,), (2,), (3,)]);
}

// § Ordering results: ORDER BY on the clustering column reverses the order.
#[tokio::test]
async fn order_by_desc_reverses() {
    let s = clustered("sel_order").await;
    let got: Vec<(i32,)> = rows(&s, "SELECT c FROM t WHERE k = 1 ORDER BY c DESC", ()).await;
    assert_eq!(got, vec![(4,), (3,), (2,), (1,)]);
}

// § Ordering results: ORDER BY needs the partition key restricted by = or IN.
#[tokio::test]
async fn order_by_without_partition_restriction_is_invalid() {
    let s = clustered("sel_order_inv").await;
    expect_db_error(
        s.query_unpaged("SELECT c FROM t ORDER BY c DESC", ()).await,
        DbError::Invalid,
        "ORDER BY on a scan",
    );
}

// § Limiting results: LIMIT caps the number of rows returned.
#[tokio::test]
async fn limit_caps_rows() {
    let s = clustered("sel_limit").await;
    let got: Vec<(i32,)> = rows(&s, "SELECT c FROM t WHERE k = 3 LIMIT 2", ()).await;
    assert_eq!(got, vec![(1,), (2,)]);
    let all: Vec<(i32, i32)> = rows(&s, "SELECT k, c FROM t LIMIT 5", ()).await;
    assert_eq!(all.len(), 5);
}

// § Limiting results: PER PARTITION LIMIT caps rows per partition.
#[tokio::test]
async fn per_partition_limit_caps_each_partition() {
    let s = clustered("sel_ppl").await;
    let got: Vec<(i32, i32)> = rows(&s, "SELECT k, c FROM t PER PARTITION LIMIT 1", ()).await;
    let mut ks: Vec<i32> = got
        .iter()
        .map(|(k, c)| {
            assert_eq!(*c, 1, "the first row of each partition");
            *k
        })
        .collect();
    ks.sort();
    assert_eq!(ks, vec![1, 2, 3]);
}

// § Aggregates: COUNT(*) counts the selected rows, as a bigint column named "count".
#[tokio::test]
async fn count_star_counts_rows() {
    let s = clustered("sel_count").await;
    let got: Vec<(i64,)> = rows(&s, "SELECT COUNT(*) FROM t WHERE k = 2", ()).await;
    assert_eq!(got, vec![(4,)]);
    let got: Vec<(i64,)> = rows(&s, "SELECT COUNT(*) FROM t", ()).await;
    assert_eq!(got, vec![(12,)]);
    assert_eq!(
        column_names(&s, "SELECT COUNT(*) FROM t").await,
        vec!["count"]
    );
}

// § Aggregates: COUNT(*) over no rows is 0.
#[tokio::test]
async fn count_of_nothing_is_zero() {
    let s = clustered("sel_count0").await;
    let got: Vec<(i64,)> = rows(&s, "SELECT COUNT(*) FROM t WHERE k = 99", ()).await;
    assert_eq!(got, vec![(0,)]);
}

// § Allowing filtering: restricting a non-key column needs ALLOW FILTERING; without it the
// query is rejected.
#[tokio::test]
async fn filtering_needs_allow_filtering() {
    let s = clustered("sel_filter_inv").await;
    expect_db_error(
        s.query_unpaged("SELECT k FROM t WHERE n = 23", ()).await,
        DbError::Invalid,
        "filter without ALLOW FILTERING",
    );
}

// § Allowing filtering: with ALLOW FILTERING the scan returns only matching rows.
#[tokio::test]
async fn allow_filtering_scans_and_filters() {
    let s = clustered("sel_filter").await;
    let mut got: Vec<(i32, i32)> = rows(
        &s,
        "SELECT k, c FROM t WHERE n > 22 AND c < 4 ALLOW FILTERING",
        (),
    )
    .await;
    got.sort();
    assert_eq!(got, vec![(2, 3), (3, 1), (3, 2), (3, 3)]);
}

// § Selection clause: SELECT DISTINCT on the partition key returns each partition once.
#[tokio::test]
async fn distinct_returns_each_partition_once() {
    let s = clustered("sel_distinct").await;
    let mut got: Vec<(i32,)> = rows(&s, "SELECT DISTINCT k FROM t", ()).await;
    got.sort();
    assert_eq!(got, vec![(1,), (2,), (3,)]);
}

// ddl.html § The partition key: with a compound partition key every part must be restricted.
#[tokio::test]
async fn compound_partition_key_needs_every_part() {
    let (s, _) = session_in_keyspace("sel_compound").await;
    run(
        &s,
        &[
            "CREATE TABLE t (a int, b text, c int, v int, PRIMARY KEY ((a, b), c))",
            "INSERT INTO t (a, b, c, v) VALUES (1, 'x', 1, 10)",
            "INSERT INTO t (a, b, c, v) VALUES (1, 'y', 1, 20)",
        ],
    )
    .await;
    let got: Vec<(i32,)> = rows(&s, "SELECT v FROM t WHERE a = 1 AND b = 'y'", ()).await;
    assert_eq!(got, vec![(20,)]);
    expect_db_error(
        s.query_unpaged("SELECT v FROM t WHERE a = 1", ()).await,
        DbError::Invalid,
        "partial partition key",
    );
}

// § The WHERE clause: a clustering column cannot be restricted when the preceding one is not
// (without ALLOW FILTERING).
#[tokio::test]
async fn skipping_a_clustering_column_is_invalid() {
    let (s, _) = session_in_keyspace("sel_skip_ck").await;
    run(
        &s,
        &["CREATE TABLE t (k int, c1 int, c2 int, PRIMARY KEY (k, c1, c2))"],
    )
    .await;
    expect_db_error(
        s.query_unpaged("SELECT * FROM t WHERE k = 1 AND c2 = 1", ())
            .await,
        DbError::Invalid,
        "c2 without c1",
    );
}

// § Selection clause: selecting an unknown column is invalid.
#[tokio::test]
async fn unknown_column_is_invalid() {
    let s = clustered("sel_unknown").await;
    expect_db_error(
        s.query_unpaged("SELECT nope FROM t", ()).await,
        DbError::Invalid,
        "unknown column",
    );
}

// § SELECT: without WHERE every row of every partition is returned.
#[tokio::test]
async fn full_scan_returns_every_row() {
    let s = clustered("sel_scan").await;
    let got: Vec<(i32, i32)> = rows(&s, "SELECT k, c FROM t", ()).await;
    assert_eq!(got.len(), 12);
    // Within a partition rows come in clustering order.
    let in_k2: Vec<i32> = got
        .iter()
        .filter(|(k, _)| *k == 2)
        .map(|(_, c)| *c)
        .collect();
    assert_eq!(in_k2, vec![1, 2, 3, 4]);
}

// § Selectors, WRITETIME(): not allowed on primary key columns.
#[tokio::test]
async fn writetime_of_a_key_column_is_invalid() {
    let s = clustered("sel_wt_pk").await;
    expect_db_error(
        s.query_unpaged("SELECT WRITETIME(c) FROM t WHERE k = 1", ())
            .await,
        DbError::Invalid,
        "writetime of clustering key",
    );
}
