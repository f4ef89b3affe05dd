//! SELECT: restriction checks as Cassandra applies them, partition and row iteration in token
//! and clustering order, filtering, ordering, limits, aggregation and paging.

use std::cmp::Ordering;

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    cartesian, int_value, now_secs, partition_position, relation_values, system, ColumnSpec,
    Context, Database, Execution, Rows, TableRef,
};
use crate::cql::{Op, Select, Selector};
use crate::error::CqlError;
use crate::frame::Reader;
use crate::schema::{ColumnKind, TableDef};
use crate::storage::{NowSecs, Partition, Row};
use crate::types::{decode_elements, encode_collection, CqlType};

const FILTERING: &str = "Cannot execute this query as it might involve data filtering and thus may have unpredictable performance. If you want to execute this query despite the performance unpredictability, use ALLOW FILTERING";

#[derive(Debug, Clone, Copy)]
enum OutKind {
    Column(usize),
    WriteTime(usize),
    Ttl(usize),
    Count,
}

/// One selected column.
pub(super) struct OutColumn {
    pub spec: ColumnSpec,
    kind: OutKind,
}

/// The result columns of a SELECT.
pub(super) fn selection(def: &TableDef, s: &Select) -> Result<Vec<OutColumn>, CqlError> {
    let spec = |name: String, ty: CqlType| ColumnSpec {
        keyspace: def.keyspace.clone(),
        table: def.name.clone(),
        name,
        ty,
    };
    let Some(items) = &s.items else {
        return Ok(def
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| OutColumn {
                spec: spec(c.name.clone(), c.ty.clone()),
                kind: OutKind::Column(i),
            })
            .collect());
    };
    let lookup = |name: &str| {
        def.column(name)
            .ok_or_else(|| CqlError::invalid(format!("Undefined column name {name}")))
    };
    let meta_target = |name: &str, function: &str| -> Result<usize, CqlError> {
        let (index, column) = lookup(name)?;
        if def.is_primary_key(index) {
            return Err(CqlError::invalid(format!(
                "Cannot use selection function {function} on PRIMARY KEY part {name}"
            )));
        }
        if column.ty.is_multi_cell() {
            return Err(CqlError::invalid(format!(
                "Cannot use selection function {function} on non-frozen collection {name}"
            )));
        }
        Ok(index)
    };
    items
        .iter()
        .map(|item| {
            let (default_name, ty, kind) = match &item.selector {
                Selector::Column(name) => {
                    let (index, column) = lookup(name)?;
                    (name.clone(), column.ty.clone(), OutKind::Column(index))
                }
                Selector::WriteTime(name) => (
                    format!("writetime({name})"),
                    CqlType::BigInt,
                    OutKind::WriteTime(meta_target(name, "writeTime")?),
                ),
                Selector::Ttl(name) => (
                    format!("ttl({name})"),
                    CqlType::Int,
                    OutKind::Ttl(meta_target(name, "ttl")?),
                ),
                Selector::CountRows => ("count".to_string(), CqlType::BigInt, OutKind::Count),
            };
            Ok(OutColumn {
                spec: spec(item.alias.clone().unwrap_or(default_name), ty),
                kind,
            })
        })
        .collect()
}

/// A live row's values, write times and remaining TTLs, one entry per column of `def`.
pub(super) type RowValues = (Vec<Option<Bytes>>, Vec<Option<i64>>, Vec<Option<i32>>);

pub(super) fn row_values(
    def: &TableDef,
    partition: &Partition,
    row: &Row,
    now: NowSecs,
) -> RowValues {
    let n = def.columns.len();
    let (mut values, mut writetimes, mut ttls) =
        (Vec::with_capacity(n), vec![None; n], vec![None; n]);
    for (i, c) in def.columns.iter().enumerate() {
        let value = match c.kind {
            ColumnKind::PartitionKey => partition.key.get(c.position as usize).cloned(),
            ColumnKind::Clustering => row.clustering.get(c.position as usize).cloned(),
            ColumnKind::Regular if c.ty.is_multi_cell() => {
                row.collections.get(&c.id).and_then(|complex| {
                    let live: Vec<Vec<Bytes>> = complex
                        .elements
                        .values()
                        .filter(|(_, cell)| cell.is_live(now))
                        .map(|(key, cell)| match &c.ty {
                            CqlType::Set { .. } => vec![key.clone()],
                            CqlType::Map { .. } => {
                                vec![key.clone(), cell.value.clone().unwrap_or_default()]
                            }
                            _ => vec![cell.value.clone().unwrap_or_default()],
                        })
                        .collect();
                    (!live.is_empty()).then(|| encode_collection(live.into_iter()))
                })
            }
            ColumnKind::Regular => row
                .cells
                .get(&c.id)
                .filter(|cell| cell.is_live(now))
                .and_then(|cell| {
                    writetimes[i] = Some(cell.ts);
                    ttls[i] = cell.remaining_ttl(now);
                    cell.value.clone()
                }),
        };
        values.push(value);
    }
    (values, writetimes, ttls)
}

/// A row ready for filtering and projection.
pub(super) struct Candidate {
    pub position: (i64, Bytes),
    pub sort_key: Vec<u8>,
    pub values: RowValues,
}

struct Restriction {
    index: usize,
    op: Op,
    values: Vec<Bytes>,
}

impl Restriction {
    fn matches(&self, def: &TableDef, value: Option<&Bytes>) -> bool {
        let Some(v) = value else { return false };
        let ty = &def.columns[self.index].ty;
        let first = self.values.first();
        let cmp = || first.map(|x| ty.compare(v, x));
        match self.op {
            Op::Eq => cmp() == Some(Ordering::Equal),
            Op::Ne => cmp().is_some_and(|o| o != Ordering::Equal),
            Op::In => self
                .values
                .iter()
                .any(|x| ty.compare(v, x) == Ordering::Equal),
            Op::Lt => cmp() == Some(Ordering::Less),
            Op::Le => cmp().is_some_and(|o| o != Ordering::Greater),
            Op::Gt => cmp() == Some(Ordering::Greater),
            Op::Ge => cmp().is_some_and(|o| o != Ordering::Less),
            Op::Contains | Op::ContainsKey => {
                let Some(needle) = first else { return false };
                let (items, element_ty, part) = match ty {
                    CqlType::List { element, .. } | CqlType::Set { element, .. } => {
                        (decode_elements(v, 1), &**element, 0)
                    }
                    CqlType::Map { key, value, .. } => {
                        if self.op == Op::ContainsKey {
                            (decode_elements(v, 2), &**key, 0)
                        } else {
                            (decode_elements(v, 2), &**value, 1)
                        }
                    }
                    _ => return false,
                };
                items.unwrap_or_default().iter().any(|item| {
                    item.get(part)
                        .is_some_and(|x| element_ty.compare(x, needle) == Ordering::Equal)
                })
            }
        }
    }
}

struct PagingState {
    position: (i64, Bytes),
    sort_key: Vec<u8>,
    emitted: i32,
    emitted_in_partition: i32,
}

impl PagingState {
    fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i64(self.position.0);
        b.put_i32(self.position.1.len() as i32);
        b.put_slice(&self.position.1);
        b.put_i32(self.sort_key.len() as i32);
        b.put_slice(&self.sort_key);
        b.put_i32(self.emitted);
        b.put_i32(self.emitted_in_partition);
        b.freeze()
    }

    fn decode(raw: &Bytes) -> Result<Self, CqlError> {
        let bad = |_| {
            CqlError::Protocol("invalid paging state (not from this query on this node)".into())
        };
        let mut r = Reader::new(raw.clone());
        let token = r.long().map_err(bad)?;
        let key = r.bytes().map_err(bad)?.unwrap_or_default();
        let sort_key = r.bytes().map_err(bad)?.unwrap_or_default().to_vec();
        let emitted = r.int().map_err(bad)?;
        let emitted_in_partition = r.int().map_err(bad)?;
        Ok(PagingState {
            position: (token, key),
            sort_key,
            emitted,
            emitted_in_partition,
        })
    }
}

fn positive_limit(
    term: &Option<crate::cql::Term>,
    name: &str,
    exec: &Execution<'_>,
) -> Result<Option<i32>, CqlError> {
    let Some(term) = term else { return Ok(None) };
    match int_value(term, name, exec.binds)? {
        Some(n) if n <= 0 => Err(CqlError::invalid(format!(
            "{name} must be strictly positive"
        ))),
        other => Ok(other),
    }
}

impl Database {
    pub(super) fn select(
        &self,
        table: &TableRef,
        s: &Select,
        ctx: &Context<'_>,
        exec: &Execution<'_>,
    ) -> Result<Rows, CqlError> {
        let def = table.def().clone();
        let out = selection(&def, s)?;
        let aggregate = out.iter().any(|o| matches!(o.kind, OutKind::Count));
        let limit = positive_limit(&s.limit, "LIMIT", exec)?;
        let per_partition_limit =
            positive_limit(&s.per_partition_limit, "PER PARTITION LIMIT", exec)?;

        let mut restrictions = Vec::with_capacity(s.relations.len());
        for r in &s.relations {
            let (index, values) = relation_values(&def, r, exec.binds)?;
            if r.op == Op::Ne {
                return Err(CqlError::invalid(format!(
                    "Unsupported \"!=\" relation: {} != ...",
                    r.column
                )));
            }
            restrictions.push(Restriction {
                index,
                op: r.op,
                values,
            });
        }
        let mut need_filtering = false;
        // Partition key: all or nothing, by = or IN.
        let mut pk_values: Vec<Option<Vec<Bytes>>> = vec![None; def.partition_key_len];
        for r in restrictions
            .iter()
            .filter(|r| def.columns[r.index].kind == ColumnKind::PartitionKey)
        {
            let column = &def.columns[r.index];
            match r.op {
                Op::Eq | Op::In => {
                    let slot = &mut pk_values[column.position as usize];
                    if slot.is_some() {
                        return Err(CqlError::invalid(format!(
                            "{} cannot be restricted by more than one relation if it includes an Equal",
                            column.name
                        )));
                    }
                    *slot = Some(r.values.clone());
                }
                Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                    return Err(CqlError::invalid(
                        "Only EQ and IN relation are supported on the partition key (unless you use the token() function)",
                    ))
                }
                _ => need_filtering = true,
            }
        }
        let restricted_pk = pk_values.iter().filter(|v| v.is_some()).count();
        let pk_full = restricted_pk == def.partition_key_len;
        if restricted_pk > 0 && !pk_full {
            if !s.allow_filtering {
                let missing: Vec<&str> = def
                    .partition_key()
                    .iter()
                    .zip(&pk_values)
                    .filter(|(_, v)| v.is_none())
                    .map(|(c, _)| c.name.as_str())
                    .collect();
                return Err(CqlError::invalid(format!(
                    "Partition key parts: {} must be restricted as other parts are",
                    missing.join(", ")
                )));
            }
            need_filtering = true;
        }
        // Clustering: an =/IN prefix, then at most one slice.
        let mut prefix_open = true;
        let mut any_clustering = false;
        for (position, column) in def.clustering().iter().enumerate() {
            let on_column: Vec<&Restriction> = restrictions
                .iter()
                .filter(|r| r.index == def.partition_key_len + position)
                .collect();
            if on_column.is_empty() {
                prefix_open = false;
                continue;
            }
            any_clustering = true;
            if !prefix_open {
                if !s.allow_filtering {
                    let previous = &def.clustering()[position.saturating_sub(1)];
                    return Err(CqlError::invalid(format!(
                        "PRIMARY KEY column \"{}\" cannot be restricted as preceding column \"{}\" is not restricted",
                        column.name, previous.name
                    )));
                }
                need_filtering = true;
            }
            let eq = on_column
                .iter()
                .filter(|r| matches!(r.op, Op::Eq | Op::In))
                .count();
            if eq > 1 || (eq == 1 && on_column.len() > 1) {
                return Err(CqlError::invalid(format!(
                    "{} cannot be restricted by more than one relation if it includes an Equal",
                    column.name
                )));
            }
            if on_column
                .iter()
                .any(|r| matches!(r.op, Op::Contains | Op::ContainsKey))
            {
                need_filtering = true;
            }
            if eq == 0 {
                prefix_open = false;
            }
        }
        if any_clustering && !pk_full {
            need_filtering = true;
        }
        if restrictions
            .iter()
            .any(|r| def.columns[r.index].kind == ColumnKind::Regular)
        {
            need_filtering = true;
        }
        if need_filtering && !s.allow_filtering {
            return Err(CqlError::invalid(FILTERING));
        }
        if s.distinct {
            for o in &out {
                match o.kind {
                    OutKind::Column(i) if def.columns[i].kind == ColumnKind::PartitionKey => {}
                    OutKind::Count => {}
                    _ => {
                        return Err(CqlError::invalid(format!(
                            "SELECT DISTINCT queries must only request partition key columns and/or static columns (not {})",
                            o.spec.name
                        )))
                    }
                }
            }
            if restrictions
                .iter()
                .any(|r| def.columns[r.index].kind != ColumnKind::PartitionKey)
            {
                return Err(CqlError::invalid(
                    "SELECT DISTINCT with WHERE clause only supports restriction by partition key and/or static columns.",
                ));
            }
        }

        // ORDER BY: the clustering columns in order, all natural or all reversed.
        let mut reversed = false;
        if !s.order_by.is_empty() {
            if !pk_full {
                return Err(CqlError::invalid(
                    "ORDER BY is only supported when the partition key is restricted by an EQ or an IN.",
                ));
            }
            for (i, (name, desc)) in s.order_by.iter().enumerate() {
                let (index, column) = def
                    .column(name)
                    .ok_or_else(|| CqlError::invalid(format!("Undefined column name {name}")))?;
                if column.kind != ColumnKind::Clustering {
                    return Err(CqlError::invalid(format!(
                        "Order by is currently only supported on the clustered columns of the PRIMARY KEY, got {name}"
                    )));
                }
                if index != def.partition_key_len + i {
                    return Err(CqlError::invalid(
                        "Order by currently only supports the ordering of columns following their declared order in the PRIMARY KEY",
                    ));
                }
                let this_reversed = *desc != column.desc;
                if i > 0 && this_reversed != reversed {
                    return Err(CqlError::invalid("Unsupported order by relation"));
                }
                reversed = this_reversed;
            }
        }

        let keys: Option<Vec<(i64, Bytes)>> = if pk_full {
            let components: Vec<Vec<Bytes>> = pk_values.into_iter().flatten().collect();
            let mut positions = cartesian(&components)
                .iter()
                .map(|k| partition_position(k))
                .collect::<Result<Vec<_>, _>>()?;
            positions.sort();
            positions.dedup();
            Some(positions)
        } else {
            None
        };
        let post_sort = !s.order_by.is_empty() && keys.as_ref().is_some_and(|k| k.len() > 1);
        let page_size = exec.page_size.filter(|n| *n > 0 && !aggregate);
        if post_sort && page_size.is_some() {
            return Err(CqlError::invalid(
                "Cannot page queries with both ORDER BY and a IN restriction on the partition key; you must either remove the ORDER BY or the IN and sort client side, or disable paging for this query",
            ));
        }
        let state = exec.paging_state.map(PagingState::decode).transpose()?;

        let now = now_secs();
        let mut emitted = state.as_ref().map_or(0, |s| s.emitted);
        let mut rows_out: Vec<Vec<Option<Bytes>>> = Vec::new();
        let mut count: i64 = 0;
        let mut first_row: Option<Vec<Option<Bytes>>> = None;
        let mut last: Option<PagingState> = None;
        let mut has_more = false;

        let project = |values: &RowValues| -> Vec<Option<Bytes>> {
            out.iter()
                .map(|o| match o.kind {
                    OutKind::Column(i) => values.0[i].clone(),
                    OutKind::WriteTime(i) => {
                        values.1[i].map(|t| Bytes::copy_from_slice(&t.to_be_bytes()))
                    }
                    OutKind::Ttl(i) => {
                        values.2[i].map(|t| Bytes::copy_from_slice(&t.to_be_bytes()))
                    }
                    OutKind::Count => None,
                })
                .collect()
        };

        // Feeds one partition's candidates (in output order); false stops the scan.
        let mut feed = |position: &(i64, Bytes), candidates: Vec<Candidate>| -> bool {
            let mut in_partition = match &state {
                Some(st) if st.position == *position => st.emitted_in_partition,
                _ => 0,
            };
            for c in candidates {
                if let Some(st) = &state {
                    let skip = match c.position.cmp(&st.position) {
                        Ordering::Less => true,
                        Ordering::Greater => false,
                        Ordering::Equal => {
                            let o = c.sort_key.cmp(&st.sort_key);
                            if reversed {
                                o != Ordering::Less
                            } else {
                                o != Ordering::Greater
                            }
                        }
                    };
                    if skip {
                        continue;
                    }
                }
                if !restrictions
                    .iter()
                    .all(|r| r.matches(&def, c.values.0[r.index].as_ref()))
                {
                    continue;
                }
                if per_partition_limit.is_some_and(|l| in_partition >= l) {
                    return true;
                }
                if aggregate {
                    if first_row.is_none() {
                        first_row = Some(project(&c.values));
                    }
                    count += 1;
                    in_partition += 1;
                    if s.distinct {
                        return true;
                    }
                    continue;
                }
                if limit.is_some_and(|l| emitted >= l) {
                    return false;
                }
                if page_size.is_some_and(|p| rows_out.len() >= p as usize) {
                    has_more = true;
                    return false;
                }
                rows_out.push(project(&c.values));
                emitted += 1;
                in_partition += 1;
                last = Some(PagingState {
                    position: c.position.clone(),
                    sort_key: c.sort_key.clone(),
                    emitted,
                    emitted_in_partition: in_partition,
                });
                if s.distinct {
                    return true;
                }
            }
            true
        };

        match table {
            TableRef::User(t) => {
                let data = t.data.read().unwrap_or_else(|e| e.into_inner());
                let materialize = |position: &(i64, Bytes), p: &Partition| -> Vec<Candidate> {
                    let rows: Box<dyn Iterator<Item = (&Vec<u8>, &Row)>> = if reversed {
                        Box::new(p.rows.iter().rev())
                    } else {
                        Box::new(p.rows.iter())
                    };
                    rows.filter(|(_, r)| r.is_live(now))
                        .map(|(k, r)| Candidate {
                            position: position.clone(),
                            sort_key: k.clone(),
                            values: row_values(&def, p, r, now),
                        })
                        .collect()
                };
                match &keys {
                    Some(keys) if post_sort => {
                        let mut all = Vec::new();
                        for pos in keys {
                            if let Some(p) = data.partitions.get(pos) {
                                let mut c = materialize(pos, p);
                                if let Some(l) = per_partition_limit {
                                    c.truncate(l as usize);
                                }
                                all.extend(c);
                            }
                        }
                        all.sort_by(|a, b| {
                            let o = a.sort_key.cmp(&b.sort_key);
                            if reversed {
                                o.reverse()
                            } else {
                                o
                            }
                        });
                        for c in all {
                            let position = c.position.clone();
                            if !feed(&position, vec![c]) {
                                break;
                            }
                        }
                    }
                    Some(keys) => {
                        for pos in keys {
                            if let Some(p) = data.partitions.get(pos) {
                                if state.as_ref().is_some_and(|st| *pos < st.position) {
                                    continue;
                                }
                                if !feed(pos, materialize(pos, p)) {
                                    break;
                                }
                            }
                        }
                    }
                    None => {
                        let start = state.as_ref().map_or(std::ops::Bound::Unbounded, |st| {
                            std::ops::Bound::Included(st.position.clone())
                        });
                        for (pos, p) in data.partitions.range((start, std::ops::Bound::Unbounded)) {
                            if !feed(pos, materialize(pos, p)) {
                                break;
                            }
                        }
                    }
                }
            }
            TableRef::System(_) => {
                let schema = self.read_schema();
                let mut candidates = system::rows(&def, &schema, ctx.local_addr, self.host_id);
                candidates.retain(|c| keys.as_ref().is_none_or(|k| k.contains(&c.position)));
                if reversed {
                    candidates.reverse();
                }
                let mut group: Vec<Candidate> = Vec::new();
                let mut stopped = false;
                for c in candidates {
                    if group.first().is_some_and(|g| g.position != c.position) {
                        let position = group[0].position.clone();
                        if !feed(&position, std::mem::take(&mut group)) {
                            stopped = true;
                            break;
                        }
                    }
                    group.push(c);
                }
                if !stopped && !group.is_empty() {
                    let position = group[0].position.clone();
                    feed(&position, group);
                }
            }
        }

        if aggregate {
            let mut row = first_row.unwrap_or_else(|| vec![None; out.len()]);
            for (value, o) in row.iter_mut().zip(&out) {
                if matches!(o.kind, OutKind::Count) {
                    *value = Some(Bytes::copy_from_slice(&count.to_be_bytes()));
                }
            }
            rows_out = vec![row];
        }
        Ok(Rows {
            columns: out.into_iter().map(|o| o.spec).collect(),
            rows: rows_out,
            paging_state: if has_more {
                last.map(|l| l.encode())
            } else {
                None
            },
            force_metadata: false,
        })
    }
}
