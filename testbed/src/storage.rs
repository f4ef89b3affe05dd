//! In-memory storage with Cassandra's reconciliation rules.
//!
//! Every cell carries its write timestamp; a write is merged with what is stored using
//! Cassandra's rules (higher timestamp wins; on a tie a tombstone wins, then the greater value,
//! then the longer-lived cell). Deletions (partition, range, row, collection) are kept as
//! timestamps, and anything they shadow is dropped when either side is written, so what is
//! stored is always the reconciled state and reads only have to check TTL expiry.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use bytes::Bytes;

use crate::types::CqlType;

/// Marks "no deletion" (every real timestamp is greater).
pub const NO_DELETION: i64 = i64::MIN;

/// Seconds since the epoch of a timestamp-free "now" for TTL purposes.
pub type NowSecs = i64;

#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub ts: i64,
    /// `None` for a tombstone.
    pub value: Option<Bytes>,
    /// When the cell stops being live (epoch seconds): `i64::MAX` for a live cell without TTL,
    /// write time plus TTL for an expiring cell, deletion time for a tombstone.
    pub local_deletion_time: i64,
    /// The TTL the cell was written with (0: none).
    pub ttl: i32,
}

impl Cell {
    pub fn live(ts: i64, value: Bytes, ttl: i32, now: NowSecs) -> Self {
        Cell {
            ts,
            value: Some(value),
            local_deletion_time: if ttl > 0 {
                now + i64::from(ttl)
            } else {
                i64::MAX
            },
            ttl,
        }
    }

    pub fn tombstone(ts: i64, now: NowSecs) -> Self {
        Cell {
            ts,
            value: None,
            local_deletion_time: now,
            ttl: 0,
        }
    }

    pub fn is_live(&self, now: NowSecs) -> bool {
        self.value.is_some() && now < self.local_deletion_time
    }

    /// Remaining TTL in seconds of a live expiring cell.
    pub fn remaining_ttl(&self, now: NowSecs) -> Option<i32> {
        (self.ttl > 0 && self.is_live(now)).then(|| (self.local_deletion_time - now) as i32)
    }

    /// Whether `self`, written over `stored`, replaces it: Cassandra's `Cells.resolveRegular`,
    /// which since CASSANDRA-14592 does not depend on the clock: on equal timestamps a cell
    /// that is or will become a tombstone (tombstone or TTL) beats a plain live one, a
    /// tombstone beats an expiring cell, the later expiry wins, and finally the greater value.
    pub fn wins_over(&self, stored: &Cell) -> bool {
        if self.ts != stored.ts {
            return self.ts > stored.ts;
        }
        let mortal = self.value.is_none() || self.ttl > 0;
        let stored_mortal = stored.value.is_none() || stored.ttl > 0;
        if mortal || stored_mortal {
            if mortal != stored_mortal {
                return mortal;
            }
            let (tombstone, stored_tombstone) = (self.value.is_none(), stored.value.is_none());
            if tombstone != stored_tombstone {
                return tombstone;
            }
            if self.local_deletion_time != stored.local_deletion_time {
                return self.local_deletion_time > stored.local_deletion_time;
            }
        }
        let empty = Bytes::new();
        self.value.as_ref().unwrap_or(&empty) > stored.value.as_ref().unwrap_or(&empty)
    }
}

/// The row marker (primary key liveness) written by INSERT.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Liveness {
    pub ts: i64,
    pub ttl: i32,
    /// Expiry in epoch seconds; `i64::MAX` without TTL.
    pub expires: i64,
}

impl Liveness {
    pub fn new(ts: i64, ttl: i32, now: NowSecs) -> Self {
        Liveness {
            ts,
            ttl,
            expires: if ttl > 0 {
                now + i64::from(ttl)
            } else {
                i64::MAX
            },
        }
    }

    pub fn is_live(&self, now: NowSecs) -> bool {
        now < self.expires
    }

    /// Cassandra's `LivenessInfo.supersedes`.
    fn supersedes(&self, other: &Liveness) -> bool {
        if self.ts != other.ts {
            return self.ts > other.ts;
        }
        let (expiring, other_expiring) = (self.ttl > 0, other.ttl > 0);
        if expiring == other_expiring {
            return self.expires > other.expires;
        }
        expiring
    }
}

/// A non-frozen collection: a collection tombstone plus one cell per element, keyed by the
/// element's order (set element, map key, or list position).
#[derive(Debug, Clone)]
pub struct Complex {
    pub deletion: i64,
    /// Sort key -> (element key bytes, cell). For sets the cell value is empty; for maps it is
    /// the entry's value; for lists the key is a position id and the cell holds the element.
    pub elements: BTreeMap<Vec<u8>, (Bytes, Cell)>,
}

impl Default for Complex {
    fn default() -> Self {
        Complex {
            deletion: NO_DELETION,
            elements: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub clustering: Vec<Bytes>,
    pub marker: Option<Liveness>,
    pub deletion: i64,
    /// Simple columns (including frozen collections) by column id.
    pub cells: BTreeMap<u32, Cell>,
    /// Non-frozen collections by column id.
    pub collections: BTreeMap<u32, Complex>,
}

impl Row {
    fn new(clustering: Vec<Bytes>) -> Self {
        Row {
            clustering,
            marker: None,
            deletion: NO_DELETION,
            cells: BTreeMap::new(),
            collections: BTreeMap::new(),
        }
    }

    /// A row is visible if its marker or any cell is live.
    pub fn is_live(&self, now: NowSecs) -> bool {
        self.marker.is_some_and(|m| m.is_live(now))
            || self.cells.values().any(|cell| cell.is_live(now))
            || self
                .collections
                .values()
                .any(|c| c.elements.values().any(|(_, cell)| cell.is_live(now)))
    }

    /// Drops everything at or below `deletion`.
    fn purge(&mut self, deletion: i64) {
        if self.marker.is_some_and(|m| m.ts <= deletion) {
            self.marker = None;
        }
        self.cells.retain(|_, cell| cell.ts > deletion);
        self.collections.retain(|_, complex| {
            complex.elements.retain(|_, (_, cell)| cell.ts > deletion);
            !complex.elements.is_empty() || complex.deletion > deletion
        });
    }

    fn is_empty(&self) -> bool {
        self.marker.is_none()
            && self.deletion == NO_DELETION
            && self.cells.is_empty()
            && self.collections.is_empty()
    }
}

/// One clustering column's bound in a range deletion.
#[derive(Debug, Clone)]
pub struct SliceBound {
    pub value: Bytes,
    pub inclusive: bool,
}

/// A deletion of every row whose clustering starts with `prefix` (sort-key bytes) and, if
/// `slice` is set, whose next clustering value lies within the bounds.
#[derive(Debug, Clone)]
pub struct RangeTombstone {
    pub prefix: Vec<u8>,
    /// Index of the sliced clustering column, its type, and the lower and upper bounds.
    pub slice: Option<(usize, CqlType, Option<SliceBound>, Option<SliceBound>)>,
    pub ts: i64,
}

impl RangeTombstone {
    fn covers(&self, sort_key: &[u8], clustering: &[Bytes]) -> bool {
        if !sort_key.starts_with(&self.prefix) {
            return false;
        }
        let Some((index, ty, lower, upper)) = &self.slice else {
            return true;
        };
        let Some(v) = clustering.get(*index) else {
            return false;
        };
        let above = lower
            .as_ref()
            .is_none_or(|b| match ty.compare(v, &b.value) {
                Ordering::Greater => true,
                Ordering::Equal => b.inclusive,
                Ordering::Less => false,
            });
        let below = upper
            .as_ref()
            .is_none_or(|b| match ty.compare(v, &b.value) {
                Ordering::Less => true,
                Ordering::Equal => b.inclusive,
                Ordering::Greater => false,
            });
        above && below
    }
}

#[derive(Debug, Clone)]
pub struct Partition {
    pub key: Vec<Bytes>,
    pub deletion: i64,
    pub range_tombstones: Vec<RangeTombstone>,
    pub rows: BTreeMap<Vec<u8>, Row>,
}

/// Partitions keyed by (token, serialized partition key): token order, as Cassandra scans.
#[derive(Debug, Default)]
pub struct TableData {
    pub partitions: BTreeMap<(i64, Bytes), Partition>,
}

impl TableData {
    pub fn partition_mut(&mut self, position: (i64, Bytes), key: &[Bytes]) -> &mut Partition {
        self.partitions
            .entry(position)
            .or_insert_with(|| Partition {
                key: key.to_vec(),
                deletion: NO_DELETION,
                range_tombstones: Vec::new(),
                rows: BTreeMap::new(),
            })
    }
}

impl Partition {
    /// The highest deletion covering the row at `sort_key`.
    fn shadow(&self, sort_key: &[u8], clustering: &[Bytes]) -> i64 {
        let mut shadow = self.deletion;
        for rt in &self.range_tombstones {
            if rt.ts > shadow && rt.covers(sort_key, clustering) {
                shadow = rt.ts;
            }
        }
        if let Some(row) = self.rows.get(sort_key) {
            shadow = shadow.max(row.deletion);
        }
        shadow
    }

    pub fn delete(&mut self, ts: i64) {
        if ts <= self.deletion {
            return;
        }
        self.deletion = ts;
        self.rows.retain(|_, row| {
            row.purge(ts);
            if row.deletion <= ts {
                row.deletion = NO_DELETION;
            }
            !row.is_empty()
        });
    }

    pub fn delete_range(&mut self, rt: RangeTombstone) {
        if rt.ts <= self.deletion {
            return;
        }
        self.rows.retain(|key, row| {
            if rt.covers(key, &row.clustering) {
                row.purge(rt.ts);
            }
            !row.is_empty()
        });
        self.range_tombstones.push(rt);
    }

    /// Applies `write` to the row at `sort_key` (created if needed) given the deletion time
    /// shadowing it; empty rows are not kept.
    fn with_row(
        &mut self,
        sort_key: &[u8],
        clustering: &[Bytes],
        write: impl FnOnce(&mut Row, i64),
    ) {
        let shadow = self.shadow(sort_key, clustering);
        let row = self
            .rows
            .entry(sort_key.to_vec())
            .or_insert_with(|| Row::new(clustering.to_vec()));
        write(row, shadow);
        if row.is_empty() {
            self.rows.remove(sort_key);
        }
    }

    pub fn delete_row(&mut self, sort_key: &[u8], clustering: &[Bytes], ts: i64) {
        self.with_row(sort_key, clustering, |row, shadow| {
            if ts > shadow {
                row.deletion = ts;
                row.purge(ts);
            }
        });
    }

    pub fn write_marker(&mut self, sort_key: &[u8], clustering: &[Bytes], marker: Liveness) {
        self.with_row(sort_key, clustering, |row, shadow| {
            if marker.ts <= shadow {
                return;
            }
            if row.marker.is_none_or(|m| marker.supersedes(&m)) {
                row.marker = Some(marker);
            }
        });
    }

    pub fn write_cell(&mut self, sort_key: &[u8], clustering: &[Bytes], column: u32, cell: Cell) {
        self.with_row(sort_key, clustering, |row, shadow| {
            if cell.ts <= shadow {
                return;
            }
            match row.cells.get_mut(&column) {
                Some(stored) => {
                    if cell.wins_over(stored) {
                        *stored = cell;
                    }
                }
                None => {
                    row.cells.insert(column, cell);
                }
            }
        });
    }

    pub fn delete_collection(
        &mut self,
        sort_key: &[u8],
        clustering: &[Bytes],
        column: u32,
        ts: i64,
    ) {
        self.with_row(sort_key, clustering, |row, shadow| {
            if ts <= shadow {
                return;
            }
            let complex = row.collections.entry(column).or_default();
            if ts > complex.deletion {
                complex.deletion = ts;
                complex.elements.retain(|_, (_, cell)| cell.ts > ts);
            }
        });
    }

    #[allow(clippy::too_many_arguments)]
    pub fn write_element(
        &mut self,
        sort_key: &[u8],
        clustering: &[Bytes],
        column: u32,
        element_order: Vec<u8>,
        element_key: Bytes,
        cell: Cell,
    ) {
        self.with_row(sort_key, clustering, |row, shadow| {
            let complex = row.collections.entry(column).or_default();
            if cell.ts <= shadow || cell.ts <= complex.deletion {
                return;
            }
            match complex.elements.get_mut(&element_order) {
                Some((_, stored)) if !cell.wins_over(stored) => {}
                _ => {
                    complex.elements.insert(element_order, (element_key, cell));
                }
            }
        });
    }

    /// The live elements of a non-frozen collection: (element key, value).
    pub fn live_elements(
        &self,
        sort_key: &[u8],
        column: u32,
        now: NowSecs,
    ) -> Vec<(Vec<u8>, Bytes, Bytes)> {
        match self
            .rows
            .get(sort_key)
            .and_then(|r| r.collections.get(&column))
        {
            Some(c) => c
                .elements
                .iter()
                .filter(|(_, (_, cell))| cell.is_live(now))
                .map(|(order, (key, cell))| {
                    (
                        order.clone(),
                        key.clone(),
                        cell.value.clone().unwrap_or_default(),
                    )
                })
                .collect(),
            None => Vec::new(),
        }
    }
}
