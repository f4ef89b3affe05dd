//! The catalog: keyspaces and table definitions.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::storage::TableData;
use crate::types::CqlType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    PartitionKey,
    Clustering,
    Regular,
}

impl ColumnKind {
    pub fn schema_name(self) -> &'static str {
        match self {
            ColumnKind::PartitionKey => "partition_key",
            ColumnKind::Clustering => "clustering",
            ColumnKind::Regular => "regular",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ColumnMeta {
    /// Identity of the column's cells in storage; a dropped and re-added column gets a new id,
    /// so data written before the drop never reappears.
    pub id: u32,
    pub name: String,
    pub ty: CqlType,
    pub kind: ColumnKind,
    /// Position within the partition key or clustering key; -1 for regular columns.
    pub position: i32,
    /// Whether a clustering column is declared `DESC`.
    pub desc: bool,
}

#[derive(Debug, Clone)]
pub struct TableDef {
    pub keyspace: String,
    pub name: String,
    pub id: [u8; 16],
    /// Partition key, clustering, then regular columns by name: the order of `SELECT *`.
    pub columns: Vec<ColumnMeta>,
    pub partition_key_len: usize,
    pub clustering_len: usize,
    /// `default_time_to_live` in seconds (0: none).
    pub default_ttl: i32,
    pub comment: String,
    /// Next column id to hand out on `ALTER TABLE ... ADD`.
    pub next_column_id: u32,
}

impl TableDef {
    pub fn column(&self, name: &str) -> Option<(usize, &ColumnMeta)> {
        self.columns
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == name)
    }

    pub fn partition_key(&self) -> &[ColumnMeta] {
        &self.columns[..self.partition_key_len]
    }

    pub fn clustering(&self) -> &[ColumnMeta] {
        &self.columns[self.partition_key_len..self.partition_key_len + self.clustering_len]
    }

    pub fn is_primary_key(&self, index: usize) -> bool {
        index < self.partition_key_len + self.clustering_len
    }

    /// Clustering key of a row as one order-preserving byte string (DESC components
    /// inverted), used as the row's position within its partition.
    pub fn clustering_sort_key(&self, values: &[bytes::Bytes]) -> Vec<u8> {
        let mut out = Vec::new();
        for (col, v) in self.clustering().iter().zip(values) {
            let start = out.len();
            col.ty.sort_key(v, &mut out);
            if col.desc {
                for b in &mut out[start..] {
                    *b = !*b;
                }
            }
        }
        out
    }
}

/// A user table: its current definition and its data. ALTER replaces the definition and keeps
/// the data.
#[derive(Debug, Clone)]
pub struct Table {
    pub def: Arc<TableDef>,
    pub data: Arc<RwLock<TableData>>,
}

#[derive(Debug, Clone)]
pub struct Keyspace {
    pub name: String,
    /// The replication map as given, with `class` expanded to its full name.
    pub replication: BTreeMap<String, String>,
    pub durable_writes: bool,
    pub tables: BTreeMap<String, Table>,
}

/// All user keyspaces plus the schema version that schema agreement compares.
#[derive(Debug, Default)]
pub struct Schema {
    pub keyspaces: BTreeMap<String, Keyspace>,
    pub version: [u8; 16],
}
