//! INSERT, UPDATE, DELETE and batches: turning statements into timestamped mutations.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{
    cartesian, int_value, now_secs, partition_position, relation_values, select, timestamp_value,
    Context, Database, Outcome, Rows,
};
use crate::cql::{Assignment, DeleteTarget, Op, Relation, Statement, Term, Using};
use crate::error::CqlError;
use crate::frame::BoundValue;
use crate::schema::{ColumnKind, ColumnMeta, Table, TableDef};
use crate::storage::{Cell, Liveness, NowSecs, Partition, RangeTombstone, SliceBound};
use crate::types::{decode_elements, CqlType};
use crate::values::{resolve, Resolved};

/// Cassandra's maximum TTL: 20 years in seconds.
pub const MAX_TTL: i32 = 630_720_000;

/// One change to one row.
#[derive(Debug, Clone)]
enum Mutation {
    Marker(Liveness),
    Cell(u32, Cell),
    CollectionDelete(u32, i64),
    Element {
        column: u32,
        order: Vec<u8>,
        key: Bytes,
        cell: Cell,
    },
    ListAppend {
        column: u32,
        values: Vec<Bytes>,
        prepend: bool,
        ts: i64,
        ttl: i32,
    },
    /// `l[i] = v` (value) or `DELETE l[i]` (no value).
    ListSetIndex {
        column: u32,
        name: String,
        index: i32,
        value: Option<Bytes>,
        ts: i64,
        ttl: i32,
    },
    ListRemoveValues {
        column: u32,
        values: Vec<Bytes>,
        ts: i64,
    },
    RowDelete(i64),
}

#[derive(Debug)]
enum Target {
    Row {
        position: (i64, Bytes),
        pk: Vec<Bytes>,
        clustering: Vec<Bytes>,
        sort_key: Vec<u8>,
        mutations: Vec<Mutation>,
    },
    Partition {
        position: (i64, Bytes),
        pk: Vec<Bytes>,
        ts: i64,
    },
    Range {
        position: (i64, Bytes),
        pk: Vec<Bytes>,
        tombstone: RangeTombstone,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Condition {
    IfNotExists,
    IfExists,
}

struct Plan {
    table: Table,
    targets: Vec<Target>,
    condition: Option<Condition>,
}

fn resolve_ttl(using: &Using, def: &TableDef, binds: &[BoundValue]) -> Result<i32, CqlError> {
    let Some(term) = &using.ttl else {
        return Ok(def.default_ttl);
    };
    match int_value(term, "[ttl]", binds)? {
        None => Ok(def.default_ttl),
        Some(ttl) if ttl < 0 => Err(CqlError::invalid(format!(
            "A TTL must be greater or equal to 0, but was {ttl}"
        ))),
        Some(ttl) if ttl > MAX_TTL => Err(CqlError::invalid(format!(
            "ttl is too large. requested ({ttl}) maximum ({MAX_TTL})"
        ))),
        Some(ttl) => Ok(ttl),
    }
}

fn key_value(column: &ColumnMeta, resolved: Resolved) -> Result<Bytes, CqlError> {
    match resolved {
        Resolved::Value(v) => Ok(v),
        Resolved::Null => Err(CqlError::invalid(format!(
            "Invalid null value in condition for column {}",
            column.name
        ))),
        Resolved::Unset => Err(CqlError::invalid(format!(
            "Invalid unset value for column {}",
            column.name
        ))),
    }
}

/// Mutations setting a column to a whole value (INSERT, `SET c = v`).
fn set_column(
    column: &ColumnMeta,
    value: Resolved,
    ts: i64,
    ttl: i32,
    now: NowSecs,
) -> Result<Vec<Mutation>, CqlError> {
    Ok(match value {
        Resolved::Unset => Vec::new(),
        Resolved::Null if column.ty.is_multi_cell() => {
            vec![Mutation::CollectionDelete(column.id, ts)]
        }
        Resolved::Null => vec![Mutation::Cell(column.id, Cell::tombstone(ts, now))],
        Resolved::Value(v) if column.ty.is_multi_cell() => {
            // Overwriting a collection deletes what was there just before this write.
            let mut out = vec![Mutation::CollectionDelete(column.id, ts - 1)];
            out.extend(add_elements(column, &v, ts, ttl, now, false)?);
            out
        }
        Resolved::Value(v) => vec![Mutation::Cell(column.id, Cell::live(ts, v, ttl, now))],
    })
}

/// Mutations adding the elements of serialized collection `v` to a non-frozen collection.
fn add_elements(
    column: &ColumnMeta,
    v: &Bytes,
    ts: i64,
    ttl: i32,
    now: NowSecs,
    prepend: bool,
) -> Result<Vec<Mutation>, CqlError> {
    Ok(match &column.ty {
        CqlType::Set { element, .. } => decode_elements(v, 1)
            .map_err(CqlError::Invalid)?
            .into_iter()
            .filter_map(|mut e| e.pop())
            .map(|e| {
                let mut order = Vec::new();
                element.sort_key(&e, &mut order);
                Mutation::Element {
                    column: column.id,
                    order,
                    key: e,
                    cell: Cell::live(ts, Bytes::new(), ttl, now),
                }
            })
            .collect(),
        CqlType::Map { key, .. } => decode_elements(v, 2)
            .map_err(CqlError::Invalid)?
            .into_iter()
            .filter_map(|mut e| {
                let value = e.pop()?;
                let k = e.pop()?;
                let mut order = Vec::new();
                key.sort_key(&k, &mut order);
                Some(Mutation::Element {
                    column: column.id,
                    order,
                    key: k,
                    cell: Cell::live(ts, value, ttl, now),
                })
            })
            .collect(),
        CqlType::List { .. } => {
            let values: Vec<Bytes> = decode_elements(v, 1)
                .map_err(CqlError::Invalid)?
                .into_iter()
                .filter_map(|mut e| e.pop())
                .collect();
            if values.is_empty() {
                Vec::new()
            } else {
                vec![Mutation::ListAppend {
                    column: column.id,
                    values,
                    prepend,
                    ts,
                    ttl,
                }]
            }
        }
        other => {
            return Err(CqlError::Server(format!(
                "add_elements called on non-collection type {}",
                other.cql_name()
            )))
        }
    })
}

/// The key and shape restrictions of an UPDATE or DELETE.
struct Keys {
    partitions: Vec<Vec<Bytes>>,
    /// Clustering prefixes restricted by `=`/IN.
    clustering: Vec<Vec<Bytes>>,
    prefix_len: usize,
    /// A slice on the clustering column right after the prefix (DELETE only).
    slice: Option<(Option<SliceBound>, Option<SliceBound>)>,
}

fn write_keys(
    def: &TableDef,
    relations: &[Relation],
    binds: &[BoundValue],
    allow_slice: bool,
) -> Result<Keys, CqlError> {
    let mut pk: Vec<Option<Vec<Bytes>>> = vec![None; def.partition_key_len];
    let mut ck: Vec<Option<Vec<Bytes>>> = vec![None; def.clustering_len];
    let mut lower: Option<(usize, SliceBound)> = None;
    let mut upper: Option<(usize, SliceBound)> = None;
    for r in relations {
        let (index, values) = relation_values(def, r, binds)?;
        let column = &def.columns[index];
        if column.kind == ColumnKind::Regular {
            return Err(CqlError::invalid(format!(
                "Non PRIMARY KEY columns found in where clause: {}",
                column.name
            )));
        }
        let slot = if column.kind == ColumnKind::PartitionKey {
            &mut pk[column.position as usize]
        } else {
            &mut ck[column.position as usize]
        };
        match r.op {
            Op::Eq | Op::In => {
                if slot.is_some() {
                    return Err(CqlError::invalid(format!(
                        "{} cannot be restricted by more than one relation if it includes an Equal",
                        column.name
                    )));
                }
                *slot = Some(values);
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge if column.kind == ColumnKind::Clustering && allow_slice => {
                let bound = SliceBound {
                    value: values.into_iter().next().unwrap_or_default(),
                    inclusive: matches!(r.op, Op::Le | Op::Ge),
                };
                let position = column.position as usize;
                // A DESC column's `>` is still a bound on values; orientation is by value.
                let target = if matches!(r.op, Op::Gt | Op::Ge) { &mut lower } else { &mut upper };
                if target.is_some() {
                    return Err(CqlError::invalid(format!(
                        "More than one restriction was found for the {} bound on {}",
                        if matches!(r.op, Op::Gt | Op::Ge) { "start" } else { "end" },
                        column.name
                    )));
                }
                *target = Some((position, bound));
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge if column.kind == ColumnKind::PartitionKey => {
                return Err(CqlError::invalid(
                    "Only EQ and IN relation are supported on the partition key (unless you use the token() function)",
                ))
            }
            _ => {
                return Err(CqlError::invalid(format!(
                    "Invalid operator {} for PRIMARY KEY column {} in a modification statement",
                    r.op.symbol(),
                    column.name
                )))
            }
        }
    }
    let missing: Vec<&str> = def
        .partition_key()
        .iter()
        .zip(&pk)
        .filter(|(_, v)| v.is_none())
        .map(|(c, _)| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(CqlError::invalid(format!(
            "Some partition key parts are missing: {}",
            missing.join(", ")
        )));
    }
    let prefix_len = ck.iter().take_while(|v| v.is_some()).count();
    if let Some(gap) = ck.iter().skip(prefix_len).position(|v| v.is_some()) {
        let after = &def.clustering()[prefix_len + gap];
        return Err(CqlError::invalid(format!(
            "PRIMARY KEY column \"{}\" cannot be restricted as preceding column \"{}\" is not restricted",
            after.name,
            def.clustering()[prefix_len].name
        )));
    }
    for (position, _) in lower.iter().chain(upper.iter()) {
        if *position != prefix_len {
            return Err(CqlError::invalid(format!(
                "Clustering column \"{}\" cannot be restricted by a slice: only the column after the restricted prefix can",
                def.clustering()[*position].name
            )));
        }
    }
    let slice = (lower.is_some() || upper.is_some())
        .then(|| (lower.map(|(_, b)| b), upper.map(|(_, b)| b)));
    let partitions = cartesian(&pk.into_iter().flatten().collect::<Vec<_>>());
    let clustering = cartesian(&ck.into_iter().flatten().collect::<Vec<_>>());
    Ok(Keys {
        partitions,
        clustering,
        prefix_len,
        slice,
    })
}

impl Database {
    /// Applies DML statements. `batch` is `None` for a single statement, otherwise whether the
    /// batch itself carried `USING TIMESTAMP`.
    pub(super) fn write(
        &self,
        items: &[(&Statement, &[BoundValue])],
        ctx: &Context<'_>,
        default_ts: Option<i64>,
        batch: Option<bool>,
    ) -> Result<Outcome, CqlError> {
        let now = now_secs();
        let conditional = items.iter().any(|(s, _)| match s {
            Statement::Insert(i) => i.if_not_exists,
            Statement::Update(u) => u.if_exists,
            Statement::Delete(d) => d.if_exists,
            _ => false,
        });
        if conditional && batch.is_some() {
            return Err(CqlError::invalid(
                "conditional statements (IF EXISTS / IF NOT EXISTS) inside batches are not supported by the CQL testbed",
            ));
        }
        // A batch shares one timestamp; a conditional write gets a fresh server timestamp as
        // Cassandra's Paxos round would.
        let ts = if conditional {
            self.next_timestamp()
        } else {
            default_ts.unwrap_or_else(|| self.next_timestamp())
        };
        let mut plans = Vec::with_capacity(items.len());
        for (statement, binds) in items {
            plans.push(self.plan(statement, binds, ctx, ts, batch == Some(true), now)?);
        }
        if let [plan] = plans.as_slice() {
            if let Some(condition) = plan.condition {
                return self.apply_conditional(plan, condition, now);
            }
        }
        for plan in &plans {
            let mut data = plan.table.data.write().unwrap_or_else(|e| e.into_inner());
            for target in &plan.targets {
                self.apply(&mut data, target, now)?;
            }
        }
        Ok(Outcome::Void)
    }

    fn apply_conditional(
        &self,
        plan: &Plan,
        condition: Condition,
        now: NowSecs,
    ) -> Result<Outcome, CqlError> {
        let def = &plan.table.def;
        let [Target::Row {
            position, sort_key, ..
        }] = plan.targets.as_slice()
        else {
            return Err(CqlError::invalid(
                "IF conditions need the full PRIMARY KEY restricted with single = relations",
            ));
        };
        let mut data = plan.table.data.write().unwrap_or_else(|e| e.into_inner());
        let existing = data.partitions.get(position).and_then(|p| {
            p.rows
                .get(sort_key)
                .filter(|r| r.is_live(now))
                .map(|r| select::row_values(def, p, r, now).0)
        });
        let applied = match condition {
            Condition::IfNotExists => existing.is_none(),
            Condition::IfExists => existing.is_some(),
        };
        if applied {
            for target in &plan.targets {
                self.apply(&mut data, target, now)?;
            }
        }
        let mut columns = vec![super::ColumnSpec {
            keyspace: def.keyspace.clone(),
            table: def.name.clone(),
            name: "[applied]".into(),
            ty: CqlType::Boolean,
        }];
        let mut row = vec![Some(Bytes::from_static(if applied { &[1] } else { &[0] }))];
        if let (false, Condition::IfNotExists, Some(values)) = (applied, condition, existing) {
            columns.extend(def.columns.iter().map(|c| super::ColumnSpec {
                keyspace: def.keyspace.clone(),
                table: def.name.clone(),
                name: c.name.clone(),
                ty: c.ty.clone(),
            }));
            row.extend(values);
        }
        Ok(Outcome::Rows(Rows {
            columns,
            rows: vec![row],
            paging_state: None,
            force_metadata: true,
        }))
    }

    fn apply(
        &self,
        data: &mut crate::storage::TableData,
        target: &Target,
        now: NowSecs,
    ) -> Result<(), CqlError> {
        match target {
            Target::Partition { position, pk, ts } => {
                data.partition_mut(position.clone(), pk).delete(*ts);
            }
            Target::Range {
                position,
                pk,
                tombstone,
            } => data
                .partition_mut(position.clone(), pk)
                .delete_range(tombstone.clone()),
            Target::Row {
                position,
                pk,
                clustering,
                sort_key,
                mutations,
            } => {
                let partition = data.partition_mut(position.clone(), pk);
                for m in mutations {
                    self.apply_mutation(partition, sort_key, clustering, m, now)?;
                }
            }
        }
        Ok(())
    }

    fn apply_mutation(
        &self,
        p: &mut Partition,
        sort_key: &[u8],
        clustering: &[Bytes],
        m: &Mutation,
        now: NowSecs,
    ) -> Result<(), CqlError> {
        match m {
            Mutation::Marker(l) => p.write_marker(sort_key, clustering, *l),
            Mutation::Cell(column, cell) => {
                p.write_cell(sort_key, clustering, *column, cell.clone())
            }
            Mutation::CollectionDelete(column, ts) => {
                p.delete_collection(sort_key, clustering, *column, *ts)
            }
            Mutation::RowDelete(ts) => p.delete_row(sort_key, clustering, *ts),
            Mutation::Element {
                column,
                order,
                key,
                cell,
            } => p.write_element(
                sort_key,
                clustering,
                *column,
                order.clone(),
                key.clone(),
                cell.clone(),
            ),
            Mutation::ListAppend {
                column,
                values,
                prepend,
                ts,
                ttl,
            } => {
                let ids: Vec<u64> = if *prepend {
                    // Prepended elements go before everything, in the order given.
                    let mut ids: Vec<u64> = values
                        .iter()
                        .map(|_| self.list_prepend.fetch_sub(1, Ordering::Relaxed))
                        .collect();
                    ids.reverse();
                    ids
                } else {
                    values
                        .iter()
                        .map(|_| self.list_append.fetch_add(1, Ordering::Relaxed))
                        .collect()
                };
                for (id, v) in ids.into_iter().zip(values) {
                    let key = Bytes::copy_from_slice(&id.to_be_bytes());
                    p.write_element(
                        sort_key,
                        clustering,
                        *column,
                        key.to_vec(),
                        key,
                        Cell::live(*ts, v.clone(), *ttl, now),
                    );
                }
            }
            Mutation::ListSetIndex {
                column,
                name,
                index,
                value,
                ts,
                ttl,
            } => {
                let live = p.live_elements(sort_key, *column, now);
                let Some((order, key, _)) = usize::try_from(*index).ok().and_then(|i| live.get(i))
                else {
                    return Err(CqlError::invalid(format!(
                        "List index {index} out of bound, list has size {} (column {name})",
                        live.len()
                    )));
                };
                let cell = match value {
                    Some(v) => Cell::live(*ts, v.clone(), *ttl, now),
                    None => Cell::tombstone(*ts, now),
                };
                p.write_element(
                    sort_key,
                    clustering,
                    *column,
                    order.clone(),
                    key.clone(),
                    cell,
                );
            }
            Mutation::ListRemoveValues { column, values, ts } => {
                for (order, key, v) in p.live_elements(sort_key, *column, now) {
                    if values.contains(&v) {
                        p.write_element(
                            sort_key,
                            clustering,
                            *column,
                            order,
                            key,
                            Cell::tombstone(*ts, now),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn plan(
        &self,
        statement: &Statement,
        binds: &[BoundValue],
        ctx: &Context<'_>,
        default_ts: i64,
        batch_has_timestamp: bool,
        now: NowSecs,
    ) -> Result<Plan, CqlError> {
        let (table_name, using) = match statement {
            Statement::Insert(i) => (&i.table, &i.using),
            Statement::Update(u) => (&u.table, &u.using),
            Statement::Delete(d) => (&d.table, &d.using),
            other => {
                return Err(CqlError::invalid(format!(
                    "only INSERT, UPDATE and DELETE can be applied as writes, not {other:?}"
                )))
            }
        };
        let table = self.user_table(table_name, ctx)?;
        let def = table.def.clone();
        let condition = match statement {
            Statement::Insert(i) if i.if_not_exists => Some(Condition::IfNotExists),
            Statement::Update(u) if u.if_exists => Some(Condition::IfExists),
            Statement::Delete(d) if d.if_exists => Some(Condition::IfExists),
            _ => None,
        };
        let ts = match &using.timestamp {
            Some(_) if condition.is_some() => {
                return Err(CqlError::invalid(
                    "Cannot provide custom timestamp for conditional updates",
                ))
            }
            Some(_) if batch_has_timestamp => {
                return Err(CqlError::invalid(
                    "Timestamp must be set either on BATCH or individual statements",
                ))
            }
            Some(term) => timestamp_value(term, binds)?,
            None => default_ts,
        };
        let ttl = resolve_ttl(using, &def, binds)?;
        let targets = match statement {
            Statement::Insert(ins) => {
                if ins.columns.len() != ins.values.len() {
                    return Err(CqlError::invalid("Unmatched column names/values"));
                }
                let mut pk = vec![None; def.partition_key_len];
                let mut ck = vec![None; def.clustering_len];
                let mut mutations = vec![Mutation::Marker(Liveness::new(ts, ttl, now))];
                let mut seen = Vec::new();
                for (name, term) in ins.columns.iter().zip(&ins.values) {
                    let (index, column) = def.column(name).ok_or_else(|| {
                        CqlError::invalid(format!("Undefined column name {name}"))
                    })?;
                    if seen.contains(&index) {
                        return Err(CqlError::invalid(format!(
                            "Multiple definitions found for column {name}"
                        )));
                    }
                    seen.push(index);
                    let value = resolve(term, &column.ty, name, binds)?;
                    match column.kind {
                        ColumnKind::PartitionKey => {
                            pk[column.position as usize] = Some(key_value(column, value)?)
                        }
                        ColumnKind::Clustering => {
                            ck[column.position as usize] = Some(key_value(column, value)?)
                        }
                        ColumnKind::Regular => {
                            mutations.extend(set_column(column, value, ts, ttl, now)?)
                        }
                    }
                }
                let missing = |cols: &[ColumnMeta], vals: &[Option<Bytes>]| -> Vec<String> {
                    cols.iter()
                        .zip(vals)
                        .filter(|(_, v)| v.is_none())
                        .map(|(c, _)| c.name.clone())
                        .collect()
                };
                let missing_pk = missing(def.partition_key(), &pk);
                if !missing_pk.is_empty() {
                    return Err(CqlError::invalid(format!(
                        "Some partition key parts are missing: {}",
                        missing_pk.join(", ")
                    )));
                }
                let missing_ck = missing(def.clustering(), &ck);
                if !missing_ck.is_empty() {
                    return Err(CqlError::invalid(format!(
                        "Some clustering keys are missing: {}",
                        missing_ck.join(", ")
                    )));
                }
                let pk: Vec<Bytes> = pk.into_iter().flatten().collect();
                let ck: Vec<Bytes> = ck.into_iter().flatten().collect();
                vec![Target::Row {
                    position: partition_position(&pk)?,
                    sort_key: def.clustering_sort_key(&ck),
                    pk,
                    clustering: ck,
                    mutations,
                }]
            }
            Statement::Update(up) => {
                let keys = write_keys(&def, &up.relations, binds, false)?;
                if keys.prefix_len < def.clustering_len {
                    return Err(CqlError::invalid(format!(
                        "Some clustering keys are missing: {}",
                        def.clustering()[keys.prefix_len..]
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                let mut mutations = Vec::new();
                for a in &up.assignments {
                    mutations.extend(assignment(&def, a, binds, ts, ttl, now)?);
                }
                row_targets(&def, &keys, &mutations)?
            }
            Statement::Delete(del) => {
                let keys = write_keys(&def, &del.relations, binds, del.targets.is_empty())?;
                if del.targets.is_empty() {
                    if keys.prefix_len == def.clustering_len {
                        row_targets(&def, &keys, &[Mutation::RowDelete(ts)])?
                    } else if keys.prefix_len == 0 && keys.slice.is_none() {
                        keys.partitions
                            .iter()
                            .map(|pk| {
                                Ok(Target::Partition {
                                    position: partition_position(pk)?,
                                    pk: pk.clone(),
                                    ts,
                                })
                            })
                            .collect::<Result<_, CqlError>>()?
                    } else {
                        let mut out = Vec::new();
                        for pk in &keys.partitions {
                            for prefix in &keys.clustering {
                                let slice = keys.slice.clone().map(|(lo, hi)| {
                                    let col = &def.clustering()[keys.prefix_len];
                                    (keys.prefix_len, col.ty.clone(), lo, hi)
                                });
                                out.push(Target::Range {
                                    position: partition_position(pk)?,
                                    pk: pk.clone(),
                                    tombstone: RangeTombstone {
                                        prefix: def.clustering_sort_key(prefix),
                                        slice,
                                        ts,
                                    },
                                });
                            }
                        }
                        out
                    }
                } else {
                    if keys.prefix_len < def.clustering_len {
                        return Err(CqlError::invalid(format!(
                            "Range deletions are not supported for specific columns: restrict every clustering column ({}) to delete columns",
                            def.clustering().iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                        )));
                    }
                    let mut mutations = Vec::new();
                    for t in &del.targets {
                        mutations.extend(delete_target(&def, t, binds, ts, now)?);
                    }
                    row_targets(&def, &keys, &mutations)?
                }
            }
            _ => Vec::new(),
        };
        Ok(Plan {
            table,
            targets,
            condition,
        })
    }
}

fn row_targets(
    def: &TableDef,
    keys: &Keys,
    mutations: &[Mutation],
) -> Result<Vec<Target>, CqlError> {
    let mut out = Vec::new();
    for pk in &keys.partitions {
        let position = partition_position(pk)?;
        for ck in &keys.clustering {
            out.push(Target::Row {
                position: position.clone(),
                pk: pk.clone(),
                clustering: ck.clone(),
                sort_key: def.clustering_sort_key(ck),
                mutations: mutations.to_vec(),
            });
        }
    }
    Ok(out)
}

fn regular_column<'a>(
    def: &'a TableDef,
    name: &str,
    what: &str,
) -> Result<&'a ColumnMeta, CqlError> {
    let (_, column) = def
        .column(name)
        .ok_or_else(|| CqlError::invalid(format!("Undefined column name {name}")))?;
    if column.kind != ColumnKind::Regular {
        return Err(CqlError::invalid(format!(
            "PRIMARY KEY part {name} found in {what}"
        )));
    }
    Ok(column)
}

fn index_value(term: &Term, name: &str, binds: &[BoundValue]) -> Result<i32, CqlError> {
    match resolve(term, &CqlType::Int, name, binds)? {
        Resolved::Value(v) if v.len() == 4 => Ok(i32::from_be_bytes([v[0], v[1], v[2], v[3]])),
        _ => Err(CqlError::invalid(format!(
            "Invalid null or unset list index for {name}"
        ))),
    }
}

fn assignment(
    def: &TableDef,
    a: &Assignment,
    binds: &[BoundValue],
    ts: i64,
    ttl: i32,
    now: NowSecs,
) -> Result<Vec<Mutation>, CqlError> {
    let column = regular_column(def, a.column(), "SET part")?;
    let name = &column.name;
    let not_multi_cell = |op: &str| {
        CqlError::invalid(if column.ty.is_collection() {
            format!("Invalid operation ({name} = {op}) for frozen collection column {name}")
        } else {
            format!("Invalid operation ({name} = {op}) for non counter column {name}")
        })
    };
    match a {
        Assignment::Set { value, .. } => {
            let v = resolve(value, &column.ty, name, binds)?;
            set_column(column, v, ts, ttl, now)
        }
        Assignment::Append { value, .. } | Assignment::Prepend { value, .. } => {
            let prepend = matches!(a, Assignment::Prepend { .. });
            if !column.ty.is_multi_cell() {
                return Err(not_multi_cell(if prepend {
                    "<value> + ..."
                } else {
                    "... + <value>"
                }));
            }
            if prepend && !matches!(column.ty, CqlType::List { .. }) {
                return Err(CqlError::invalid(format!(
                    "Invalid operation ({name} = <value> + {name}): prepending is only supported on lists"
                )));
            }
            match resolve(value, &column.ty, name, binds)? {
                Resolved::Value(v) => add_elements(column, &v, ts, ttl, now, prepend),
                Resolved::Unset => Ok(Vec::new()),
                Resolved::Null => Err(CqlError::invalid(format!(
                    "Invalid null value for collection update of {name}"
                ))),
            }
        }
        Assignment::Remove { value, .. } => {
            if !column.ty.is_multi_cell() {
                return Err(not_multi_cell("... - <value>"));
            }
            let (value_ty, element_ty) = match &column.ty {
                CqlType::Map { key, .. } => (CqlType::set((**key).clone()), (**key).clone()),
                CqlType::Set { element, .. } => (column.ty.clone(), (**element).clone()),
                _ => (column.ty.clone(), CqlType::Blob),
            };
            let v = match resolve(value, &value_ty, name, binds)? {
                Resolved::Value(v) => v,
                Resolved::Unset => return Ok(Vec::new()),
                Resolved::Null => {
                    return Err(CqlError::invalid(format!(
                        "Invalid null value for collection update of {name}"
                    )))
                }
            };
            let items: Vec<Bytes> = decode_elements(&v, 1)
                .map_err(CqlError::Invalid)?
                .into_iter()
                .filter_map(|mut e| e.pop())
                .collect();
            if matches!(column.ty, CqlType::List { .. }) {
                return Ok(vec![Mutation::ListRemoveValues {
                    column: column.id,
                    values: items,
                    ts,
                }]);
            }
            Ok(items
                .into_iter()
                .map(|k| {
                    let mut order = Vec::new();
                    element_ty.sort_key(&k, &mut order);
                    Mutation::Element {
                        column: column.id,
                        order,
                        key: k,
                        cell: Cell::tombstone(ts, now),
                    }
                })
                .collect())
        }
        Assignment::SetElement { key, value, .. } => match &column.ty {
            CqlType::Map {
                key: kt,
                value: vt,
                frozen: false,
            } => {
                let k = match resolve(key, kt, name, binds)? {
                    Resolved::Value(k) => k,
                    _ => {
                        return Err(CqlError::invalid(format!(
                            "Invalid null map key for {name}"
                        )))
                    }
                };
                let mut order = Vec::new();
                kt.sort_key(&k, &mut order);
                let cell = match resolve(value, vt, name, binds)? {
                    Resolved::Value(v) => Cell::live(ts, v, ttl, now),
                    Resolved::Null => Cell::tombstone(ts, now),
                    Resolved::Unset => return Ok(Vec::new()),
                };
                Ok(vec![Mutation::Element {
                    column: column.id,
                    order,
                    key: k,
                    cell,
                }])
            }
            CqlType::List {
                element,
                frozen: false,
            } => {
                let index = index_value(key, name, binds)?;
                let value = match resolve(value, element, name, binds)? {
                    Resolved::Value(v) => Some(v),
                    Resolved::Null => None,
                    Resolved::Unset => return Ok(Vec::new()),
                };
                Ok(vec![Mutation::ListSetIndex {
                    column: column.id,
                    name: name.clone(),
                    index,
                    value,
                    ts,
                    ttl,
                }])
            }
            _ => Err(CqlError::invalid(format!(
                "Invalid operation ({name}[<key>] = <value>) for {} column {name}",
                column.ty.cql_name()
            ))),
        },
    }
}

fn delete_target(
    def: &TableDef,
    target: &DeleteTarget,
    binds: &[BoundValue],
    ts: i64,
    now: NowSecs,
) -> Result<Vec<Mutation>, CqlError> {
    match target {
        DeleteTarget::Column(name) => {
            let column = def
                .column(name)
                .ok_or_else(|| CqlError::invalid(format!("Undefined column name {name}")))?
                .1;
            if column.kind != ColumnKind::Regular {
                return Err(CqlError::invalid(format!(
                    "Invalid identifier {name} for deletion (should not be a PRIMARY KEY part)"
                )));
            }
            set_column(column, Resolved::Null, ts, 0, now)
        }
        DeleteTarget::Element(name, key) => {
            let column = regular_column(def, name, "DELETE selection")?;
            match &column.ty {
                CqlType::Map {
                    key: kt,
                    frozen: false,
                    ..
                } => {
                    let k = match resolve(key, kt, name, binds)? {
                        Resolved::Value(k) => k,
                        Resolved::Unset => return Ok(Vec::new()),
                        Resolved::Null => {
                            return Err(CqlError::invalid(format!(
                                "Invalid null map key for {name}"
                            )))
                        }
                    };
                    let mut order = Vec::new();
                    kt.sort_key(&k, &mut order);
                    Ok(vec![Mutation::Element {
                        column: column.id,
                        order,
                        key: k,
                        cell: Cell::tombstone(ts, now),
                    }])
                }
                CqlType::List { frozen: false, .. } => Ok(vec![Mutation::ListSetIndex {
                    column: column.id,
                    name: name.clone(),
                    index: index_value(key, name, binds)?,
                    value: None,
                    ts,
                    ttl: 0,
                }]),
                other => Err(CqlError::invalid(format!(
                    "Invalid element deletion {name}[...] on column {name} of type {}",
                    other.cql_name()
                ))),
            }
        }
    }
}
