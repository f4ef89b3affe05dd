//! Native protocol v4 behaviour (doc/native_protocol_v4.spec).

use crate::client::*;

// § 2.1 and § 9 (0x000A): a request in an unsupported version (v5) is answered with a protocol
// error naming the supported version, in a v4 response frame, so drivers retry with v4.
#[tokio::test]
async fn v5_request_is_answered_so_drivers_fall_back_to_v4() {
    let mut c = Client::connect().await;
    let f = c.request(5, 0, OPTIONS, &[]).await;
    assert_eq!(f.version, 0x84);
    let (code, message) = f.error();
    assert_eq!(code, 0x000A);
    assert!(
        message.contains("unsupported protocol version"),
        "{message}"
    );
    assert!(message.contains("4/v4"), "{message}");
    let mut c = Client::connect().await;
    let f = c
        .request(4, 0, STARTUP, &string_map(&[("CQL_VERSION", "3.0.0")]))
        .await;
    assert_eq!(f.opcode, READY);
}

// § 4.1.3 / § 4.2.4: OPTIONS is answered with SUPPORTED listing the CQL version.
#[tokio::test]
async fn options_lists_supported_startup_options() {
    let mut c = Client::connect().await;
    let f = c.request(4, 3, OPTIONS, &[]).await;
    assert_eq!(f.opcode, SUPPORTED);
    let text = String::from_utf8_lossy(&f.body);
    assert!(
        text.contains("CQL_VERSION") && text.contains("COMPRESSION"),
        "{text}"
    );
}

// § 4.1.6 and § 9 (0x2500): EXECUTE of an unknown id answers Unprepared carrying that id.
#[tokio::test]
async fn execute_of_unknown_id_is_unprepared() {
    let mut c = Client::ready().await;
    let id = [0xAB_u8; 16];
    let mut body = (id.len() as u16).to_be_bytes().to_vec();
    body.extend(id);
    body.extend(1u16.to_be_bytes());
    body.push(0);
    let f = c.request(4, 7, EXECUTE, &body).await;
    let (code, _) = f.error();
    assert_eq!(code, 0x2500);
    let message_len = u16::from_be_bytes([f.body[4], f.body[5]]) as usize;
    let rest = &f.body[6 + message_len..];
    assert_eq!(&rest[..2], &16u16.to_be_bytes());
    assert_eq!(&rest[2..], &id);
}

// § 4.1.1: messages before STARTUP are a protocol error, and the connection stays open.
#[tokio::test]
async fn query_before_startup_is_a_protocol_error() {
    let mut c = Client::connect().await;
    let (code, _) = c.query("SELECT key FROM system.local").await.error();
    assert_eq!(code, 0x000A);
    let f = c
        .request(4, 0, STARTUP, &string_map(&[("CQL_VERSION", "3.0.0")]))
        .await;
    assert_eq!(f.opcode, READY);
}

// Unsupported statements get an Invalid error naming what is unsupported; the connection
// survives and keeps serving.
#[tokio::test]
async fn unsupported_statement_keeps_the_connection() {
    let mut c = Client::ready().await;
    for (cql, named) in [
        ("CREATE INDEX ON ks.t (v)", "CREATE INDEX"),
        (
            "CREATE MATERIALIZED VIEW ks.v AS SELECT * FROM ks.t",
            "MATERIALIZED VIEW",
        ),
        ("SELECT JSON * FROM system.local", "SELECT JSON"),
        (
            "UPDATE ks.t SET v = 1 WHERE k = 1 IF v = 2",
            "lightweight transactions",
        ),
        (
            "CREATE TABLE ks.c (k int PRIMARY KEY, n counter)",
            "counter",
        ),
    ] {
        let (code, message) = c.query(cql).await.error();
        assert_eq!(code, 0x2200, "{cql}: {message}");
        assert!(
            message.contains(named),
            "{cql}: message {message:?} should name {named}"
        );
    }
    let (code, _) = c.query("THIS IS NOT CQL").await.error();
    assert_eq!(code, 0x2000);
    assert_eq!(
        c.query("SELECT key FROM system.local").await.result_kind(),
        2
    );
}

// § 2.3: many requests in flight on one connection, each answered on its own stream.
#[tokio::test]
async fn concurrent_streams_are_each_answered() {
    let mut c = Client::ready().await;
    for stream in 1..=200i16 {
        c.send(
            4,
            stream,
            QUERY,
            &query_body("SELECT key FROM system.local"),
        )
        .await;
    }
    let mut seen = Vec::new();
    for _ in 1..=200 {
        let f = c.read().await;
        assert_eq!(f.result_kind(), 2);
        seen.push(f.stream);
    }
    seen.sort();
    assert_eq!(seen, (1..=200).collect::<Vec<i16>>());
}

// § 4.2.5.5: DDL answers a Schema_change result.
#[tokio::test]
async fn ddl_answers_schema_change() {
    let mut c = Client::ready().await;
    let name = format!("wire_{}", std::process::id());
    let f = c
        .query(&format!("CREATE KEYSPACE {name} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"))
        .await;
    assert_eq!(f.result_kind(), 5);
    let text = String::from_utf8_lossy(&f.body);
    assert!(
        text.contains("CREATED") && text.contains("KEYSPACE") && text.contains(&name),
        "{text}"
    );
}
