//! The scylla driver with default settings against the node.

use crate::common::*;

// CQL reference, "Data Definition" > CREATE KEYSPACE / USE: a default session connects
// (metadata fetch and schema agreement included), creates a keyspace and switches to it.
#[tokio::test]
async fn default_session_connects_and_uses_a_keyspace() {
    let (session, ks) = session_in_keyspace("drv_connect").await;
    run(&session, &["CREATE TABLE t (k int PRIMARY KEY, v text)"]).await;
    session
        .await_schema_agreement()
        .await
        .expect("schema agreement");
    session.refresh_metadata().await.expect("metadata refresh");
    let state = session.get_cluster_state();
    let table = state
        .get_keyspace(&ks)
        .and_then(|k| k.tables.get("t"))
        .expect("table t in driver metadata");
    assert_eq!(table.partition_key, vec!["k".to_string()]);
}

use futures::TryStreamExt;
use scylla::statement::unprepared::Statement;

async fn numbered(prefix: &str, n: i32) -> scylla::client::session::Session {
    let (s, _) = session_in_keyspace(prefix).await;
    run(
        &s,
        &["CREATE TABLE t (k int, c int, v text, PRIMARY KEY (k, c))"],
    )
    .await;
    let insert = s
        .prepare("INSERT INTO t (k, c, v) VALUES (?, ?, ?)")
        .await
        .expect("prepare");
    for c in 0..n {
        s.execute_unpaged(&insert, (c % 3, c, format!("v{c}")))
            .await
            .expect("insert");
    }
    s
}

// Protocol § 8 (Result paging): `execute_iter` pages through every row of a prepared SELECT.
#[tokio::test]
async fn execute_iter_pages_through_all_rows() {
    let s = numbered("drv_exec_iter", 25).await;
    let mut select = s
        .prepare("SELECT c FROM t WHERE k = ?")
        .await
        .expect("prepare");
    select.set_page_size(3);
    let got: Vec<(i32,)> = s
        .execute_iter(select, (1,))
        .await
        .expect("execute_iter")
        .rows_stream::<(i32,)>()
        .expect("typed stream")
        .try_collect()
        .await
        .expect("rows");
    assert_eq!(
        got,
        (0..25)
            .filter(|c| c % 3 == 1)
            .map(|c| (c,))
            .collect::<Vec<_>>()
    );
}

// Protocol § 8 with dml.html § Allowing filtering: `query_iter` pages a filtered full scan.
#[tokio::test]
async fn query_iter_pages_a_filtered_scan() {
    let s = numbered("drv_query_iter", 30).await;
    let statement =
        Statement::new("SELECT c FROM t WHERE c >= 10 ALLOW FILTERING").with_page_size(4);
    let mut got: Vec<(i32,)> = s
        .query_iter(statement, ())
        .await
        .expect("query_iter")
        .rows_stream::<(i32,)>()
        .expect("typed stream")
        .try_collect()
        .await
        .expect("rows");
    got.sort();
    assert_eq!(got, (10..30).map(|c| (c,)).collect::<Vec<_>>());
}

// Protocol § 8: a page of a given size comes with a paging state that continues the query
// exactly where it stopped.
#[tokio::test]
async fn paging_state_continues_the_query() {
    let s = numbered("drv_paging_state", 12).await;
    let statement = Statement::new("SELECT k, c FROM t").with_page_size(5);
    let mut state = scylla::response::PagingState::start();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (result, response) = s
            .query_single_page(statement.clone(), (), state)
            .await
            .expect("page");
        let page: Vec<(i32, i32)> = result
            .into_rows_result()
            .expect("rows")
            .rows::<(i32, i32)>()
            .expect("types")
            .collect::<Result<_, _>>()
            .expect("deserialize");
        assert!(
            page.len() <= 5,
            "page of {} rows exceeds the page size",
            page.len()
        );
        seen.extend(page);
        pages += 1;
        match response.into_paging_control_flow() {
            std::ops::ControlFlow::Break(()) => break,
            std::ops::ControlFlow::Continue(next) => state = next,
        }
    }
    assert!(
        pages >= 3,
        "12 rows in pages of 5 need at least 3 pages, got {pages}"
    );
    seen.sort();
    let mut expected: Vec<(i32, i32)> = (0..12).map(|c| (c % 3, c)).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

// Protocol § 4.2.5.4 (Prepared): the bind metadata carries the column types, so the driver
// refuses to bind a value of the wrong type before sending anything.
#[tokio::test]
async fn prepared_metadata_types_are_enforced_by_the_driver() {
    let (s, _) = session_in_keyspace("drv_typecheck").await;
    run(&s, &["CREATE TABLE t (k int PRIMARY KEY, v bigint)"]).await;
    let insert = s
        .prepare("INSERT INTO t (k, v) VALUES (?, ?)")
        .await
        .expect("prepare");
    let specs: Vec<String> = insert
        .get_variable_col_specs()
        .iter()
        .map(|c| format!("{}:{:?}", c.name(), c.typ()))
        .collect();
    assert_eq!(specs.len(), 2, "{specs:?}");
    assert!(s
        .execute_unpaged(&insert, (1, "not a bigint"))
        .await
        .is_err());
    s.execute_unpaged(&insert, (1, 5i64))
        .await
        .expect("correctly typed values");
    assert_eq!(insert.get_variable_pk_indexes().len(), 1);
}

// Protocol § 4.2.5.4: the prepared result metadata describes the SELECT's columns.
#[tokio::test]
async fn prepared_select_result_metadata() {
    let (s, _) = session_in_keyspace("drv_result_meta").await;
    run(
        &s,
        &["CREATE TABLE t (k int PRIMARY KEY, v text, w double)"],
    )
    .await;
    let select = s
        .prepare("SELECT w, v AS renamed FROM t WHERE k = ?")
        .await
        .expect("prepare");
    let specs = select.get_current_result_set_col_specs();
    let names: Vec<String> = specs.get().iter().map(|c| c.name().to_string()).collect();
    assert_eq!(names, vec!["w", "renamed"]);
}

// ddl.html § USE: after `use_keyspace`, unqualified names resolve in that keyspace, while
// qualified names keep working.
#[tokio::test]
async fn use_keyspace_resolves_unqualified_names() {
    let (s, ks) = session_in_keyspace("drv_use").await;
    run(
        &s,
        &[
            "CREATE TABLE t (k int PRIMARY KEY)",
            "INSERT INTO t (k) VALUES (1)",
        ],
    )
    .await;
    let got: Vec<(i32,)> = rows(&s, &format!("SELECT k FROM {ks}.t"), ()).await;
    assert_eq!(got, vec![(1,)]);
}
