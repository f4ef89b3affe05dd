//! Conditional writes limited to IF [NOT] EXISTS. References: Cassandra CQL reference, "Data
//! Manipulation" (dml.html) § INSERT (IF NOT EXISTS), § UPDATE and § DELETE (IF EXISTS).

use scylla::errors::DbError;

use crate::common::*;

async fn table(prefix: &str) -> scylla::client::session::Session {
    let (s, _) = session_in_keyspace(prefix).await;
    run(&s, &["CREATE TABLE t (k int PRIMARY KEY, v text)"]).await;
    s
}

// § INSERT: IF NOT EXISTS applies only if the row does not exist, answering `[applied]` and,
// when not applied, the existing row.
#[tokio::test]
async fn insert_if_not_exists() {
    let s = table("lwt_insert").await;
    let first: Vec<(bool,)> = rows(
        &s,
        "INSERT INTO t (k, v) VALUES (1, 'first') IF NOT EXISTS",
        (),
    )
    .await;
    assert_eq!(first, vec![(true,)]);
    let result = s
        .query_unpaged(
            "INSERT INTO t (k, v) VALUES (1, 'second') IF NOT EXISTS",
            (),
        )
        .await
        .expect("second insert")
        .into_rows_result()
        .expect("rows");
    let names: Vec<&str> = result.column_specs().iter().map(|c| c.name()).collect();
    assert_eq!(names[0], "[applied]");
    let (applied, k, v) = result.first_row::<(bool, i32, String)>().expect("row");
    assert_eq!((applied, k, v.as_str()), (false, 1, "first"));
    let got: Vec<(String,)> = rows(&s, "SELECT v FROM t WHERE k = 1", ()).await;
    assert_eq!(got, vec![("first".to_string(),)]);
}

// § UPDATE: IF EXISTS on a missing row does nothing (and creates nothing).
#[tokio::test]
async fn update_if_exists() {
    let s = table("lwt_update").await;
    let got: Vec<(bool,)> = rows(&s, "UPDATE t SET v = 'x' WHERE k = 1 IF EXISTS", ()).await;
    assert_eq!(got, vec![(false,)]);
    assert!(rows::<(i32,)>(&s, "SELECT k FROM t WHERE k = 1", ())
        .await
        .is_empty());
    run(&s, &["INSERT INTO t (k, v) VALUES (1, 'a')"]).await;
    let got: Vec<(bool,)> = rows(&s, "UPDATE t SET v = 'b' WHERE k = 1 IF EXISTS", ()).await;
    assert_eq!(got, vec![(true,)]);
    let got: Vec<(String,)> = rows(&s, "SELECT v FROM t WHERE k = 1", ()).await;
    assert_eq!(got, vec![("b".to_string(),)]);
}

// § DELETE: IF EXISTS deletes an existing row and reports it.
#[tokio::test]
async fn delete_if_exists() {
    let s = table("lwt_delete").await;
    run(&s, &["INSERT INTO t (k, v) VALUES (1, 'a')"]).await;
    let got: Vec<(bool,)> = rows(&s, "DELETE FROM t WHERE k = 1 IF EXISTS", ()).await;
    assert_eq!(got, vec![(true,)]);
    let got: Vec<(bool,)> = rows(&s, "DELETE FROM t WHERE k = 1 IF EXISTS", ()).await;
    assert_eq!(got, vec![(false,)]);
}

// § Update parameters: a custom timestamp cannot be combined with a condition.
#[tokio::test]
async fn conditional_write_rejects_custom_timestamp() {
    let s = table("lwt_ts").await;
    expect_db_error(
        s.query_unpaged(
            "INSERT INTO t (k, v) VALUES (1, 'a') IF NOT EXISTS USING TIMESTAMP 5",
            (),
        )
        .await,
        DbError::Invalid,
        "IF NOT EXISTS with USING TIMESTAMP",
    );
}
