//! Error classes. References: native protocol v4 § 9 (error codes) and the CQL reference
//! sections on the statements involved.

use scylla::errors::DbError;

use crate::common::*;

// Protocol § 9 (0x2000 Syntax_error): malformed CQL is a syntax error, and the session stays
// usable afterwards.
#[tokio::test]
async fn malformed_statement_is_a_syntax_error() {
    let (s, _) = session_in_keyspace("err_syntax").await;
    expect_db_error(
        s.query_unpaged("SELEKT * FROM t", ()).await,
        DbError::SyntaxError,
        "misspelt keyword",
    );
    expect_db_error(
        s.query_unpaged("INSERT INTO t (k VALUES (1)", ()).await,
        DbError::SyntaxError,
        "unbalanced parenthesis",
    );
    run(
        &s,
        &[
            "CREATE TABLE t (k int PRIMARY KEY)",
            "INSERT INTO t (k) VALUES (1)",
        ],
    )
    .await;
}

// dml.html § SELECT + protocol § 9 (0x2200 Invalid): reading an unknown table is invalid.
#[tokio::test]
async fn unknown_table_is_invalid() {
    let (s, _) = session_in_keyspace("err_table").await;
    expect_db_error(
        s.query_unpaged("SELECT * FROM nothing_here", ()).await,
        DbError::Invalid,
        "unknown table",
    );
}

// dml.html § INSERT: every primary key column must be given.
#[tokio::test]
async fn insert_without_full_primary_key_is_invalid() {
    let (s, _) = session_in_keyspace("err_pk").await;
    run(
        &s,
        &["CREATE TABLE t (k int, c int, v int, PRIMARY KEY (k, c))"],
    )
    .await;
    expect_db_error(
        s.query_unpaged("INSERT INTO t (k, v) VALUES (1, 1)", ())
            .await,
        DbError::Invalid,
        "missing clustering key",
    );
    expect_db_error(
        s.query_unpaged("INSERT INTO t (c, v) VALUES (1, 1)", ())
            .await,
        DbError::Invalid,
        "missing partition key",
    );
}

// dml.html § UPDATE: the WHERE clause must name the full primary key; a regular column there is
// invalid.
#[tokio::test]
async fn update_where_on_regular_column_is_invalid() {
    let (s, _) = session_in_keyspace("err_upd").await;
    run(&s, &["CREATE TABLE t (k int PRIMARY KEY, v int, w int)"]).await;
    expect_db_error(
        s.query_unpaged("UPDATE t SET v = 1 WHERE w = 2", ()).await,
        DbError::Invalid,
        "where on regular column",
    );
}

// dml.html § UPDATE: a primary key column cannot be SET.
#[tokio::test]
async fn setting_a_key_column_is_invalid() {
    let (s, _) = session_in_keyspace("err_set_pk").await;
    run(&s, &["CREATE TABLE t (k int PRIMARY KEY, v int)"]).await;
    expect_db_error(
        s.query_unpaged("UPDATE t SET k = 2 WHERE k = 1", ()).await,
        DbError::Invalid,
        "set pk",
    );
}

// types.html / definitions.html § Constants: a constant of the wrong kind for the column type
// is invalid.
#[tokio::test]
async fn literal_of_the_wrong_type_is_invalid() {
    let (s, _) = session_in_keyspace("err_literal").await;
    run(&s, &["CREATE TABLE t (k int PRIMARY KEY, v int, u uuid)"]).await;
    expect_db_error(
        s.query_unpaged("INSERT INTO t (k, v) VALUES (1, 'text')", ())
            .await,
        DbError::Invalid,
        "string into int",
    );
    expect_db_error(
        s.query_unpaged("INSERT INTO t (k, u) VALUES (1, 42)", ())
            .await,
        DbError::Invalid,
        "integer into uuid",
    );
    expect_db_error(
        s.query_unpaged("INSERT INTO t (k, v) VALUES (1, 3000000000)", ())
            .await,
        DbError::Invalid,
        "int overflow",
    );
}

// dml.html § Update parameters: a negative TTL is invalid.
#[tokio::test]
async fn negative_ttl_is_invalid() {
    let (s, _) = session_in_keyspace("err_ttl").await;
    run(&s, &["CREATE TABLE t (k int PRIMARY KEY, v int)"]).await;
    expect_db_error(
        s.query_unpaged("INSERT INTO t (k, v) VALUES (1, 1) USING TTL -1", ())
            .await,
        DbError::Invalid,
        "negative TTL",
    );
}
