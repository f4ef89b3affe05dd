//! Reading the change log with a transaction watermark, and the consumers' cursors.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::{Client, Row};

use super::StoreError;
use crate::model::UserRecord;

const POLL_CHANGES: &str = include_str!("sql/query/poll_changes.sql");
const PRUNE_CHANGES: &str = include_str!("sql/query/prune_changes.sql");

/// Where one change sits in the log: its transaction, then its place within it. Changes are
/// emitted in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeKey {
    /// The writing transaction's id (`xid8`: epoch and xid, never wraps).
    pub xid: u64,
    /// The change's place within its transaction (a sequence shared by all transactions).
    pub seq: i64,
}

/// How far a consumer has read: everything below the watermark, and everything up to and
/// including `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Every transaction with a smaller id had ended when the consumer read up to here, so none
    /// of them can add a change it has not seen.
    pub watermark: u64,
    /// The last change emitted. It matters when a batch ended inside one transaction: the rest
    /// of that transaction is still to come, after this key.
    pub last: Option<ChangeKey>,
}

/// What happened to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    /// The one-letter code of the log and of the Kafka `op` header: `c`, `u` or `d`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "c",
            Self::Update => "u",
            Self::Delete => "d",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        match code {
            "c" => Some(Self::Create),
            "u" => Some(Self::Update),
            "d" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// One committed change of one user.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub xid: u64,
    pub seq: i64,
    pub op: Op,
    pub user_id: String,
    /// When the change was made (wall clock at the write, µs since the Unix epoch). Versions of
    /// one user are ordered by it, which is why Cassandra writes use it as their timestamp.
    pub source_ts_us: i64,
    /// The user after the change; `None` for a delete.
    pub after: Option<UserRecord>,
}

impl Change {
    pub fn key(&self) -> ChangeKey {
        ChangeKey {
            xid: self.xid,
            seq: self.seq,
        }
    }
}

/// The result of one [`poll_changes`].
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    /// The changes after the position polled from, in (xid, seq) order.
    pub changes: Vec<Change>,
    /// The position to [`commit_position`] once every one of `changes` is acknowledged (it is
    /// also the position to poll from next).
    pub next: Position,
}

/// The stored position of `consumer`. A consumer without one is registered at the very start,
/// so it begins with the oldest change still in the log.
///
/// From registration on, [`prune`] keeps every change the consumer has not passed.
pub async fn load_position(client: &Client, consumer: &str) -> Result<Position, StoreError> {
    client
        .execute(
            "INSERT INTO cdc_cursors (consumer, watermark) VALUES ($1, '0') \
             ON CONFLICT (consumer) DO NOTHING",
            &[&consumer],
        )
        .await
        .map_err(StoreError::postgres("register a CDC consumer"))?;
    let row = client
        .query_one(
            "SELECT watermark::text, last_xid::text, last_seq FROM cdc_cursors \
             WHERE consumer = $1",
            &[&consumer],
        )
        .await
        .map_err(StoreError::postgres("read a CDC cursor"))?;
    let read = StoreError::postgres("read a CDC cursor");
    let watermark: String = row.try_get(0).map_err(&read)?;
    let last_xid: Option<String> = row.try_get(1).map_err(&read)?;
    let last_seq: Option<i64> = row.try_get(2).map_err(read)?;
    let last = match (last_xid, last_seq) {
        (Some(xid), Some(seq)) => Some(ChangeKey {
            xid: parse_xid(&xid)?,
            seq,
        }),
        _ => None,
    };
    Ok(Position {
        watermark: parse_xid(&watermark)?,
        last,
    })
}

/// Reads up to `limit` changes after `from` (a `limit` of 0 reads one), from transactions that
/// have ended: committed changes are final, and a transaction still open cannot be overtaken,
/// because everything from its xid on waits for a later poll.
///
/// Every committed change is returned by exactly one of a sequence of polls that each start
/// from the previous one's [`Poll::next`]; none is skipped, whatever order transactions commit
/// in, and a limit may stop inside a transaction.
pub async fn poll_changes(
    client: &Client,
    from: &Position,
    limit: u32,
) -> Result<Poll, StoreError> {
    let limit = limit.max(1);
    // Taken before the changes are read, by a statement of its own: every xid below this xmin
    // had ended before the read's (later) snapshot, so the read sees all the committed changes
    // below it. Reading first and taking xmin after could count a transaction that committed
    // in between as seen.
    let xmin: String = client
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(StoreError::postgres("read the snapshot xmin"))?;
    let xmin = parse_xid(&xmin)?;

    let last = from.last.unwrap_or(ChangeKey { xid: 0, seq: 0 });
    let rows = client
        .query(
            POLL_CHANGES,
            &[
                &from.watermark.to_string(),
                &last.xid.to_string(),
                &last.seq,
                &xmin.to_string(),
                &i64::from(limit),
            ],
        )
        .await
        .map_err(StoreError::postgres("read changes"))?;
    let changes = rows.iter().map(change).collect::<Result<Vec<_>, _>>()?;

    let next = match changes.last() {
        // A full batch may have stopped inside a transaction: the rest of it comes after `last`.
        Some(newest) if changes.len() >= limit as usize => Position {
            watermark: from.watermark.max(newest.xid),
            last: Some(newest.key()),
        },
        // Everything final was read: the watermark moves up to the snapshot.
        newest => Position {
            watermark: from.watermark.max(xmin),
            last: newest.map(Change::key).or(from.last),
        },
    };
    Ok(Poll { changes, next })
}

/// Stores `position` as where `consumer` is. Call it only once every change before it has been
/// acknowledged downstream: changes after it are read again after a restart, none before it.
pub async fn commit_position(
    client: &Client,
    consumer: &str,
    position: &Position,
) -> Result<(), StoreError> {
    let last_xid = position.last.map(|last| last.xid.to_string());
    let last_seq = position.last.map(|last| last.seq);
    client
        .execute(
            "INSERT INTO cdc_cursors (consumer, watermark, last_xid, last_seq) \
             VALUES ($1, $2::text::xid8, $3::text::xid8, $4) \
             ON CONFLICT (consumer) DO UPDATE SET \
                 watermark = EXCLUDED.watermark, \
                 last_xid = EXCLUDED.last_xid, \
                 last_seq = EXCLUDED.last_seq, \
                 updated_at = now()",
            &[
                &consumer,
                &position.watermark.to_string(),
                &last_xid,
                &last_seq,
            ],
        )
        .await
        .map_err(StoreError::postgres("store a CDC cursor"))?;
    Ok(())
}

/// Deletes the changes that every registered consumer (see [`load_position`]) has passed, and
/// returns how many. Nothing is deleted while no consumer is registered.
pub async fn prune(client: &Client) -> Result<u64, StoreError> {
    let pruned = client
        .execute(PRUNE_CHANGES, &[])
        .await
        .map_err(StoreError::postgres("prune the change log"))?;
    tracing::debug!(pruned, "pruned the change log");
    Ok(pruned)
}

fn change(row: &Row) -> Result<Change, StoreError> {
    let read = StoreError::postgres("read a change");
    let xid: String = row.try_get("xid").map_err(&read)?;
    let seq: i64 = row.try_get("seq").map_err(&read)?;
    let op: String = row.try_get("op").map_err(&read)?;
    let user_id: String = row.try_get("user_id").map_err(&read)?;
    let source_ts: DateTime<Utc> = row.try_get("source_ts").map_err(&read)?;
    let after: Option<Value> = row.try_get("after").map_err(read)?;

    let xid = parse_xid(&xid)?;
    let op = Op::parse(&op).ok_or_else(|| StoreError::MalformedChange {
        reason: format!("change ({xid}, {seq}) has unknown op {op:?}"),
    })?;
    let after = match (op, after) {
        (Op::Delete, None) => None,
        (Op::Create | Op::Update, Some(image)) => Some(
            serde_json::from_value(image).map_err(|source| StoreError::ChangeImage {
                xid,
                seq,
                source,
            })?,
        ),
        (op, image) => {
            return Err(StoreError::MalformedChange {
                reason: format!(
                    "change ({xid}, {seq}) is op {:?} {} an after image",
                    op.as_str(),
                    if image.is_some() { "with" } else { "without" }
                ),
            })
        }
    };
    Ok(Change {
        xid,
        seq,
        op,
        user_id,
        source_ts_us: source_ts.timestamp_micros(),
        after,
    })
}

fn parse_xid(text: &str) -> Result<u64, StoreError> {
    text.parse().map_err(|_| StoreError::MalformedChange {
        reason: format!("{text:?} is not a transaction id"),
    })
}
