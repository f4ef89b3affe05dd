//! Non-frozen collections. References: Cassandra CQL reference, "Data Types" (types.html)
//! § Maps, § Sets, § Lists.

use std::collections::BTreeMap;

use crate::common::*;

async fn table(prefix: &str) -> scylla::client::session::Session {
    let (s, _) = session_in_keyspace(prefix).await;
    run(
        &s,
        &["CREATE TABLE t (k int PRIMARY KEY, s set<text>, m map<text, int>, l list<int>)"],
    )
    .await;
    s
}

// § Sets: `s = s + {...}` adds elements, `s = s - {...}` removes them.
#[tokio::test]
async fn set_add_and_remove() {
    let s = table("coll_set").await;
    run(
        &s,
        &[
            "INSERT INTO t (k, s) VALUES (1, {'a', 'b'})",
            "UPDATE t SET s = s + {'c', 'a'} WHERE k = 1",
            "UPDATE t SET s = s - {'b'} WHERE k = 1",
        ],
    )
    .await;
    let got: Vec<(Vec<String>,)> = rows(&s, "SELECT s FROM t WHERE k = 1", ()).await;
    assert_eq!(got, vec![(vec!["a".to_string(), "c".to_string()],)]);
}

// § Maps: `m[key] = value` and `m = m + {...}` put entries; DELETE m[key] and `m = m - {keys}`
// remove them.
#[tokio::test]
async fn map_put_and_remove() {
    let s = table("coll_map").await;
    run(
        &s,
        &[
            "INSERT INTO t (k, m) VALUES (1, {'a': 1, 'b': 2})",
            "UPDATE t SET m['c'] = 3, m = m + {'a': 10} WHERE k = 1",
            "DELETE m['b'] FROM t WHERE k = 1",
            "UPDATE t SET m = m - {'zz'} WHERE k = 1",
        ],
    )
    .await;
    let got: Vec<(BTreeMap<String, i32>,)> = rows(&s, "SELECT m FROM t WHERE k = 1", ()).await;
    assert_eq!(
        got,
        vec![(BTreeMap::from([("a".into(), 10), ("c".into(), 3)]),)]
    );
}

// § Lists: append, prepend, set by index and delete by index; removal by value.
#[tokio::test]
async fn list_operations() {
    let s = table("coll_list").await;
    run(
        &s,
        &[
            "INSERT INTO t (k, l) VALUES (1, [1, 2, 3])",
            "UPDATE t SET l = l + [4, 5] WHERE k = 1",
            "UPDATE t SET l = [-1, 0] + l WHERE k = 1",
            "UPDATE t SET l[2] = 100 WHERE k = 1",
            "DELETE l[0] FROM t WHERE k = 1",
            "UPDATE t SET l = l - [5] WHERE k = 1",
        ],
    )
    .await;
    let got: Vec<(Vec<i32>,)> = rows(&s, "SELECT l FROM t WHERE k = 1", ()).await;
    assert_eq!(got, vec![(vec![0, 100, 2, 3, 4],)]);
}

// § Lists: setting an index beyond the list is invalid.
#[tokio::test]
async fn list_index_out_of_bounds_is_invalid() {
    let s = table("coll_list_oob").await;
    run(&s, &["INSERT INTO t (k, l) VALUES (1, [1])"]).await;
    expect_db_error(
        s.query_unpaged("UPDATE t SET l[5] = 1 WHERE k = 1", ())
            .await,
        scylla::errors::DbError::Invalid,
        "index out of bounds",
    );
}

// § Collections: assigning a whole collection replaces its previous content.
#[tokio::test]
async fn assignment_replaces_the_collection() {
    let s = table("coll_replace").await;
    run(
        &s,
        &[
            "INSERT INTO t (k, s, m) VALUES (1, {'a', 'b'}, {'x': 1})",
            "UPDATE t SET s = {'z'}, m = {'y': 2} WHERE k = 1",
        ],
    )
    .await;
    let got: Vec<(Vec<String>, BTreeMap<String, i32>)> =
        rows(&s, "SELECT s, m FROM t WHERE k = 1", ()).await;
    assert_eq!(
        got,
        vec![(vec!["z".into()], BTreeMap::from([("y".into(), 2)]))]
    );
}

// § Collections: an empty (non-frozen) collection is stored as nothing, so it reads as null.
#[tokio::test]
async fn empty_collection_reads_as_null() {
    let s = table("coll_empty").await;
    run(&s, &["INSERT INTO t (k, s, l) VALUES (1, {}, [])"]).await;
    type SetAndList = (Option<Vec<String>>, Option<Vec<i32>>);
    let got: Vec<SetAndList> = rows(&s, "SELECT s, l FROM t WHERE k = 1", ()).await;
    assert_eq!(got, vec![(None, None)]);
}

// § Collections with dml.html § Update parameters: each element carries its own timestamp; an
// overwrite at a newer timestamp shadows an element added later with an older one.
#[tokio::test]
async fn collection_elements_reconcile_by_timestamp() {
    let s = table("coll_ts").await;
    run(
        &s,
        &[
            "UPDATE t USING TIMESTAMP 2000 SET s = {'new'} WHERE k = 1",
            "UPDATE t USING TIMESTAMP 1000 SET s = s + {'stale'} WHERE k = 1",
            "UPDATE t USING TIMESTAMP 3000 SET s = s + {'later'} WHERE k = 1",
        ],
    )
    .await;
    let got: Vec<(Vec<String>,)> = rows(&s, "SELECT s FROM t WHERE k = 1", ()).await;
    assert_eq!(got, vec![(vec!["later".to_string(), "new".to_string()],)]);
}

// § Sets / dml.html § Allowing filtering: CONTAINS filters on collection content.
#[tokio::test]
async fn contains_filters_collections() {
    let s = table("coll_contains").await;
    run(
        &s,
        &[
            "INSERT INTO t (k, s, m) VALUES (1, {'a'}, {'x': 1})",
            "INSERT INTO t (k, s, m) VALUES (2, {'b'}, {'y': 2})",
        ],
    )
    .await;
    let got: Vec<(i32,)> = rows(
        &s,
        "SELECT k FROM t WHERE s CONTAINS 'b' ALLOW FILTERING",
        (),
    )
    .await;
    assert_eq!(got, vec![(2,)]);
    let got: Vec<(i32,)> = rows(
        &s,
        "SELECT k FROM t WHERE m CONTAINS KEY 'x' ALLOW FILTERING",
        (),
    )
    .await;
    assert_eq!(got, vec![(1,)]);
}
