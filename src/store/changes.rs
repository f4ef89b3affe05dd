//! Reading the change log with a transaction watermark, and the consumers' cursors.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, Row};

use super::StoreError;
use crate::model::{BeforeImage, UserRecord};

const SNAPSHOT_XMIN: &str = include_str!("sql/query/snapshot_xmin.sql");
const POLL_CHANGES: &str = include_str!("sql/query/poll_changes.sql");
const PRUNE_CHANGES: &str = include_str!("sql/query/prune_changes.sql");
const BACKLOG: &str = include_str!("sql/query/backlog.sql");

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
    /// A snapshot's image of the current row (`userstream snapshot`): an upsert downstream.
    Snapshot,
}

impl Op {
    /// The one-letter code of the log and of the Kafka `op` header: `c`, `u`, `d` or `r`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "c",
            Self::Update => "u",
            Self::Delete => "d",
            Self::Snapshot => "r",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        match code {
            "c" => Some(Self::Create),
            "u" => Some(Self::Update),
            "d" => Some(Self::Delete),
            "r" => Some(Self::Snapshot),
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
    /// What the change replaced; `None` for a create (and a change logged before migration 010).
    pub before: Option<BeforeImage>,
}

impl Change {
    pub fn key(&self) -> ChangeKey {
        ChangeKey {
            xid: self.xid,
            seq: self.seq,
        }
    }
}

/// A change that cannot be carried downstream, as the log holds it, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableChange {
    pub xid: u64,
    pub seq: i64,
    pub op: String,
    pub user_id: String,
    pub after: Option<Value>,
    pub reason: String,
}

/// The result of one [`poll_changes`].
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    /// The changes after the position polled from, in (xid, seq) order.
    pub changes: Vec<Change>,
    /// The changes among them that could not be read (see [`quarantine`]); the position passes
    /// them too.
    pub unreadable: Vec<UnreadableChange>,
    /// The position to [`commit_position`] once every one of `changes` is acknowledged (it is
    /// also the position to poll from next).
    pub next: Position,
    /// Committed changes wait behind a transaction that is still open (their xids are at or
    /// above the snapshot's xmin): a later poll will find them once it ends.
    pub held_back: bool,
}

/// The stored position of `consumer`. A consumer without one is registered at the very start,
/// so it begins with the oldest change still in the log.
///
/// From registration on, [`prune`] keeps every change the consumer has not passed.
///
/// A cursor stored by another PostgreSQL cluster ([`StoreError::ForeignCursor`]) or ahead of
/// every transaction of this one ([`StoreError::CursorAhead`]) is refused: polling from it could
/// skip every change.
pub async fn load_position(client: &Client, consumer: &str) -> Result<Position, StoreError> {
    client
        .execute(
            "INSERT INTO cdc_cursors (consumer, watermark, system_identifier) \
             SELECT $1, '0', system_identifier FROM pg_control_system() \
             ON CONFLICT (consumer) DO UPDATE \
                 SET system_identifier = EXCLUDED.system_identifier \
                 WHERE cdc_cursors.system_identifier IS NULL",
            &[&consumer],
        )
        .await
        .map_err(StoreError::postgres("register a CDC consumer"))?;
    let row = client
        .query_one(
            "SELECT k.watermark::text, k.last_xid::text, k.last_seq, k.system_identifier, \
                    s.system_identifier, pg_snapshot_xmax(pg_current_snapshot())::text \
             FROM cdc_cursors k, pg_control_system() s WHERE k.consumer = $1",
            &[&consumer],
        )
        .await
        .map_err(StoreError::postgres("read a CDC cursor"))?;
    let read = StoreError::postgres("read a CDC cursor");
    let watermark: String = row.try_get(0).map_err(&read)?;
    let last_xid: Option<String> = row.try_get(1).map_err(&read)?;
    let last_seq: Option<i64> = row.try_get(2).map_err(&read)?;
    let stored_cluster: i64 = row.try_get(3).map_err(&read)?;
    let current_cluster: i64 = row.try_get(4).map_err(&read)?;
    let next: String = row.try_get(5).map_err(read)?;
    if stored_cluster != current_cluster {
        return Err(StoreError::ForeignCursor {
            consumer: consumer.to_owned(),
            stored: stored_cluster,
            current: current_cluster,
        });
    }
    let (watermark, next) = (parse_xid(&watermark)?, parse_xid(&next)?);
    if watermark > next {
        return Err(StoreError::CursorAhead {
            consumer: consumer.to_owned(),
            watermark,
            next,
        });
    }
    let last = match (last_xid, last_seq) {
        (Some(xid), Some(seq)) => Some(ChangeKey {
            xid: parse_xid(&xid)?,
            seq,
        }),
        _ => None,
    };
    Ok(Position { watermark, last })
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
    // The same snapshot tells whether committed changes already wait at or above its xmin.
    let (xmin, held_back): (String, bool) = client
        .query_one(SNAPSHOT_XMIN, &[])
        .await
        .and_then(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
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
    let mut changes = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    let mut newest = None;
    for row in &rows {
        let raw = raw_change(row)?;
        newest = Some(ChangeKey {
            xid: raw.xid,
            seq: raw.seq,
        });
        match change(&raw) {
            Ok(change) => changes.push(change),
            Err(error) => unreadable.push(UnreadableChange {
                reason: crate::error::chain(&error),
                xid: raw.xid,
                seq: raw.seq,
                op: raw.op,
                user_id: raw.user_id,
                after: raw
                    .after
                    .and_then(|image| serde_json::from_slice(image.0).ok()),
            }),
        }
    }

    let next = match newest {
        // A full batch may have stopped inside a transaction: the rest of it comes after `last`.
        Some(newest) if rows.len() >= limit as usize => Position {
            watermark: from.watermark.max(newest.xid),
            last: Some(newest),
        },
        // Everything final was read: the watermark moves up to the snapshot.
        newest => Position {
            watermark: from.watermark.max(xmin),
            last: newest.or(from.last),
        },
    };
    Ok(Poll {
        changes,
        unreadable,
        next,
        held_back,
    })
}

/// How far behind a consumer at `position` is, in time (see `sql/query/backlog.sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// The source time of the oldest change the consumer has not produced; `None` when it has
    /// produced every change in the log.
    pub oldest_unproduced: Option<DateTime<Utc>>,
    /// When the oldest open transaction that holds the cluster's xmin back started (any
    /// session's, not only a writer of users: it keeps the poller from passing newer xids).
    pub oldest_open_transaction: Option<DateTime<Utc>>,
}

/// The consumer's [`Backlog`] at `position`.
pub async fn backlog(client: &Client, position: &Position) -> Result<Backlog, StoreError> {
    let last = position.last.unwrap_or(ChangeKey { xid: 0, seq: 0 });
    let row = client
        .query_one(
            BACKLOG,
            &[
                &position.watermark.to_string(),
                &last.xid.to_string(),
                &last.seq,
            ],
        )
        .await
        .map_err(StoreError::postgres("measure the CDC backlog"))?;
    let read = StoreError::postgres("measure the CDC backlog");
    Ok(Backlog {
        oldest_unproduced: row.try_get(0).map_err(&read)?,
        oldest_open_transaction: row.try_get(1).map_err(read)?,
    })
}

/// Records a change that `consumer` cannot carry downstream in `cdc_quarantine`, so that it can
/// pass it without losing track of it.
pub async fn quarantine(
    client: &Client,
    consumer: &str,
    change: &UnreadableChange,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO cdc_quarantine (consumer, xid, seq, op, user_id, after, reason) \
             VALUES ($1, $2::text::xid8, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[
                &consumer,
                &change.xid.to_string(),
                &change.seq,
                &change.op,
                &change.user_id,
                &change.after,
                &change.reason,
            ],
        )
        .await
        .map_err(StoreError::postgres("quarantine a change"))?;
    Ok(())
}

/// Tries to make this connection's session the one poller of `consumer`'s cursor: a session
/// advisory lock, held until the connection closes, so a poller that dies (or loses its
/// connection) hands the cursor on by itself. `false` while another session holds it.
pub async fn try_lead_cursor(client: &Client, consumer: &str) -> Result<bool, StoreError> {
    client
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended('userstream cdc cursor ' || $1, 0))",
            &[&consumer],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(StoreError::postgres("lock a CDC cursor"))
}

/// Stores `position` as where `consumer` is. Call it only once every change before it has been
/// acknowledged downstream: changes after it are read again after a restart, none before it.
///
/// The cursor never moves back: a position behind the stored one (from a poller that lost its
/// lead while a round was in flight) is not stored.
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
                 updated_at = now() \
             WHERE EXCLUDED.watermark >= cdc_cursors.watermark \
               AND (coalesce(EXCLUDED.last_xid, '0'), coalesce(EXCLUDED.last_seq, 0)) \
                   >= (coalesce(cdc_cursors.last_xid, '0'), coalesce(cdc_cursors.last_seq, 0))",
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

/// A change log row as PostgreSQL returns it, before its image is read.
struct RawChange<'a> {
    xid: u64,
    seq: i64,
    op: String,
    user_id: String,
    source_ts: DateTime<Utc>,
    after: Option<JsonbText<'a>>,
    before: Option<Value>,
}

/// A `jsonb` value as the JSON text PostgreSQL sends, so that a change image is read straight
/// into a `UserRecord` (building a `serde_json::Value` first costs as much as the rest of the
/// read).
struct JsonbText<'a>(&'a [u8]);

impl<'a> FromSql<'a> for JsonbText<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        // The binary format is a version byte, 1 so far, then the text.
        match raw.split_first() {
            Some((1, text)) => Ok(Self(text)),
            _ => Err("unsupported jsonb format version".into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }
}

fn raw_change(row: &Row) -> Result<RawChange<'_>, StoreError> {
    let read = StoreError::postgres("read a change");
    let xid: String = row.try_get("xid").map_err(&read)?;
    Ok(RawChange {
        xid: parse_xid(&xid)?,
        seq: row.try_get("seq").map_err(&read)?,
        op: row.try_get("op").map_err(&read)?,
        user_id: row.try_get("user_id").map_err(&read)?,
        source_ts: row.try_get("source_ts").map_err(&read)?,
        after: row.try_get("after").map_err(&read)?,
        before: row.try_get("before").map_err(read)?,
    })
}

fn change(raw: &RawChange) -> Result<Change, StoreError> {
    let RawChange {
        xid,
        seq,
        ref op,
        ref user_id,
        source_ts,
        ref after,
        ref before,
    } = *raw;
    let op = Op::parse(op).ok_or_else(|| StoreError::MalformedChange {
        reason: format!("change ({xid}, {seq}) has unknown op {op:?}"),
    })?;
    let after = match (op, after) {
        (Op::Delete, None) => None,
        (Op::Create | Op::Update | Op::Snapshot, Some(image)) => {
            let mut json = serde_json::Deserializer::from_slice(image.0);
            let user =
                serde_path_to_error::deserialize::<_, UserRecord>(&mut json).map_err(|error| {
                    StoreError::ChangeImage {
                        xid,
                        seq,
                        field: error.path().to_string(),
                        source: error.into_inner(),
                    }
                })?;
            json.end().map_err(|source| StoreError::ChangeImage {
                xid,
                seq,
                field: ".".to_owned(),
                source,
            })?;
            Some(user)
        }
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
    let before = before
        .as_ref()
        .map(|image| {
            serde_path_to_error::deserialize::<_, BeforeImage>(image).map_err(|error| {
                StoreError::ChangeImage {
                    xid,
                    seq,
                    field: format!("before.{}", error.path()),
                    source: error.into_inner(),
                }
            })
        })
        .transpose()?;
    Ok(Change {
        xid,
        seq,
        op,
        user_id: user_id.clone(),
        source_ts_us: source_ts.timestamp_micros(),
        after,
        before,
    })
}

fn parse_xid(text: &str) -> Result<u64, StoreError> {
    text.parse().map_err(|_| StoreError::MalformedChange {
        reason: format!("{text:?} is not a transaction id"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_reads_back_from_its_code_and_a_snapshot_image_is_an_upsert() {
        for op in [Op::Create, Op::Update, Op::Delete, Op::Snapshot] {
            assert_eq!(Op::parse(op.as_str()), Some(op));
        }
        assert_eq!(Op::parse("x"), None);
        let raw = |op: &str, after: Option<JsonbText<'static>>| RawChange {
            xid: 7,
            seq: 1,
            op: op.to_owned(),
            user_id: "u-1".to_owned(),
            source_ts: DateTime::UNIX_EPOCH,
            after,
            before: None,
        };
        let image = JsonbText(br#"{"id": "u-1", "first_name": "Ada"}"#);
        let read = change(&raw("r", Some(image))).expect("an r change with its image");
        assert_eq!(read.op, Op::Snapshot);
        assert_eq!(
            read.after.and_then(|user| user.first_name).as_deref(),
            Some("Ada")
        );
        assert!(
            change(&raw("r", None)).is_err(),
            "an r change needs an image"
        );
    }
}
