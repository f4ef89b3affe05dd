//! The system tables drivers and cqlsh read on connect, generated from the catalog on every
//! read: `system.local`, `system.peers(_v2)` (empty: one node) and `system_schema.*`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::partition_position;
use super::select::Candidate;
use crate::schema::{ColumnKind, ColumnMeta, Schema, TableDef};
use crate::types::{encode_collection, CqlType};

/// The Cassandra version reported; drivers and cqlsh pick their schema queries by it.
pub const RELEASE_VERSION: &str = "4.0.11";
pub const CLUSTER_NAME: &str = "userstream-testbed";
pub const DATACENTER: &str = "datacenter1";
const RACK: &str = "rack1";

const SYSTEM_KEYSPACES: [&str; 2] = ["system", "system_schema"];

pub fn is_system_keyspace(name: &str) -> bool {
    SYSTEM_KEYSPACES.contains(&name) || name.starts_with("system_")
}

type Cols<'a> = &'a [(&'a str, CqlType)];

fn def(keyspace: &str, name: &str, pk: Cols<'_>, ck: Cols<'_>, regular: Cols<'_>) -> TableDef {
    let mut columns = Vec::new();
    let groups = [(pk, ColumnKind::PartitionKey), (ck, ColumnKind::Clustering)];
    for (cols, kind) in groups {
        for (pos, (n, ty)) in cols.iter().enumerate() {
            columns.push(ColumnMeta {
                id: 0,
                name: (*n).to_string(),
                ty: ty.clone(),
                kind,
                position: pos as i32,
                desc: false,
            });
        }
    }
    let mut regular: Vec<&(&str, CqlType)> = regular.iter().collect();
    regular.sort_by_key(|(n, _)| *n);
    for (n, ty) in regular {
        columns.push(ColumnMeta {
            id: 0,
            name: (*n).to_string(),
            ty: ty.clone(),
            kind: ColumnKind::Regular,
            position: -1,
            desc: false,
        });
    }
    for (i, c) in columns.iter_mut().enumerate() {
        c.id = i as u32;
    }
    // Stable ids derived from the name, so every reader sees the same table id.
    let mut id = [0u8; 16];
    for (i, b) in format!("{keyspace}.{name}").bytes().enumerate() {
        id[i % 16] ^= b;
    }
    TableDef {
        keyspace: keyspace.into(),
        name: name.into(),
        id,
        next_column_id: columns.len() as u32,
        columns,
        partition_key_len: pk.len(),
        clustering_len: ck.len(),
        default_ttl: 0,
        comment: String::new(),
    }
}

fn registry() -> &'static BTreeMap<(&'static str, &'static str), Arc<TableDef>> {
    static REGISTRY: OnceLock<BTreeMap<(&'static str, &'static str), Arc<TableDef>>> =
        OnceLock::new();
    REGISTRY.get_or_init(|| {
        use CqlType::*;
        let text_map = || CqlType::map(Text, Text);
        let text_list = || CqlType::list(Text);
        let mut r = BTreeMap::new();
        let mut add = |ks: &'static str, name: &'static str, d: TableDef| {
            r.insert((ks, name), Arc::new(d));
        };
        add(
            "system",
            "local",
            def(
                "system",
                "local",
                &[("key", Text)],
                &[],
                &[
                    ("bootstrapped", Text),
                    ("broadcast_address", Inet),
                    ("broadcast_port", Int),
                    ("cluster_name", Text),
                    ("cql_version", Text),
                    ("data_center", Text),
                    ("gossip_generation", Int),
                    ("host_id", Uuid),
                    ("listen_address", Inet),
                    ("listen_port", Int),
                    ("native_protocol_version", Text),
                    ("partitioner", Text),
                    ("rack", Text),
                    ("release_version", Text),
                    ("rpc_address", Inet),
                    ("rpc_port", Int),
                    ("schema_version", Uuid),
                    ("tokens", CqlType::set(Text)),
                ],
            ),
        );
        let peer_common = || {
            vec![
                ("data_center", Text),
                ("host_id", Uuid),
                ("preferred_ip", Inet),
                ("rack", Text),
                ("release_version", Text),
                ("schema_version", Uuid),
                ("tokens", CqlType::set(Text)),
            ]
        };
        let mut peers = peer_common();
        peers.push(("rpc_address", Inet));
        add(
            "system",
            "peers",
            def("system", "peers", &[("peer", Inet)], &[], &peers),
        );
        let mut peers_v2 = peer_common();
        peers_v2.extend([
            ("native_address", Inet),
            ("native_port", Int),
            ("preferred_port", Int),
        ]);
        add(
            "system",
            "peers_v2",
            def(
                "system",
                "peers_v2",
                &[("peer", Inet)],
                &[("peer_port", Int)],
                &peers_v2,
            ),
        );
        let ks = [("keyspace_name", Text)];
        add(
            "system_schema",
            "keyspaces",
            def(
                "system_schema",
                "keyspaces",
                &ks,
                &[],
                &[("durable_writes", Boolean), ("replication", text_map())],
            ),
        );
        add(
            "system_schema",
            "tables",
            def(
                "system_schema",
                "tables",
                &ks,
                &[("table_name", Text)],
                &[
                    ("bloom_filter_fp_chance", Double),
                    ("caching", text_map()),
                    ("cdc", Boolean),
                    ("comment", Text),
                    ("compaction", text_map()),
                    ("compression", text_map()),
                    ("crc_check_chance", Double),
                    ("dclocal_read_repair_chance", Double),
                    ("default_time_to_live", Int),
                    ("extensions", CqlType::map(Text, Blob)),
                    ("flags", CqlType::set(Text)),
                    ("gc_grace_seconds", Int),
                    ("id", Uuid),
                    ("max_index_interval", Int),
                    ("memtable_flush_period_in_ms", Int),
                    ("min_index_interval", Int),
                    ("read_repair_chance", Double),
                    ("speculative_retry", Text),
                ],
            ),
        );
        add(
            "system_schema",
            "columns",
            def(
                "system_schema",
                "columns",
                &ks,
                &[("table_name", Text), ("column_name", Text)],
                &[
                    ("clustering_order", Text),
                    ("column_name_bytes", Blob),
                    ("kind", Text),
                    ("position", Int),
                    ("type", Text),
                ],
            ),
        );
        add(
            "system_schema",
            "dropped_columns",
            def(
                "system_schema",
                "dropped_columns",
                &ks,
                &[("table_name", Text), ("column_name", Text)],
                &[("dropped_time", Timestamp), ("kind", Text), ("type", Text)],
            ),
        );
        add(
            "system_schema",
            "types",
            def(
                "system_schema",
                "types",
                &ks,
                &[("type_name", Text)],
                &[("field_names", text_list()), ("field_types", text_list())],
            ),
        );
        add(
            "system_schema",
            "functions",
            def(
                "system_schema",
                "functions",
                &ks,
                &[("function_name", Text), ("argument_types", text_list())],
                &[
                    ("argument_names", text_list()),
                    ("body", Text),
                    ("called_on_null_input", Boolean),
                    ("language", Text),
                    ("return_type", Text),
                ],
            ),
        );
        add(
            "system_schema",
            "aggregates",
            def(
                "system_schema",
                "aggregates",
                &ks,
                &[("aggregate_name", Text), ("argument_types", text_list())],
                &[
                    ("final_func", Text),
                    ("initcond", Text),
                    ("return_type", Text),
                    ("state_func", Text),
                    ("state_type", Text),
                ],
            ),
        );
        add(
            "system_schema",
            "views",
            def(
                "system_schema",
                "views",
                &ks,
                &[("view_name", Text)],
                &[
                    ("base_table_id", Uuid),
                    ("base_table_name", Text),
                    ("id", Uuid),
                    ("include_all_columns", Boolean),
                    ("where_clause", Text),
                ],
            ),
        );
        add(
            "system_schema",
            "indexes",
            def(
                "system_schema",
                "indexes",
                &ks,
                &[("table_name", Text), ("index_name", Text)],
                &[("kind", Text), ("options", text_map())],
            ),
        );
        add(
            "system_schema",
            "triggers",
            def(
                "system_schema",
                "triggers",
                &ks,
                &[("table_name", Text), ("trigger_name", Text)],
                &[("options", text_map())],
            ),
        );
        r
    })
}

pub fn table(keyspace: &str, name: &str) -> Option<Arc<TableDef>> {
    registry()
        .iter()
        .find(|((ks, n), _)| *ks == keyspace && *n == name)
        .map(|(_, d)| d.clone())
}

fn text(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

fn int(v: i32) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(&v.to_be_bytes()))
}

fn double(v: f64) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(&v.to_be_bytes()))
}

fn boolean(v: bool) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(&[u8::from(v)]))
}

fn uuid(v: [u8; 16]) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(&v))
}

fn inet(ip: IpAddr) -> Option<Bytes> {
    Some(match ip {
        IpAddr::V4(a) => Bytes::copy_from_slice(&a.octets()),
        IpAddr::V6(a) => Bytes::copy_from_slice(&a.octets()),
    })
}

fn text_map(entries: &[(&str, &str)]) -> Option<Bytes> {
    let mut sorted: Vec<&(&str, &str)> = entries.iter().collect();
    sorted.sort();
    Some(encode_collection(sorted.into_iter().map(|(k, v)| {
        vec![
            Bytes::copy_from_slice(k.as_bytes()),
            Bytes::copy_from_slice(v.as_bytes()),
        ]
    })))
}

fn text_set(items: &[&str]) -> Option<Bytes> {
    let mut sorted = items.to_vec();
    sorted.sort();
    Some(encode_collection(
        sorted
            .into_iter()
            .map(|s| vec![Bytes::copy_from_slice(s.as_bytes())]),
    ))
}

/// A keyspace as the schema tables show it, system or user.
struct KeyspaceView {
    name: String,
    replication: BTreeMap<String, String>,
    durable_writes: bool,
    tables: Vec<Arc<TableDef>>,
}

/// Every row of system table `def`, in (token, clustering) order.
pub(super) fn rows(
    def: &TableDef,
    schema: &Schema,
    local: SocketAddr,
    host_id: [u8; 16],
) -> Vec<Candidate> {
    let mut out: Vec<Vec<(&str, Option<Bytes>)>> = Vec::new();
    // Keyspaces with their replication and tables, system ones first.
    let mut keyspaces: Vec<KeyspaceView> = SYSTEM_KEYSPACES
        .iter()
        .map(|ks| KeyspaceView {
            name: ks.to_string(),
            replication: BTreeMap::from([(
                "class".to_string(),
                "org.apache.cassandra.locator.LocalStrategy".to_string(),
            )]),
            durable_writes: true,
            tables: registry()
                .iter()
                .filter(|((k, _), _)| k == ks)
                .map(|(_, d)| d.clone())
                .collect(),
        })
        .collect();
    keyspaces.extend(schema.keyspaces.values().map(|ks| KeyspaceView {
        name: ks.name.clone(),
        replication: ks.replication.clone(),
        durable_writes: ks.durable_writes,
        tables: ks.tables.values().map(|t| t.def.clone()).collect(),
    }));
    match (def.keyspace.as_str(), def.name.as_str()) {
        ("system", "local") => out.push(vec![
            ("key", text("local")),
            ("bootstrapped", text("COMPLETED")),
            ("broadcast_address", inet(local.ip())),
            ("broadcast_port", int(7000)),
            ("cluster_name", text(CLUSTER_NAME)),
            ("cql_version", text("3.4.5")),
            ("data_center", text(DATACENTER)),
            ("gossip_generation", int(1)),
            ("host_id", uuid(host_id)),
            ("listen_address", inet(local.ip())),
            ("listen_port", int(7000)),
            ("native_protocol_version", text("4")),
            (
                "partitioner",
                text("org.apache.cassandra.dht.Murmur3Partitioner"),
            ),
            ("rack", text(RACK)),
            ("release_version", text(RELEASE_VERSION)),
            ("rpc_address", inet(local.ip())),
            ("rpc_port", int(i32::from(local.port()))),
            ("schema_version", uuid(schema.version)),
            ("tokens", text_set(&["0"])),
        ]),
        ("system_schema", "keyspaces") => {
            for ks in &keyspaces {
                let entries: Vec<(&str, &str)> = ks
                    .replication
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                out.push(vec![
                    ("keyspace_name", text(&ks.name)),
                    ("durable_writes", boolean(ks.durable_writes)),
                    ("replication", text_map(&entries)),
                ]);
            }
        }
        ("system_schema", "tables") => {
            for ks in &keyspaces {
                for t in &ks.tables {
                    out.push(vec![
                        ("keyspace_name", text(&t.keyspace)),
                        ("table_name", text(&t.name)),
                        ("bloom_filter_fp_chance", double(0.01)),
                        ("caching", text_map(&[("keys", "ALL"), ("rows_per_partition", "NONE")])),
                        ("cdc", boolean(false)),
                        ("comment", text(&t.comment)),
                        ("compaction", text_map(&[
                            ("class", "org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy"),
                            ("max_threshold", "32"),
                            ("min_threshold", "4"),
                        ])),
                        ("compression", text_map(&[
                            ("chunk_length_in_kb", "16"),
                            ("class", "org.apache.cassandra.io.compress.LZ4Compressor"),
                        ])),
                        ("crc_check_chance", double(1.0)),
                        ("dclocal_read_repair_chance", double(0.0)),
                        ("default_time_to_live", int(t.default_ttl)),
                        ("extensions", Some(encode_collection(std::iter::empty()))),
                        ("flags", text_set(&["compound"])),
                        ("gc_grace_seconds", int(864_000)),
                        ("id", uuid(t.id)),
                        ("max_index_interval", int(2048)),
                        ("memtable_flush_period_in_ms", int(0)),
                        ("min_index_interval", int(128)),
                        ("read_repair_chance", double(0.0)),
                        ("speculative_retry", text("99p")),
                    ]);
                }
            }
        }
        ("system_schema", "columns") => {
            for ks in &keyspaces {
                for t in &ks.tables {
                    for c in &t.columns {
                        let order = match (c.kind, c.desc) {
                            (ColumnKind::Clustering, true) => "desc",
                            (ColumnKind::Clustering, false) => "asc",
                            _ => "none",
                        };
                        out.push(vec![
                            ("keyspace_name", text(&t.keyspace)),
                            ("table_name", text(&t.name)),
                            ("column_name", text(&c.name)),
                            ("clustering_order", text(order)),
                            (
                                "column_name_bytes",
                                Some(Bytes::copy_from_slice(c.name.as_bytes())),
                            ),
                            ("kind", text(c.kind.schema_name())),
                            ("position", int(c.position)),
                            ("type", text(&c.ty.cql_name())),
                        ]);
                    }
                }
            }
        }
        _ => {}
    }
    let mut candidates: Vec<Candidate> = out
        .into_iter()
        .filter_map(|named| {
            let values: Vec<Option<Bytes>> = def
                .columns
                .iter()
                .map(|c| {
                    named
                        .iter()
                        .find(|(n, _)| *n == c.name)
                        .and_then(|(_, v)| v.clone())
                })
                .collect();
            let pk: Vec<Bytes> = values[..def.partition_key_len]
                .iter()
                .map(|v| v.clone().unwrap_or_default())
                .collect();
            let ck: Vec<Bytes> = values
                [def.partition_key_len..def.partition_key_len + def.clustering_len]
                .iter()
                .map(|v| v.clone().unwrap_or_default())
                .collect();
            let n = values.len();
            Some(Candidate {
                position: partition_position(&pk).ok()?,
                sort_key: def.clustering_sort_key(&ck),
                values: (values, vec![None; n], vec![None; n]),
            })
        })
        .collect();
    candidates.sort_by(|a, b| {
        a.position
            .cmp(&b.position)
            .then_with(|| a.sort_key.cmp(&b.sort_key))
    });
    candidates
}
