//! CREATE/DROP KEYSPACE, CREATE/DROP/ALTER TABLE, TRUNCATE.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};

use super::{Context, Database, Outcome};
use crate::cql::{AlterTable, ColumnDef, CreateTable, Literal, Statement, Term};
use crate::error::CqlError;
use crate::schema::{ColumnKind, ColumnMeta, Keyspace, Table, TableDef};
use crate::storage::TableData;
use crate::values::random_uuid;

/// Table properties Cassandra accepts; only `default_time_to_live` and `comment` change
/// behaviour here, the rest are accepted and ignored.
const TABLE_PROPERTIES: [&str; 19] = [
    "additional_write_policy",
    "bloom_filter_fp_chance",
    "caching",
    "cdc",
    "comment",
    "compaction",
    "compression",
    "crc_check_chance",
    "dclocal_read_repair_chance",
    "default_time_to_live",
    "extensions",
    "gc_grace_seconds",
    "id",
    "max_index_interval",
    "memtable_flush_period_in_ms",
    "min_index_interval",
    "read_repair",
    "read_repair_chance",
    "speculative_retry",
];

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 48
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn schema_change(change: &'static str, keyspace: &str, table: Option<&str>) -> Outcome {
    Outcome::SchemaChange {
        change,
        target: if table.is_some() { "TABLE" } else { "KEYSPACE" },
        keyspace: keyspace.to_string(),
        name: table.map(str::to_string),
    }
}

fn map_literal(term: &Term, what: &str) -> Result<BTreeMap<String, String>, CqlError> {
    let Term::Map(entries) = term else {
        return Err(CqlError::syntax(format!("{what} must be a map literal")));
    };
    entries
        .iter()
        .map(|(k, v)| {
            let text = |t: &Term| match t {
                Term::Literal(Literal::Str(s) | Literal::Int(s) | Literal::Float(s)) => {
                    Ok(s.clone())
                }
                Term::Literal(Literal::Bool(b)) => Ok(b.to_string()),
                _ => Err(CqlError::syntax(format!("invalid value in {what}"))),
            };
            Ok((text(k)?, text(v)?))
        })
        .collect()
}

fn int_property(term: &Term, name: &str) -> Result<i32, CqlError> {
    match term {
        Term::Literal(Literal::Int(s)) => s
            .parse()
            .map_err(|_| CqlError::syntax(format!("Invalid integer value {s} for '{name}'"))),
        _ => Err(CqlError::syntax(format!(
            "Invalid value for '{name}': expected an integer"
        ))),
    }
}

impl Database {
    pub(super) fn ddl(
        &self,
        statement: &Statement,
        ctx: &Context<'_>,
    ) -> Result<Outcome, CqlError> {
        match statement {
            Statement::CreateKeyspace {
                name,
                if_not_exists,
                options,
            } => self.create_keyspace(name, *if_not_exists, options),
            Statement::DropKeyspace { name, if_exists } => {
                if super::system::is_system_keyspace(name) {
                    return Err(CqlError::invalid(format!(
                        "Cannot drop system keyspace {name}"
                    )));
                }
                let mut schema = self.write_schema();
                if schema.keyspaces.remove(name).is_none() {
                    return if *if_exists {
                        Ok(Outcome::Void)
                    } else {
                        Err(CqlError::invalid(format!(
                            "Keyspace '{name}' doesn't exist"
                        )))
                    };
                }
                schema.version = random_uuid();
                Ok(schema_change("DROPPED", name, None))
            }
            Statement::CreateTable(create) => self.create_table(create, ctx),
            Statement::DropTable { name, if_exists } => {
                let keyspace = Self::keyspace_of(name, ctx)?;
                if super::system::is_system_keyspace(keyspace) {
                    return Err(CqlError::invalid(format!(
                        "Cannot drop table {keyspace}.{} from a system keyspace",
                        name.name
                    )));
                }
                let mut schema = self.write_schema();
                let ks = schema.keyspaces.get_mut(keyspace).ok_or_else(|| {
                    CqlError::invalid(format!("Keyspace '{keyspace}' doesn't exist"))
                })?;
                if ks.tables.remove(&name.name).is_none() {
                    return if *if_exists {
                        Ok(Outcome::Void)
                    } else {
                        Err(CqlError::invalid(format!(
                            "Table '{keyspace}.{}' doesn't exist",
                            name.name
                        )))
                    };
                }
                schema.version = random_uuid();
                Ok(schema_change("DROPPED", keyspace, Some(&name.name)))
            }
            Statement::AlterTable { name, change } => self.alter_table(name, change, ctx),
            Statement::Truncate(name) => {
                let table = self.user_table(name, ctx)?;
                table
                    .data
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .partitions
                    .clear();
                Ok(Outcome::Void)
            }
            other => Err(CqlError::Server(format!(
                "statement routed to DDL by mistake: {other:?}"
            ))),
        }
    }

    fn create_keyspace(
        &self,
        name: &str,
        if_not_exists: bool,
        options: &[(String, Term)],
    ) -> Result<Outcome, CqlError> {
        if !valid_name(name) {
            return Err(CqlError::invalid(format!(
                "Keyspace name must not be empty, more than 48 characters long, or contain non-alphanumeric-underscore characters (got \"{name}\")"
            )));
        }
        if super::system::is_system_keyspace(name) {
            return Err(CqlError::invalid(format!(
                "{name} is a reserved keyspace name"
            )));
        }
        let mut replication = None;
        let mut durable_writes = true;
        for (key, value) in options {
            match key.as_str() {
                "replication" => replication = Some(map_literal(value, "replication")?),
                "durable_writes" => {
                    durable_writes = match value {
                        Term::Literal(Literal::Bool(b)) => *b,
                        Term::Literal(Literal::Str(s)) => s.eq_ignore_ascii_case("true"),
                        _ => return Err(CqlError::syntax("durable_writes must be a boolean")),
                    }
                }
                other => return Err(CqlError::syntax(format!("Unknown property '{other}'"))),
            }
        }
        let mut replication = replication.ok_or_else(|| {
            CqlError::invalid("Missing mandatory option 'replication'".to_string())
        })?;
        let class = replication
            .get("class")
            .cloned()
            .ok_or_else(|| CqlError::invalid("Missing replication strategy class"))?;
        let full = match class.rsplit('.').next().unwrap_or_default() {
            "SimpleStrategy" => {
                let rf = replication.get("replication_factor").ok_or_else(|| {
                    CqlError::invalid(
                        "SimpleStrategy requires a replication_factor strategy option.",
                    )
                })?;
                if rf.parse::<u32>().is_err() {
                    return Err(CqlError::invalid(format!(
                        "Replication factor must be non-negative integer; found {rf}"
                    )));
                }
                "org.apache.cassandra.locator.SimpleStrategy"
            }
            "NetworkTopologyStrategy" => "org.apache.cassandra.locator.NetworkTopologyStrategy",
            _ => {
                return Err(CqlError::invalid(format!(
                    "Unable to find replication strategy class '{class}'"
                )))
            }
        };
        replication.insert("class".into(), full.into());
        let mut schema = self.write_schema();
        if schema.keyspaces.contains_key(name) {
            return if if_not_exists {
                Ok(Outcome::Void)
            } else {
                Err(CqlError::AlreadyExists {
                    keyspace: name.to_string(),
                    table: String::new(),
                    message: format!("Cannot add existing keyspace \"{name}\""),
                })
            };
        }
        schema.keyspaces.insert(
            name.to_string(),
            Keyspace {
                name: name.to_string(),
                replication,
                durable_writes,
                tables: BTreeMap::new(),
            },
        );
        schema.version = random_uuid();
        Ok(schema_change("CREATED", name, None))
    }

    fn create_table(&self, create: &CreateTable, ctx: &Context<'_>) -> Result<Outcome, CqlError> {
        let keyspace = Self::keyspace_of(&create.name, ctx)?.to_string();
        let name = create.name.name.clone();
        if super::system::is_system_keyspace(&keyspace) {
            return Err(CqlError::invalid(format!(
                "Cannot create table {name} in system keyspace {keyspace}"
            )));
        }
        if !valid_name(&name) {
            return Err(CqlError::invalid(format!(
                "Table name must not be empty, more than 48 characters long, or contain non-alphanumeric-underscore characters (got \"{name}\")"
            )));
        }
        let mut seen = HashSet::new();
        for c in &create.columns {
            if !seen.insert(c.name.as_str()) {
                return Err(CqlError::invalid(format!(
                    "Multiple definition of identifier {}",
                    c.name
                )));
            }
            if c.is_static {
                return Err(CqlError::invalid(format!(
                    "static columns ({}) are not supported by the CQL testbed",
                    c.name
                )));
            }
        }
        let find = |n: &str| -> Result<&ColumnDef, CqlError> {
            create.columns.iter().find(|c| c.name == n).ok_or_else(|| {
                CqlError::invalid(format!("Unknown definition {n} referenced in PRIMARY KEY"))
            })
        };
        let mut key_seen = HashSet::new();
        for n in create.partition_key.iter().chain(&create.clustering) {
            if !key_seen.insert(n.as_str()) {
                return Err(CqlError::invalid(format!(
                    "Duplicate definition for column {n} in PRIMARY KEY"
                )));
            }
            let c = find(n)?;
            if c.ty.is_multi_cell() {
                return Err(CqlError::invalid(format!(
                    "Invalid non-frozen collection type {} for PRIMARY KEY component {n}",
                    c.ty.cql_name()
                )));
            }
        }
        if create.clustering_order.len() > create.clustering.len() {
            return Err(CqlError::invalid(
                "Only clustering key columns can be defined in CLUSTERING ORDER directive",
            ));
        }
        for (i, (col, _)) in create.clustering_order.iter().enumerate() {
            if !create.clustering.contains(col) {
                return Err(CqlError::invalid(format!(
                    "Only clustering key columns can be defined in CLUSTERING ORDER directive: {col} is not a clustering column"
                )));
            }
            if create.clustering[i] != *col {
                return Err(CqlError::invalid(
                    "The order of columns in the CLUSTERING ORDER directive must match that of the clustering columns",
                ));
            }
        }
        let mut default_ttl = 0;
        let mut comment = String::new();
        apply_properties(&create.options, &mut default_ttl, &mut comment)?;

        let mut columns = Vec::with_capacity(create.columns.len());
        for (pos, n) in create.partition_key.iter().enumerate() {
            let c = find(n)?;
            columns.push(ColumnMeta {
                id: 0,
                name: n.clone(),
                ty: c.ty.clone(),
                kind: ColumnKind::PartitionKey,
                position: pos as i32,
                desc: false,
            });
        }
        for (pos, n) in create.clustering.iter().enumerate() {
            let c = find(n)?;
            let desc = create
                .clustering_order
                .iter()
                .any(|(col, desc)| col == n && *desc);
            columns.push(ColumnMeta {
                id: 0,
                name: n.clone(),
                ty: c.ty.clone(),
                kind: ColumnKind::Clustering,
                position: pos as i32,
                desc,
            });
        }
        let mut regular: Vec<&ColumnDef> = create
            .columns
            .iter()
            .filter(|c| !key_seen.contains(c.name.as_str()))
            .collect();
        regular.sort_by(|a, b| a.name.cmp(&b.name));
        for c in regular {
            columns.push(ColumnMeta {
                id: 0,
                name: c.name.clone(),
                ty: c.ty.clone(),
                kind: ColumnKind::Regular,
                position: -1,
                desc: false,
            });
        }
        for (i, c) in columns.iter_mut().enumerate() {
            c.id = i as u32;
        }
        let def = TableDef {
            keyspace: keyspace.clone(),
            name: name.clone(),
            id: random_uuid(),
            next_column_id: columns.len() as u32,
            columns,
            partition_key_len: create.partition_key.len(),
            clustering_len: create.clustering.len(),
            default_ttl,
            comment,
        };
        let mut schema = self.write_schema();
        let ks = schema
            .keyspaces
            .get_mut(&keyspace)
            .ok_or_else(|| CqlError::invalid(format!("Keyspace '{keyspace}' doesn't exist")))?;
        if ks.tables.contains_key(&name) {
            return if create.if_not_exists {
                Ok(Outcome::Void)
            } else {
                Err(CqlError::AlreadyExists {
                    keyspace: keyspace.clone(),
                    table: name.clone(),
                    message: format!(
                        "Cannot add already existing table \"{name}\" to keyspace \"{keyspace}\""
                    ),
                })
            };
        }
        ks.tables.insert(
            name.clone(),
            Table {
                def: Arc::new(def),
                data: Arc::new(RwLock::new(TableData::default())),
            },
        );
        schema.version = random_uuid();
        Ok(schema_change("CREATED", &keyspace, Some(&name)))
    }

    fn alter_table(
        &self,
        name: &crate::cql::QualifiedName,
        change: &AlterTable,
        ctx: &Context<'_>,
    ) -> Result<Outcome, CqlError> {
        let keyspace = Self::keyspace_of(name, ctx)?.to_string();
        if super::system::is_system_keyspace(&keyspace) {
            return Err(CqlError::invalid(format!(
                "Cannot alter table {keyspace}.{} in a system keyspace",
                name.name
            )));
        }
        let mut schema = self.write_schema();
        let ks = schema
            .keyspaces
            .get_mut(&keyspace)
            .ok_or_else(|| CqlError::invalid(format!("Keyspace '{keyspace}' doesn't exist")))?;
        let table = ks.tables.get_mut(&name.name).ok_or_else(|| {
            CqlError::invalid(format!("Table '{keyspace}.{}' doesn't exist", name.name))
        })?;
        let mut def = (*table.def).clone();
        match change {
            AlterTable::Add(columns) => {
                for c in columns {
                    if c.is_static {
                        return Err(CqlError::invalid(format!(
                            "static columns ({}) are not supported by the CQL testbed",
                            c.name
                        )));
                    }
                    if def.column(&c.name).is_some() {
                        return Err(CqlError::invalid(format!(
                            "Column with name '{}' already exists",
                            c.name
                        )));
                    }
                    def.columns.push(ColumnMeta {
                        id: def.next_column_id,
                        name: c.name.clone(),
                        ty: c.ty.clone(),
                        kind: ColumnKind::Regular,
                        position: -1,
                        desc: false,
                    });
                    def.next_column_id += 1;
                }
                let key_len = def.partition_key_len + def.clustering_len;
                def.columns[key_len..].sort_by(|a, b| a.name.cmp(&b.name));
            }
            AlterTable::Drop(columns) => {
                for n in columns {
                    let Some((index, _)) = def.column(n) else {
                        return Err(CqlError::invalid(format!(
                            "Column {n} was not found in table {}",
                            def.name
                        )));
                    };
                    if def.is_primary_key(index) {
                        return Err(CqlError::invalid(format!(
                            "Cannot drop PRIMARY KEY part {n}"
                        )));
                    }
                    def.columns.remove(index);
                }
            }
            AlterTable::Options(options) => {
                apply_properties(options, &mut def.default_ttl, &mut def.comment)?;
            }
        }
        table.def = Arc::new(def);
        schema.version = random_uuid();
        Ok(schema_change("UPDATED", &keyspace, Some(&name.name)))
    }
}

fn apply_properties(
    options: &[(String, Term)],
    default_ttl: &mut i32,
    comment: &mut String,
) -> Result<(), CqlError> {
    for (key, value) in options {
        if !TABLE_PROPERTIES.contains(&key.as_str()) {
            return Err(CqlError::syntax(format!("Unknown property '{key}'")));
        }
        match key.as_str() {
            "default_time_to_live" => {
                let ttl = int_property(value, key)?;
                if !(0..=super::write::MAX_TTL).contains(&ttl) {
                    return Err(CqlError::invalid(format!(
                        "default_time_to_live must be between 0 and {}, got {ttl}",
                        super::write::MAX_TTL
                    )));
                }
                *default_ttl = ttl;
            }
            "comment" => match value {
                Term::Literal(Literal::Str(s)) => *comment = s.clone(),
                _ => return Err(CqlError::syntax("comment must be a string")),
            },
            _ => {}
        }
    }
    Ok(())
}
