//! Schema statements. References: Cassandra CQL reference, "Data Definition" (ddl.html):
//! CREATE/DROP KEYSPACE, USE, CREATE/ALTER/DROP TABLE, TRUNCATE.

use scylla::errors::DbError;

use crate::common::*;

// ddl.html § CREATE KEYSPACE: creating an existing keyspace fails with AlreadyExists unless
// IF NOT EXISTS is given.
#[tokio::test]
async fn create_existing_keyspace() {
    let s = session().await;
    let ks = keyspace(&s, "ddl_ks_exists").await;
    let again = format!("CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}");
    match s.query_unpaged(again.as_str(), ()).await {
        Err(e) => assert!(
            matches!(db_error(&e), Some((DbError::AlreadyExists { ref keyspace, .. }, _)) if *keyspace == ks),
            "expected AlreadyExists, got {e}"
        ),
        Ok(_) => panic!("re-creating {ks} succeeded"),
    }
    let if_not = format!("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}");
    s.query_unpaged(if_not.as_str(), ())
        .await
        .expect("IF NOT EXISTS is a no-op");
}

// ddl.html § DROP KEYSPACE: dropping a missing keyspace is an error unless IF EXISTS.
#[tokio::test]
async fn drop_missing_keyspace() {
    let s = session().await;
    let name = unique_name("ddl_ks_missing");
    expect_db_error(
        s.query_unpaged(format!("DROP KEYSPACE {name}"), ()).await,
        DbError::Invalid,
        "drop missing keyspace",
    );
    s.query_unpaged(format!("DROP KEYSPACE IF EXISTS {name}"), ())
        .await
        .expect("IF EXISTS");
}

// ddl.html § DROP KEYSPACE: dropping a keyspace removes its tables.
#[tokio::test]
async fn dropped_keyspace_is_gone() {
    let s = session().await;
    let ks = keyspace(&s, "ddl_ks_drop").await;
    run(
        &s,
        &[
            &format!("CREATE TABLE {ks}.t (k int PRIMARY KEY)"),
            &format!("DROP KEYSPACE {ks}"),
        ],
    )
    .await;
    expect_db_error(
        s.query_unpaged(format!("SELECT * FROM {ks}.t"), ()).await,
        DbError::Invalid,
        "table of a dropped keyspace",
    );
}

// ddl.html § USE: using a missing keyspace is invalid.
#[tokio::test]
async fn use_missing_keyspace_is_invalid() {
    let s = session().await;
    expect_db_error(
        s.query_unpaged(format!("USE {}", unique_name("ddl_noks")), ())
            .await,
        DbError::Invalid,
        "USE missing",
    );
}

// ddl.html § CREATE TABLE: creating an existing table fails with AlreadyExists unless IF NOT
// EXISTS.
#[tokio::test]
async fn create_existing_table() {
    let (s, ks) = session_in_keyspace("ddl_tbl_exists").await;
    run(&s, &["CREATE TABLE t (k int PRIMARY KEY)"]).await;
    match s
        .query_unpaged("CREATE TABLE t (k int PRIMARY KEY)", ())
        .await
    {
        Err(e) => assert!(
            matches!(db_error(&e), Some((DbError::AlreadyExists { ref keyspace, ref table }, _)) if *keyspace == ks && table == "t"),
            "expected AlreadyExists, got {e}"
        ),
        Ok(_) => panic!("re-creating table succeeded"),
    }
    run(&s, &["CREATE TABLE IF NOT EXISTS t (k int PRIMARY KEY)"]).await;
}

// ddl.html § DROP TABLE: the table is gone; IF EXISTS tolerates a missing one.
#[tokio::test]
async fn drop_table() {
    let (s, _) = session_in_keyspace("ddl_drop_tbl").await;
    run(
        &s,
        &[
            "CREATE TABLE t (k int PRIMARY KEY)",
            "DROP TABLE t",
            "DROP TABLE IF EXISTS t",
        ],
    )
    .await;
    expect_db_error(
        s.query_unpaged("SELECT * FROM t", ()).await,
        DbError::Invalid,
        "select dropped table",
    );
    expect_db_error(
        s.query_unpaged("DROP TABLE t", ()).await,
        DbError::Invalid,
        "drop missing table",
    );
}

// ddl.html § ALTER TABLE: ADD makes a new column usable.
#[tokio::test]
async fn alter_table_add_column() {
    let (s, _) = session_in_keyspace("ddl_alter_add").await;
    run(
        &s,
        &[
            "CREATE TABLE t (k int PRIMARY KEY, v text)",
            "INSERT INTO t (k, v) VALUES (1, 'a')",
            "ALTER TABLE t ADD extra int",
            "UPDATE t SET extra = 5 WHERE k = 1",
        ],
    )
    .await;
    let got: Vec<(String, i32)> = rows(&s, "SELECT v, extra FROM t WHERE k = 1", ()).await;
    assert_eq!(got, vec![("a".to_string(), 5)]);
}

// ddl.html § ALTER TABLE: DROP removes the column (and its data: re-adding it does not bring
// the old values back).
#[tokio::test]
async fn alter_table_drop_column() {
    let (s, _) = session_in_keyspace("ddl_alter_drop").await;
    run(
        &s,
        &[
            "CREATE TABLE t (k int PRIMARY KEY, v text, gone text)",
            "INSERT INTO t (k, v, gone) VALUES (1, 'a', 'old')",
            "ALTER TABLE t DROP gone",
        ],
    )
    .await;
    assert_eq!(column_names(&s, "SELECT * FROM t").await, vec!["k", "v"]);
    s.await_schema_agreement().await.expect("schema agreement");
    run(&s, &["ALTER TABLE t ADD gone text"]).await;
    let got: Vec<(Option<String>,)> = rows(&s, "SELECT gone FROM t WHERE k = 1", ()).await;
    assert_eq!(got, vec![(None,)]);
}

// ddl.html § ALTER TABLE: primary key columns cannot be dropped.
#[tokio::test]
async fn alter_table_cannot_drop_key_column() {
    let (s, _) = session_in_keyspace("ddl_alter_pk").await;
    run(&s, &["CREATE TABLE t (k int PRIMARY KEY, v text)"]).await;
    expect_db_error(
        s.query_unpaged("ALTER TABLE t DROP k", ()).await,
        DbError::Invalid,
        "drop pk column",
    );
}

// ddl.html § TRUNCATE: removes all data, keeps the table.
#[tokio::test]
async fn truncate_empties_the_table() {
    let (s, _) = session_in_keyspace("ddl_truncate").await;
    run(
        &s,
        &[
            "CREATE TABLE t (k int PRIMARY KEY, v text)",
            "INSERT INTO t (k, v) VALUES (1, 'a')",
            "INSERT INTO t (k, v) VALUES (2, 'b')",
            "TRUNCATE t",
        ],
    )
    .await;
    let got: Vec<(i32,)> = rows(&s, "SELECT k FROM t", ()).await;
    assert!(got.is_empty());
    run(&s, &["INSERT INTO t (k, v) VALUES (3, 'c')"]).await;
    let got: Vec<(i32,)> = rows(&s, "SELECT k FROM t", ()).await;
    assert_eq!(got, vec![(3,)]);
}

// ddl.html § The primary key / types.html § Collections: a primary key column cannot be a
// non-frozen collection.
#[tokio::test]
async fn non_frozen_collection_key_is_invalid() {
    let (s, _) = session_in_keyspace("ddl_coll_pk").await;
    expect_db_error(
        s.query_unpaged("CREATE TABLE t (k set<int> PRIMARY KEY, v int)", ())
            .await,
        DbError::Invalid,
        "non-frozen set as key",
    );
    run(
        &s,
        &["CREATE TABLE t2 (k frozen<set<int>> PRIMARY KEY, v int)"],
    )
    .await;
}

// ddl.html § CREATE TABLE: an unqualified table name needs a keyspace from USE.
#[tokio::test]
async fn table_without_keyspace_is_invalid() {
    let s = session().await;
    expect_db_error(
        s.query_unpaged("CREATE TABLE no_keyspace_here (k int PRIMARY KEY)", ())
            .await,
        DbError::Invalid,
        "no keyspace",
    );
}

// ddl.html § CREATE TABLE: the schema is published in system_schema.columns with each
// column's kind, position and clustering order.
#[tokio::test]
async fn schema_tables_describe_columns() {
    let (s, ks) = session_in_keyspace("ddl_sys_cols").await;
    run(&s, &["CREATE TABLE t (a int, b text, c timestamp, v map<text, int>, PRIMARY KEY ((a, b), c)) WITH CLUSTERING ORDER BY (c DESC)"]).await;
    let mut got: Vec<(String, String, i32, String, String)> = rows(
        &s,
        "SELECT column_name, kind, position, clustering_order, type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = 't'",
        (ks.as_str(),),
    )
    .await;
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "a".into(),
                "partition_key".into(),
                0,
                "none".into(),
                "int".into()
            ),
            (
                "b".into(),
                "partition_key".into(),
                1,
                "none".into(),
                "text".into()
            ),
            (
                "c".into(),
                "clustering".into(),
                0,
                "desc".into(),
                "timestamp".into()
            ),
            (
                "v".into(),
                "regular".into(),
                -1,
                "none".into(),
                "map<text, int>".into()
            ),
        ]
    );
}

// ddl.html § CREATE KEYSPACE: the replication options are published in
// system_schema.keyspaces.
#[tokio::test]
async fn schema_tables_describe_keyspaces() {
    let s = session().await;
    let ks = keyspace(&s, "ddl_sys_ks").await;
    let got: Vec<(std::collections::HashMap<String, String>, bool)> = rows(
        &s,
        "SELECT replication, durable_writes FROM system_schema.keyspaces WHERE keyspace_name = ?",
        (ks.as_str(),),
    )
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].0.get("class").map(String::as_str),
        Some("org.apache.cassandra.locator.SimpleStrategy")
    );
    assert_eq!(
        got[0].0.get("replication_factor").map(String::as_str),
        Some("1")
    );
    assert!(got[0].1);
}
