//! Data types. References: Cassandra CQL reference, "Data Types" (types.html) § Native types,
//! Working with timestamps / dates / times, Collections, Frozen; "Definitions"
//! (definitions.html) § Constants.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use scylla::value::{CqlDate, CqlDecimal, CqlTime, CqlTimestamp, CqlTimeuuid, CqlVarint};
use uuid::Uuid;

use crate::common::*;

const ALL_NATIVE: &str =
    "CREATE TABLE t (k int PRIMARY KEY, a ascii, tx text, vc varchar, u uuid, tu timeuuid, \
    bi bigint, si smallint, ti tinyint, bo boolean, f float, d double, de decimal, vi varint, \
    ts timestamp, dt date, tm time, bl blob, ip inet)";

type NativeRow = (
    String,
    String,
    String,
    Uuid,
    CqlTimeuuid,
    i64,
    i16,
    i8,
    bool,
    f32,
    f64,
);

// types.html § Native types: every native type round-trips through bind values unchanged.
#[tokio::test]
async fn native_types_round_trip_through_binds() {
    let (s, _) = session_in_keyspace("ty_binds").await;
    run(&s, &[ALL_NATIVE]).await;
    let u = Uuid::parse_str("0f8fad5b-d9cb-469f-a165-70867728950e").expect("uuid");
    let tu = CqlTimeuuid::from_bytes(
        *Uuid::parse_str("d2177dd0-eaa2-11de-a572-001b779c76e3")
            .expect("timeuuid")
            .as_bytes(),
    );
    let insert = s
        .prepare("INSERT INTO t (k, a, tx, vc, u, tu, bi, si, ti, bo, f, d) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .await
        .expect("prepare");
    let values = (
        "ascii",
        "tëxt ✓",
        "varchar",
        u,
        tu,
        -9_000_000_000i64,
        -300i16,
        -7i8,
        true,
        1.5f32,
        -2.25f64,
    );
    s.execute_unpaged(&insert, values).await.expect("insert");
    let got: Vec<NativeRow> = rows(
        &s,
        "SELECT a, tx, vc, u, tu, bi, si, ti, bo, f, d FROM t WHERE k = 1",
        (),
    )
    .await;
    assert_eq!(
        got,
        vec![(
            "ascii".into(),
            "tëxt ✓".into(),
            "varchar".into(),
            u,
            tu,
            -9_000_000_000,
            -300,
            -7,
            true,
            1.5,
            -2.25
        )]
    );

    let insert = s
        .prepare("INSERT INTO t (k, de, vi, ts, dt, tm, bl, ip) VALUES (2, ?, ?, ?, ?, ?, ?, ?)")
        .await
        .expect("prepare");
    let de = CqlDecimal::from_signed_be_bytes_and_exponent(vec![0x30, 0x39], 3);
    let vi =
        CqlVarint::from_signed_bytes_be(vec![0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
    let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let values = (
        de.clone(),
        vi.clone(),
        CqlTimestamp(1_600_000_000_123),
        CqlDate(1 << 31),
        CqlTime(3_600_000_000_001),
        vec![0u8, 1, 255],
        ip,
    );
    s.execute_unpaged(&insert, values).await.expect("insert");
    type TemporalRow = (
        CqlDecimal,
        CqlVarint,
        CqlTimestamp,
        CqlDate,
        CqlTime,
        Vec<u8>,
        IpAddr,
    );
    let got: Vec<TemporalRow> = rows(
        &s,
        "SELECT de, vi, ts, dt, tm, bl, ip FROM t WHERE k = 2",
        (),
    )
    .await;
    assert_eq!(
        got,
        vec![(
            de,
            vi,
            CqlTimestamp(1_600_000_000_123),
            CqlDate(1 << 31),
            CqlTime(3_600_000_000_001),
            vec![0, 1, 255],
            ip
        )]
    );
}

// definitions.html § Constants: string, integer, float, boolean, uuid and blob constants are
// accepted for their types.
#[tokio::test]
async fn constants_are_typed_by_their_column() {
    let (s, _) = session_in_keyspace("ty_consts").await;
    run(&s, &[ALL_NATIVE, "INSERT INTO t (k, a, tx, u, bi, si, ti, bo, f, d, de, vi, bl, ip) VALUES \
        (1, 'abc', 'it''s', 0f8fad5b-d9cb-469f-a165-70867728950e, -42, 12, -3, false, 2.5, 1e3, -12.345, 123456789012345678901234567890, 0xCAFE, '10.0.0.1')"]).await;
    type ConstRow = (
        String,
        String,
        Uuid,
        i64,
        i16,
        i8,
        bool,
        f32,
        f64,
        Vec<u8>,
        IpAddr,
    );
    let got: Vec<ConstRow> = rows(
        &s,
        "SELECT a, tx, u, bi, si, ti, bo, f, d, bl, ip FROM t WHERE k = 1",
        (),
    )
    .await;
    assert_eq!(
        got,
        vec![(
            "abc".into(),
            "it's".into(),
            Uuid::parse_str("0f8fad5b-d9cb-469f-a165-70867728950e").expect("uuid"),
            -42,
            12,
            -3,
            false,
            2.5,
            1000.0,
            vec![0xca, 0xfe],
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        )]
    );
    let got: Vec<(CqlDecimal, CqlVarint)> = rows(&s, "SELECT de, vi FROM t WHERE k = 1", ()).await;
    // -12.345 = -12345 × 10^-3
    assert_eq!(
        got[0].0.as_signed_be_bytes_slice_and_exponent(),
        (&[0xcf, 0xc7][..], 3)
    );
    let expected_varint = 123456789012345678901234567890u128.to_be_bytes();
    let first = expected_varint.iter().position(|b| *b != 0).unwrap_or(15);
    let mut expected = expected_varint[first..].to_vec();
    if expected[0] & 0x80 != 0 {
        expected.insert(0, 0);
    }
    assert_eq!(got[0].1.as_signed_bytes_be_slice(), expected.as_slice());
}

// types.html § Working with timestamps: string literals in ISO 8601 forms, with or without a
// zone, and integer milliseconds since the epoch.
#[tokio::test]
async fn timestamp_literals() {
    let (s, _) = session_in_keyspace("ty_ts").await;
    run(
        &s,
        &[
            "CREATE TABLE t (k int PRIMARY KEY, ts timestamp)",
            "INSERT INTO t (k, ts) VALUES (1, '2011-02-03 04:05:00+0000')",
            "INSERT INTO t (k, ts) VALUES (2, '2011-02-03T04:05:00.123Z')",
            "INSERT INTO t (k, ts) VALUES (3, 1296705900000)",
        ],
    )
    .await;
    let mut got: Vec<(i32, CqlTimestamp)> = rows(&s, "SELECT k, ts FROM t", ()).await;
    got.sort_by_key(|(k, _)| *k);
    assert_eq!(
        got,
        vec![
            (1, CqlTimestamp(1_296_705_900_000)),
            (2, CqlTimestamp(1_296_705_900_123)),
            (3, CqlTimestamp(1_296_705_900_000)),
        ]
    );
}

// types.html § Working with dates / times: 'yyyy-mm-dd' dates (days since the epoch, centred at
// 2^31) and 'hh:mm:ss[.fff]' times (nanoseconds since midnight).
#[tokio::test]
async fn date_and_time_literals() {
    let (s, _) = session_in_keyspace("ty_date").await;
    run(
        &s,
        &[
            "CREATE TABLE t (k int PRIMARY KEY, d date, tm time)",
            "INSERT INTO t (k, d, tm) VALUES (1, '1970-01-02', '01:02:03.5')",
            "INSERT INTO t (k, d, tm) VALUES (2, '1969-12-31', '00:00:00')",
        ],
    )
    .await;
    let mut got: Vec<(i32, CqlDate, CqlTime)> = rows(&s, "SELECT k, d, tm FROM t", ()).await;
    got.sort_by_key(|(k, _, _)| *k);
    assert_eq!(
        got,
        vec![
            (1, CqlDate((1 << 31) + 1), CqlTime(3_723_500_000_000)),
            (2, CqlDate((1 << 31) - 1), CqlTime(0)),
        ]
    );
}

// types.html § Frozen: frozen collections are single values, usable in the primary key and
// ordered by their content.
#[tokio::test]
async fn frozen_collections_as_values_and_keys() {
    let (s, _) = session_in_keyspace("ty_frozen").await;
    run(&s, &[
        "CREATE TABLE t (k int, c frozen<list<int>>, m frozen<map<text, int>>, PRIMARY KEY (k, c))",
        "INSERT INTO t (k, c, m) VALUES (1, [2, 1], {'b': 2, 'a': 1})",
        "INSERT INTO t (k, c, m) VALUES (1, [1, 5], {})",
        "INSERT INTO t (k, c) VALUES (1, [1])",
    ])
    .await;
    type FrozenRow = (Vec<i32>, Option<BTreeMap<String, i32>>);
    let got: Vec<FrozenRow> = rows(&s, "SELECT c, m FROM t WHERE k = 1", ()).await;
    assert_eq!(
        got,
        vec![
            (vec![1], None),
            (vec![1, 5], Some(BTreeMap::new())),
            (
                vec![2, 1],
                Some(BTreeMap::from([("a".into(), 1), ("b".into(), 2)]))
            ),
        ]
    );
}

// types.html § Sets: set elements are returned sorted and de-duplicated.
#[tokio::test]
async fn set_literals_are_sorted_and_unique() {
    let (s, _) = session_in_keyspace("ty_set").await;
    run(
        &s,
        &[
            "CREATE TABLE t (k int PRIMARY KEY, s set<text>, fs frozen<set<int>>)",
            "INSERT INTO t (k, s, fs) VALUES (1, {'c', 'a', 'b', 'a'}, {3, -1, 3})",
        ],
    )
    .await;
    let got: Vec<(Vec<String>, Vec<i32>)> = rows(&s, "SELECT s, fs FROM t WHERE k = 1", ()).await;
    assert_eq!(
        got,
        vec![(vec!["a".into(), "b".into(), "c".into()], vec![-1, 3])]
    );
    let as_set: Vec<(BTreeSet<String>,)> = rows(&s, "SELECT s FROM t WHERE k = 1", ()).await;
    assert_eq!(as_set[0].0.len(), 3);
}

// types.html § Native types (timeuuid) and "Timeuuid functions": now() produces a timeuuid;
// clustering by timeuuid orders by time.
#[tokio::test]
async fn timeuuid_clustering_orders_by_time() {
    let (s, _) = session_in_keyspace("ty_timeuuid").await;
    run(
        &s,
        &["CREATE TABLE t (k int, id timeuuid, n int, PRIMARY KEY (k, id))"],
    )
    .await;
    for n in 0..5 {
        s.query_unpaged("INSERT INTO t (k, id, n) VALUES (1, now(), ?)", (n,))
            .await
            .expect("insert");
    }
    let got: Vec<(i32,)> = rows(&s, "SELECT n FROM t WHERE k = 1", ()).await;
    assert_eq!(got, vec![(0,), (1,), (2,), (3,), (4,)]);
}

// types.html § Native types: integer clustering keys order numerically (negative before
// positive), text by bytes.
#[tokio::test]
async fn clustering_orders_by_type() {
    let (s, _) = session_in_keyspace("ty_order").await;
    run(
        &s,
        &[
            "CREATE TABLE t (k int, c bigint, PRIMARY KEY (k, c))",
            "CREATE TABLE u (k int, c text, PRIMARY KEY (k, c))",
        ],
    )
    .await;
    for c in [5i64, -1, 300, -300, 0] {
        s.query_unpaged("INSERT INTO t (k, c) VALUES (1, ?)", (c,))
            .await
            .expect("insert");
    }
    for c in ["b", "a", "ab", "B", ""] {
        s.query_unpaged("INSERT INTO u (k, c) VALUES (1, ?)", (c,))
            .await
            .expect("insert");
    }
    let got: Vec<(i64,)> = rows(&s, "SELECT c FROM t WHERE k = 1", ()).await;
    assert_eq!(got, vec![(-300,), (-1,), (0,), (5,), (300,)]);
    let got: Vec<(String,)> = rows(&s, "SELECT c FROM u WHERE k = 1", ()).await;
    assert_eq!(
        got,
        vec![
            ("".into(),),
            ("B".into(),),
            ("a".into(),),
            ("ab".into(),),
            ("b".into(),)
        ]
    );
}
