//! Executes parsed statements against the catalog and storage.

mod ddl;
mod select;
mod system;
mod write;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;

use crate::cql::{Assignment, DeleteTarget, Op, Parsed, QualifiedName, Relation, Statement, Term};
use crate::error::CqlError;
use crate::frame::BoundValue;
use crate::schema::{Schema, Table, TableDef};
use crate::types::CqlType;
use crate::values::{now_micros, random_uuid, resolve, Resolved};

/// A column (or bind marker) as described in result and prepared metadata.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub keyspace: String,
    pub table: String,
    pub name: String,
    pub ty: CqlType,
}

/// A Rows result.
#[derive(Debug, Clone)]
pub struct Rows {
    pub columns: Vec<ColumnSpec>,
    pub rows: Vec<Vec<Option<Bytes>>>,
    pub paging_state: Option<Bytes>,
    /// Conditional results always carry metadata: their columns depend on the outcome, so the
    /// client cannot use the prepared result metadata.
    pub force_metadata: bool,
}

#[derive(Debug)]
pub enum Outcome {
    Void,
    Rows(Rows),
    SetKeyspace(String),
    SchemaChange {
        change: &'static str,
        target: &'static str,
        keyspace: String,
        name: Option<String>,
    },
}

/// Per-connection context.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The keyspace set by USE (or the keyspace a statement was prepared in).
    pub keyspace: Option<&'a str>,
    /// The address the client reached us on, reported as this node's address.
    pub local_addr: SocketAddr,
}

/// Per-request execution parameters.
#[derive(Debug, Clone, Copy)]
pub struct Execution<'a> {
    pub binds: &'a [BoundValue],
    /// The client's default timestamp, if it sent one.
    pub timestamp: Option<i64>,
    pub page_size: Option<i32>,
    pub paging_state: Option<&'a Bytes>,
}

/// What PREPARE answers besides the id.
#[derive(Debug, Clone)]
pub struct PreparedMeta {
    pub binds: Vec<ColumnSpec>,
    pub pk_indices: Vec<u16>,
    /// Result columns of a SELECT; `None` for statements without a fixed result shape.
    pub result: Option<Vec<ColumnSpec>>,
}

/// The whole node: catalog, data and clocks.
pub struct Database {
    schema: RwLock<Schema>,
    /// Last server-assigned write timestamp, so server timestamps strictly increase.
    last_timestamp: AtomicI64,
    /// Position ids for list appends (increasing) and prepends (decreasing).
    list_append: AtomicU64,
    list_prepend: AtomicU64,
    host_id: [u8; 16],
}

impl Default for Database {
    fn default() -> Self {
        Database {
            schema: RwLock::new(Schema {
                keyspaces: Default::default(),
                version: random_uuid(),
            }),
            last_timestamp: AtomicI64::new(0),
            list_append: AtomicU64::new(1 << 62),
            list_prepend: AtomicU64::new((1 << 62) - 1),
            host_id: random_uuid(),
        }
    }
}

/// A resolved table: a user table with storage, or a system table generated on read.
enum TableRef {
    User(Table),
    System(Arc<TableDef>),
}

impl TableRef {
    fn def(&self) -> &Arc<TableDef> {
        match self {
            TableRef::User(t) => &t.def,
            TableRef::System(d) => d,
        }
    }
}

pub(crate) fn now_secs() -> i64 {
    now_micros() / 1_000_000
}

impl Database {
    fn read_schema(&self) -> RwLockReadGuard<'_, Schema> {
        self.schema.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_schema(&self) -> RwLockWriteGuard<'_, Schema> {
        self.schema.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The server clock in microseconds, strictly increasing across calls.
    fn next_timestamp(&self) -> i64 {
        let now = now_micros();
        let mut prev = self.last_timestamp.load(Ordering::Relaxed);
        loop {
            let next = now.max(prev + 1);
            match self.last_timestamp.compare_exchange_weak(
                prev,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(actual) => prev = actual,
            }
        }
    }

    fn keyspace_of<'a>(name: &'a QualifiedName, ctx: &'a Context<'_>) -> Result<&'a str, CqlError> {
        name.keyspace.as_deref().or(ctx.keyspace).ok_or_else(|| {
            CqlError::invalid(
                "No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename",
            )
        })
    }

    fn table(&self, name: &QualifiedName, ctx: &Context<'_>) -> Result<TableRef, CqlError> {
        let keyspace = Self::keyspace_of(name, ctx)?;
        if let Some(def) = system::table(keyspace, &name.name) {
            return Ok(TableRef::System(def));
        }
        let schema = self.read_schema();
        let ks = schema
            .keyspaces
            .get(keyspace)
            .ok_or_else(|| CqlError::invalid(format!("Keyspace {keyspace} does not exist")))?;
        ks.tables
            .get(&name.name)
            .cloned()
            .map(TableRef::User)
            .ok_or_else(|| CqlError::invalid(format!("unconfigured table {}", name.name)))
    }

    fn user_table(&self, name: &QualifiedName, ctx: &Context<'_>) -> Result<Table, CqlError> {
        match self.table(name, ctx)? {
            TableRef::User(t) => Ok(t),
            TableRef::System(def) => Err(CqlError::invalid(format!(
                "Modification on table {}.{} is not supported: system tables are read-only",
                def.keyspace, def.name
            ))),
        }
    }

    pub fn execute(
        &self,
        parsed: &Parsed,
        ctx: &Context<'_>,
        exec: &Execution<'_>,
    ) -> Result<Outcome, CqlError> {
        match &parsed.statement {
            Statement::Use(name) => {
                if system::is_system_keyspace(name)
                    || self.read_schema().keyspaces.contains_key(name)
                {
                    Ok(Outcome::SetKeyspace(name.clone()))
                } else {
                    Err(CqlError::invalid(format!(
                        "Keyspace '{name}' does not exist"
                    )))
                }
            }
            Statement::Select(select) => {
                let table = self.table(&select.table, ctx)?;
                self.select(&table, select, ctx, exec).map(Outcome::Rows)
            }
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => self.write(
                &[(&parsed.statement, exec.binds)],
                ctx,
                exec.timestamp,
                None,
            ),
            Statement::Batch {
                kind,
                using,
                statements,
            } => {
                if *kind == crate::cql::BatchKind::Counter {
                    return Err(CqlError::invalid(
                        "counter batches are not supported by the CQL testbed (no counter type)",
                    ));
                }
                let batch_ts = match &using.timestamp {
                    Some(term) => Some(timestamp_value(term, exec.binds)?),
                    None => None,
                };
                if using.ttl.is_some() {
                    return Err(CqlError::invalid(
                        "Only USING TIMESTAMP is allowed on a BATCH (TTL goes on its statements)",
                    ));
                }
                let items: Vec<(&Statement, &[BoundValue])> =
                    statements.iter().map(|s| (s, exec.binds)).collect();
                self.write(
                    &items,
                    ctx,
                    batch_ts.or(exec.timestamp),
                    Some(batch_ts.is_some()),
                )
            }
            _ => self.ddl(&parsed.statement, ctx),
        }
    }

    /// Executes a protocol BATCH: each statement with its own bound values.
    pub fn execute_batch(
        &self,
        items: &[(&Parsed, Context<'_>, Vec<BoundValue>)],
        timestamp: Option<i64>,
    ) -> Result<Outcome, CqlError> {
        for (parsed, _, _) in items {
            if !matches!(
                parsed.statement,
                Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
            ) {
                return Err(CqlError::invalid(
                    "Invalid statement in batch: only UPDATE, INSERT and DELETE statements are allowed.",
                ));
            }
        }
        let Some((_, ctx, _)) = items.first() else {
            return Ok(Outcome::Void);
        };
        // Statements prepared in other keyspaces carry qualified names or their own keyspace.
        let resolved: Vec<(Statement, &[BoundValue])> = items
            .iter()
            .map(|(parsed, item_ctx, binds)| {
                qualify(&parsed.statement, item_ctx.keyspace).map(|s| (s, binds.as_slice()))
            })
            .collect::<Result<_, _>>()?;
        let refs: Vec<(&Statement, &[BoundValue])> =
            resolved.iter().map(|(s, b)| (s, *b)).collect();
        self.write(&refs, ctx, timestamp, Some(false))
    }

    pub fn prepare(&self, parsed: &Parsed, ctx: &Context<'_>) -> Result<PreparedMeta, CqlError> {
        let mut specs: Vec<Option<ColumnSpec>> = vec![None; parsed.marker_names.len()];
        let mut pk_indices = Vec::new();
        let mut result = None;
        self.collect_bind_specs(
            &parsed.statement,
            ctx,
            &mut specs,
            &mut pk_indices,
            &mut result,
        )?;
        let binds = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut spec = spec.ok_or_else(|| {
                    CqlError::invalid(format!(
                        "bind marker {} is in a position the CQL testbed cannot type",
                        i + 1
                    ))
                })?;
                if let Some(Some(name)) = parsed.marker_names.get(i) {
                    spec.name = name.clone();
                }
                Ok(spec)
            })
            .collect::<Result<Vec<_>, CqlError>>()?;
        Ok(PreparedMeta {
            binds,
            pk_indices,
            result,
        })
    }

    fn collect_bind_specs(
        &self,
        statement: &Statement,
        ctx: &Context<'_>,
        specs: &mut [Option<ColumnSpec>],
        pk_indices: &mut Vec<u16>,
        result: &mut Option<Vec<ColumnSpec>>,
    ) -> Result<(), CqlError> {
        let spec_for = |def: &TableDef, name: &str, ty: CqlType| ColumnSpec {
            keyspace: def.keyspace.clone(),
            table: def.name.clone(),
            name: name.to_string(),
            ty,
        };
        let column = |def: &TableDef, name: &str| -> Result<CqlType, CqlError> {
            def.column(name)
                .map(|(_, c)| c.ty.clone())
                .ok_or_else(|| CqlError::invalid(format!("Undefined column name {name}")))
        };
        let using = |def: &TableDef, u: &crate::cql::Using, specs: &mut [Option<ColumnSpec>]| {
            if let Some(t) = &u.timestamp {
                mark(t, &spec_for(def, "[timestamp]", CqlType::BigInt), specs);
            }
            if let Some(t) = &u.ttl {
                mark(t, &spec_for(def, "[ttl]", CqlType::Int), specs);
            }
        };
        let relations = |def: &TableDef, rels: &[Relation], specs: &mut [Option<ColumnSpec>]| {
            for r in rels {
                let ty = column(def, &r.column)?;
                let (name, ty) = match r.op {
                    Op::In => match &r.value {
                        Term::Bind(_) => (format!("in({})", r.column), CqlType::list(ty)),
                        _ => (r.column.clone(), CqlType::list(ty)),
                    },
                    Op::Contains => match ty {
                        CqlType::List { element, .. } | CqlType::Set { element, .. } => {
                            (r.column.clone(), *element)
                        }
                        CqlType::Map { value, .. } => (r.column.clone(), *value),
                        other => (r.column.clone(), other),
                    },
                    Op::ContainsKey => match ty {
                        CqlType::Map { key, .. } => (r.column.clone(), *key),
                        other => (r.column.clone(), other),
                    },
                    _ => (r.column.clone(), ty),
                };
                mark(&r.value, &spec_for(def, &name, ty), specs);
            }
            Ok::<(), CqlError>(())
        };
        let pk_from_relations = |def: &TableDef, rels: &[Relation]| -> Vec<u16> {
            let found: Vec<Option<u16>> = def
                .partition_key()
                .iter()
                .map(|pk| {
                    rels.iter().find_map(|r| match (&r.value, r.op) {
                        (Term::Bind(i), Op::Eq) if r.column == pk.name => Some(*i as u16),
                        _ => None,
                    })
                })
                .collect();
            found
                .into_iter()
                .collect::<Option<Vec<u16>>>()
                .unwrap_or_default()
        };
        match statement {
            Statement::Select(s) => {
                let table = self.table(&s.table, ctx)?;
                let def = table.def();
                relations(def, &s.relations, specs)?;
                if let Some(t) = &s.limit {
                    mark(t, &spec_for(def, "[limit]", CqlType::Int), specs);
                }
                if let Some(t) = &s.per_partition_limit {
                    mark(
                        t,
                        &spec_for(def, "[per_partition_limit]", CqlType::Int),
                        specs,
                    );
                }
                *pk_indices = pk_from_relations(def, &s.relations);
                *result = Some(
                    select::selection(def, s)?
                        .into_iter()
                        .map(|o| o.spec)
                        .collect(),
                );
            }
            Statement::Insert(ins) => {
                let table = self.user_table(&ins.table, ctx)?;
                let def = &table.def;
                using(def, &ins.using, specs);
                for (name, value) in ins.columns.iter().zip(&ins.values) {
                    mark(value, &spec_for(def, name, column(def, name)?), specs);
                }
                let found: Option<Vec<u16>> = def
                    .partition_key()
                    .iter()
                    .map(|pk| {
                        ins.columns
                            .iter()
                            .zip(&ins.values)
                            .find_map(|(c, v)| match v {
                                Term::Bind(i) if *c == pk.name => Some(*i as u16),
                                _ => None,
                            })
                    })
                    .collect();
                *pk_indices = found.unwrap_or_default();
            }
            Statement::Update(up) => {
                let table = self.user_table(&up.table, ctx)?;
                let def = &table.def;
                using(def, &up.using, specs);
                for a in &up.assignments {
                    let name = a.column();
                    let ty = column(def, name)?;
                    match a {
                        Assignment::Set { value, .. }
                        | Assignment::Append { value, .. }
                        | Assignment::Prepend { value, .. } => {
                            mark(value, &spec_for(def, name, ty), specs)
                        }
                        Assignment::Remove { value, .. } => {
                            let ty = match ty {
                                CqlType::Map { key, .. } => CqlType::set(*key),
                                other => other,
                            };
                            mark(value, &spec_for(def, name, ty), specs)
                        }
                        Assignment::SetElement { key, value, .. } => {
                            let (kt, vt) = match ty {
                                CqlType::Map { key, value, .. } => (*key, *value),
                                CqlType::List { element, .. } => (CqlType::Int, *element),
                                other => (other.clone(), other),
                            };
                            mark(key, &spec_for(def, &format!("key({name})"), kt), specs);
                            mark(value, &spec_for(def, &format!("value({name})"), vt), specs);
                        }
                    }
                }
                relations(def, &up.relations, specs)?;
                *pk_indices = pk_from_relations(def, &up.relations);
            }
            Statement::Delete(del) => {
                let table = self.user_table(&del.table, ctx)?;
                let def = &table.def;
                for t in &del.targets {
                    if let DeleteTarget::Element(name, key) = t {
                        let kt = match column(def, name)? {
                            CqlType::Map { key, .. } => *key,
                            _ => CqlType::Int,
                        };
                        mark(key, &spec_for(def, &format!("key({name})"), kt), specs);
                    }
                }
                using(def, &del.using, specs);
                relations(def, &del.relations, specs)?;
                *pk_indices = pk_from_relations(def, &del.relations);
            }
            Statement::Batch {
                using: batch_using,
                statements,
                ..
            } => {
                if let Some(t) = &batch_using.timestamp {
                    mark(
                        t,
                        &ColumnSpec {
                            keyspace: String::new(),
                            table: String::new(),
                            name: "[timestamp]".into(),
                            ty: CqlType::BigInt,
                        },
                        specs,
                    );
                }
                for s in statements {
                    let mut ignored = None;
                    let mut ignored_pk = Vec::new();
                    self.collect_bind_specs(s, ctx, specs, &mut ignored_pk, &mut ignored)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Records the spec of every bind marker in `term` (collection literal elements get the
/// element types).
fn mark(term: &Term, spec: &ColumnSpec, specs: &mut [Option<ColumnSpec>]) {
    let with_ty = |ty: &CqlType| ColumnSpec {
        ty: ty.clone(),
        ..spec.clone()
    };
    match term {
        Term::Bind(i) => {
            if let Some(slot) = specs.get_mut(*i) {
                *slot = Some(spec.clone());
            }
        }
        Term::List(items) | Term::Set(items) => {
            if let CqlType::List { element, .. } | CqlType::Set { element, .. } = &spec.ty {
                for item in items {
                    mark(item, &with_ty(element), specs);
                }
            }
        }
        Term::Map(entries) => {
            if let CqlType::Map { key, value, .. } = &spec.ty {
                for (k, v) in entries {
                    mark(k, &with_ty(key), specs);
                    mark(v, &with_ty(value), specs);
                }
            }
        }
        _ => {}
    }
}

/// A copy of a DML statement with its table name qualified by `keyspace` when it had none.
fn qualify(statement: &Statement, keyspace: Option<&str>) -> Result<Statement, CqlError> {
    let fix = |name: &QualifiedName| -> Result<QualifiedName, CqlError> {
        match (&name.keyspace, keyspace) {
            (Some(_), _) => Ok(name.clone()),
            (None, Some(ks)) => Ok(QualifiedName {
                keyspace: Some(ks.to_string()),
                name: name.name.clone(),
            }),
            (None, None) => Err(CqlError::invalid(
                "No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename",
            )),
        }
    };
    let mut s = statement.clone();
    match &mut s {
        Statement::Insert(i) => i.table = fix(&i.table)?,
        Statement::Update(u) => u.table = fix(&u.table)?,
        Statement::Delete(d) => d.table = fix(&d.table)?,
        _ => {}
    }
    Ok(s)
}

/// Evaluates a `USING TIMESTAMP` term.
fn timestamp_value(term: &Term, binds: &[BoundValue]) -> Result<i64, CqlError> {
    match resolve(term, &CqlType::BigInt, "[timestamp]", binds)? {
        Resolved::Value(v) if v.len() == 8 => {
            let ts = i64::from_be_bytes(v[..].try_into().unwrap_or([0; 8]));
            if ts == i64::MIN {
                return Err(CqlError::invalid(
                    "A user provided timestamp must not be Long.MIN_VALUE (-9223372036854775808)",
                ));
            }
            Ok(ts)
        }
        Resolved::Null => Err(CqlError::invalid("Invalid null value of timestamp")),
        _ => Err(CqlError::invalid("Invalid value for the timestamp")),
    }
}

/// Reads an `int` term that must be a value (LIMIT, TTL).
fn int_value(term: &Term, name: &str, binds: &[BoundValue]) -> Result<Option<i32>, CqlError> {
    match resolve(term, &CqlType::Int, name, binds)? {
        Resolved::Value(v) if v.len() == 4 => {
            Ok(Some(i32::from_be_bytes(v[..].try_into().unwrap_or([0; 4]))))
        }
        Resolved::Unset => Ok(None),
        Resolved::Null => Err(CqlError::invalid(format!("Invalid null value of {name}"))),
        Resolved::Value(_) => Err(CqlError::invalid(format!("Invalid empty value of {name}"))),
    }
}

/// The values a relation compares against: one for `=` and slices, the list for IN.
fn relation_values(
    def: &TableDef,
    relation: &Relation,
    binds: &[BoundValue],
) -> Result<(usize, Vec<Bytes>), CqlError> {
    let (index, column) = def
        .column(&relation.column)
        .ok_or_else(|| CqlError::invalid(format!("Undefined column name {}", relation.column)))?;
    let single = |term: &Term, ty: &CqlType| -> Result<Bytes, CqlError> {
        match resolve(term, ty, &relation.column, binds)? {
            Resolved::Value(v) => Ok(v),
            Resolved::Null => Err(CqlError::invalid(format!(
                "Invalid null value in condition for column {}",
                relation.column
            ))),
            Resolved::Unset => Err(CqlError::invalid(format!(
                "Invalid unset value for column {}",
                relation.column
            ))),
        }
    };
    let values = match relation.op {
        Op::In => match &relation.value {
            Term::List(items) => items
                .iter()
                .map(|t| single(t, &column.ty))
                .collect::<Result<Vec<_>, _>>()?,
            term => {
                let list = single(term, &CqlType::list(column.ty.clone()))?;
                crate::types::decode_elements(&list, 1)
                    .map_err(CqlError::Invalid)?
                    .into_iter()
                    .filter_map(|mut e| e.pop())
                    .collect()
            }
        },
        Op::Contains => {
            let ty = match &column.ty {
                CqlType::List { element, .. } | CqlType::Set { element, .. } => (**element).clone(),
                CqlType::Map { value, .. } => (**value).clone(),
                other => {
                    return Err(CqlError::invalid(format!(
                        "Cannot use CONTAINS on non-collection column {} of type {}",
                        relation.column,
                        other.cql_name()
                    )))
                }
            };
            vec![single(&relation.value, &ty)?]
        }
        Op::ContainsKey => {
            let CqlType::Map { key, .. } = &column.ty else {
                return Err(CqlError::invalid(format!(
                    "Cannot use CONTAINS KEY on non-map column {}",
                    relation.column
                )));
            };
            vec![single(&relation.value, key)?]
        }
        _ => vec![single(&relation.value, &column.ty)?],
    };
    Ok((index, values))
}

/// Every combination of one value per component (IN lists multiply).
fn cartesian(components: &[Vec<Bytes>]) -> Vec<Vec<Bytes>> {
    let mut out: Vec<Vec<Bytes>> = vec![Vec::new()];
    for values in components {
        let mut next = Vec::with_capacity(out.len() * values.len());
        for prefix in &out {
            for v in values {
                let mut row = prefix.clone();
                row.push(v.clone());
                next.push(row);
            }
        }
        out = next;
    }
    out
}

/// Where a partition lives: its token and serialized key.
fn partition_position(key: &[Bytes]) -> Result<(i64, Bytes), CqlError> {
    let serialized = crate::token::serialize_partition_key(key);
    if serialized.is_empty() {
        return Err(CqlError::invalid("Key may not be empty"));
    }
    Ok((crate::token::murmur3_token(&serialized), serialized))
}
