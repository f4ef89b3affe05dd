//! The PostgreSQL store: migrations, upserts, the trigger-filled change log and its watermark
//! poll, each test on a database of its own.
//!
//! The snapshot xmin is cluster-wide, so another database's open transaction (another test's)
//! may hold a poll back for a while; tests that expect changes therefore poll until they come.

use std::sync::Mutex;

use anyhow::{ensure, Context};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use tokio_postgres::{Client, NoTls};
use userstream::error::Retryable;
use userstream::model::{BeforeImage, UserRecord};
use userstream::store::{
    self, commit_position, delete_user, load_position, poll_changes, upsert_page, Change, Op,
    StoreError, UpsertOutcome,
};

use crate::common::{eventually, TestDatabase, DEFAULT_DEADLINE};

/// Part of every credential in the test records, so a leak is found by one search.
const SECRET_MARK: &str = "s3cr3t";

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// A fresh database with the schema, and a connection to it.
async fn migrated(prefix: &str) -> anyhow::Result<(TestDatabase, Client)> {
    let database = TestDatabase::create(prefix).await?;
    let mut client = connect(&database.url).await?;
    store::migrate(&mut client).await?;
    Ok((database, client))
}

/// A user with every field set (times at µs precision, as PostgreSQL keeps them), and an API
/// record for it whose credentials are all marked with [`SECRET_MARK`].
fn user(id: &str, city: &str) -> (UserRecord, Value) {
    let record = UserRecord {
        id: id.to_owned(),
        gender: Some("female".into()),
        title: Some("Ms".into()),
        first_name: Some("Zoë".into()),
        last_name: Some("O'Brien".into()),
        email: Some(format!("{id}@example.com")),
        username: Some(format!("user-{id}")),
        date_of_birth: Utc.timestamp_micros(-123_456_789_123_456).single(),
        registered_at: Utc.timestamp_micros(1_400_000_000_654_321).single(),
        phone: Some("(272) 790-0888".into()),
        cell: Some("(489) 330-2385".into()),
        street_number: Some("9278".into()),
        street_name: Some("New Road".into()),
        city: Some(city.to_owned()),
        state: Some("Bayern".into()),
        country: Some("Germany".into()),
        postcode: Some("01234".into()),
        latitude: Some(-69.824_612_345_678_91),
        longitude: Some(0.1 + 0.2),
        timezone_offset: Some("+5:30".into()),
        timezone_description: Some("Bombay, Calcutta, Madras, New Delhi".into()),
        national_id_name: Some("SSN".into()),
        national_id_value: Some("405-88-3636".into()),
        picture_large: Some("https://randomuser.me/api/portraits/women/1.jpg".into()),
        picture_medium: Some("https://randomuser.me/api/portraits/med/women/1.jpg".into()),
        picture_thumbnail: Some("https://randomuser.me/api/portraits/thumb/women/1.jpg".into()),
        nat: Some("DE".into()),
        source_api_version: Some("1.4".into()),
        age: Some(44),
        id_source: Some("login_uuid".into()),
    };
    let credential = |kind: &str| format!("{kind}-{SECRET_MARK}-{id}");
    let raw = json!({
        "gender": "female",
        "name": {"title": "Ms", "first": "Zoë", "last": "O'Brien"},
        "location": {"city": city, "postcode": "01234"},
        "email": format!("{id}@example.com"),
        "login": {
            "uuid": id,
            "username": format!("user-{id}"),
            "password": credential("password"),
            "salt": credential("salt"),
            "md5": credential("md5"),
            "sha1": credential("sha1"),
            "sha256": credential("sha256"),
        },
        "nat": "DE",
    });
    (record, raw)
}

/// What a change replacing `record` carries of it.
fn before_image(record: &UserRecord) -> BeforeImage {
    BeforeImage {
        nat: record.nat.clone(),
        country: record.country.clone(),
        national_id_name: record.national_id_name.clone(),
        registered_at: record.registered_at,
    }
}

fn page(ids: &[&str]) -> Vec<(UserRecord, Value)> {
    ids.iter().map(|id| user(id, "Berlin")).collect()
}

async fn change_rows(client: &Client) -> anyhow::Result<i64> {
    Ok(client
        .query_one("SELECT count(*) FROM user_changes", &[])
        .await?
        .get(0))
}

/// Polls as `consumer` in batches of `limit`, committing after each batch, until `expected`
/// changes have come; then checks that one more poll brings nothing and that the changes came
/// in strictly increasing (xid, seq) order, so none came twice.
async fn drain(
    client: &Client,
    consumer: &str,
    limit: u32,
    expected: usize,
) -> anyhow::Result<Vec<Change>> {
    let collected = Mutex::new(Vec::<Change>::new());
    let collected_ref = &collected;
    eventually(
        &format!("{expected} changes for consumer {consumer}"),
        DEFAULT_DEADLINE,
        move || async move {
            let position = load_position(client, consumer).await?;
            let poll = poll_changes(client, &position, limit).await?;
            ensure!(
                poll.changes.len() <= limit as usize,
                "a poll with limit {limit} returned {} changes",
                poll.changes.len()
            );
            commit_position(client, consumer, &poll.next).await?;
            let mut all = collected_ref.lock().expect("no test thread panicked");
            all.extend(poll.changes);
            ensure!(
                all.len() <= expected,
                "expected {expected} changes, got {all:#?}"
            );
            Ok((all.len() == expected).then_some(()))
        },
    )
    .await?;
    let changes = collected.into_inner().expect("no test thread panicked");

    let position = load_position(client, consumer).await?;
    let extra = poll_changes(client, &position, limit).await?;
    ensure!(
        extra.changes.is_empty(),
        "unexpected changes after the {expected} expected: {:#?}",
        extra.changes
    );
    for pair in changes.windows(2) {
        ensure!(
            pair[0].key() < pair[1].key(),
            "changes out of order: {:?} then {:?}",
            pair[0].key(),
            pair[1].key()
        );
    }
    Ok(changes)
}

fn summary(changes: &[Change]) -> Vec<(Op, &str)> {
    changes
        .iter()
        .map(|change| (change.op, change.user_id.as_str()))
        .collect()
}

#[tokio::test]
async fn migrating_again_or_concurrently_is_harmless() -> anyhow::Result<()> {
    let database = TestDatabase::create("store_migrate").await?;
    let mut first = connect(&database.url).await?;
    let mut second = connect(&database.url).await?;

    let (one, two) = tokio::join!(store::migrate(&mut first), store::migrate(&mut second));
    let mut applied = [one?, two?].concat();
    applied.sort_unstable();
    assert_eq!(
        applied,
        store::migration_versions(),
        "each migration applied exactly once"
    );

    upsert_page(&mut first, &page(&["a"])).await?;
    assert_eq!(store::migrate(&mut first).await?, Vec::<i32>::new());
    let recorded: i64 = first
        .query_one("SELECT count(*) FROM store_migrations", &[])
        .await?
        .get(0);
    assert_eq!(recorded, store::migration_count() as i64);
    assert_eq!(change_rows(&first).await?, 1, "re-migrating kept the log");
    Ok(())
}

#[tokio::test]
async fn a_new_page_is_inserted_and_logged_as_creates() -> anyhow::Result<()> {
    let (_database, mut client) = migrated("store_insert").await?;
    let users = page(&["u1", "u2", "u3"]);

    let outcome = upsert_page(&mut client, &users).await?;
    assert_eq!(
        outcome,
        UpsertOutcome {
            inserted: 3,
            updated: 0,
            unchanged: 0
        }
    );

    let changes = drain(&client, "cdc", 100, 3).await?;
    assert_eq!(
        summary(&changes),
        [(Op::Create, "u1"), (Op::Create, "u2"), (Op::Create, "u3")]
    );
    assert!(
        changes.iter().all(|change| change.xid == changes[0].xid),
        "one page, one transaction"
    );
    for (change, (record, _)) in changes.iter().zip(&users) {
        assert_eq!(change.after.as_ref(), Some(record), "image round-trips");
        assert_eq!(change.before, None, "a create replaces nothing");
        let age_us = Utc::now().timestamp_micros() - change.source_ts_us;
        assert!(
            (0..60_000_000).contains(&age_us),
            "source time is the write's: {age_us} µs ago"
        );
    }
    let stored: Value = client
        .query_one("SELECT raw FROM users WHERE id = 'u2'", &[])
        .await?
        .get(0);
    assert_eq!(stored, users[1].1, "raw kept exactly as sent");
    Ok(())
}

#[tokio::test]
async fn the_same_page_again_touches_nothing() -> anyhow::Result<()> {
    let (_database, mut client) = migrated("store_unchanged").await?;
    let users = page(&["u1", "u2"]);
    upsert_page(&mut client, &users).await?;
    let before: Vec<(String, String)> = client
        .query(
            "SELECT id, xmin::text || updated_at::text FROM users ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();

    let outcome = upsert_page(&mut client, &users).await?;
    assert_eq!(
        outcome,
        UpsertOutcome {
            inserted: 0,
            updated: 0,
            unchanged: 2
        }
    );
    assert_eq!(change_rows(&client).await?, 2, "no change logged");
    let after: Vec<(String, String)> = client
        .query(
            "SELECT id, xmin::text || updated_at::text FROM users ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(before, after, "no new row version was written");

    // A no-op UPDATE by hand logs nothing either.
    client
        .execute("UPDATE users SET city = city WHERE id = 'u1'", &[])
        .await?;
    assert_eq!(change_rows(&client).await?, 2);
    Ok(())
}

#[tokio::test]
async fn a_changed_field_logs_one_update_with_the_new_image() -> anyhow::Result<()> {
    let (_database, mut client) = migrated("store_update").await?;
    let mut users = page(&["u1", "u2", "u3"]);
    upsert_page(&mut client, &users).await?;
    drain(&client, "cdc", 100, 3).await?;

    let replaced = users[1].0.clone();
    users[1] = user("u2", "München");
    let outcome = upsert_page(&mut client, &users).await?;
    assert_eq!(
        outcome,
        UpsertOutcome {
            inserted: 0,
            updated: 1,
            unchanged: 2
        }
    );
    let changes = drain(&client, "cdc", 100, 1).await?;
    assert_eq!(summary(&changes), [(Op::Update, "u2")]);
    let image = changes[0]
        .after
        .as_ref()
        .context("an update has an image")?;
    assert_eq!(image.city.as_deref(), Some("München"));
    assert_eq!(image, &users[1].0);
    assert_eq!(
        changes[0].before,
        Some(before_image(&replaced)),
        "an update carries the key fields of the version it replaced"
    );

    // A new password changes raw only: stored, but downstream has nothing to learn.
    users[2].1["login"]["password"] = json!(format!("another-{SECRET_MARK}"));
    let outcome = upsert_page(&mut client, &users).await?;
    assert_eq!((outcome.updated, outcome.unchanged), (1, 2));
    let stored: String = client
        .query_one(
            "SELECT raw->'login'->>'password' FROM users WHERE id = 'u3'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(stored, format!("another-{SECRET_MARK}"));
    assert_eq!(
        change_rows(&client).await?,
        4,
        "three creates and one update"
    );

    // Updates by hand are logged the same way.
    client
        .execute("UPDATE users SET latitude = 1.5 WHERE id = 'u1'", &[])
        .await?;
    let changes = drain(&client, "cdc", 100, 1).await?;
    assert_eq!(summary(&changes), [(Op::Update, "u1")]);
    assert_eq!(
        changes[0].after.as_ref().and_then(|u| u.latitude),
        Some(1.5)
    );
    Ok(())
}

#[tokio::test]
async fn a_delete_is_logged_and_truncate_is_refused() -> anyhow::Result<()> {
    let (_database, mut client) = migrated("store_delete").await?;
    let users = page(&["u1", "u2"]);
    upsert_page(&mut client, &users).await?;
    drain(&client, "cdc", 100, 2).await?;

    assert!(delete_user(&client, "u1").await?);
    assert!(!delete_user(&client, "u1").await?, "already gone");
    let changes = drain(&client, "cdc", 100, 1).await?;
    assert_eq!(summary(&changes), [(Op::Delete, "u1")]);
    assert_eq!(changes[0].after, None);
    assert_eq!(changes[0].before, Some(before_image(&users[0].0)));

    let refused = client.batch_execute("TRUNCATE users").await;
    let error = refused.err().context("TRUNCATE must be refused")?;
    assert!(
        error
            .as_db_error()
            .is_some_and(|db| db.message().contains("change log")),
        "{error:?}"
    );
    Ok(())
}

#[tokio::test]
async fn credentials_stay_in_raw() -> anyhow::Result<()> {
    let (_database, mut client) = migrated("store_secrets").await?;
    let mut users = page(&["u1", "u2"]);
    upsert_page(&mut client, &users).await?;
    users[0] = user("u1", "Hamburg");
    upsert_page(&mut client, &users).await?;
    delete_user(&client, "u2").await?;
    let changes = drain(&client, "cdc", 100, 4).await?;
    assert_eq!(
        summary(&changes),
        [
            (Op::Create, "u1"),
            (Op::Create, "u2"),
            (Op::Update, "u1"),
            (Op::Delete, "u2")
        ]
    );

    let log: String = client
        .query_one(
            "SELECT string_agg(to_jsonb(c)::text, ' ') FROM user_changes c",
            &[],
        )
        .await?
        .get(0);
    assert!(
        !log.contains(SECRET_MARK),
        "credential in the change log: {log}"
    );
    let polled = format!("{changes:?}");
    assert!(!polled.contains(SECRET_MARK), "credential polled: {polled}");
    let columns: String = client
        .query_one(
            "SELECT string_agg((to_jsonb(u) - 'raw')::text, ' ') FROM users u",
            &[],
        )
        .await?
        .get(0);
    assert!(
        !columns.contains(SECRET_MARK),
        "credential in a column: {columns}"
    );
    let raw: String = client
        .query_one("SELECT raw::text FROM users WHERE id = 'u1'", &[])
        .await?
        .get(0);
    for kind in ["password", "salt", "md5", "sha1", "sha256"] {
        assert!(
            raw.contains(&format!("{kind}-{SECRET_MARK}-u1")),
            "{kind} kept in raw"
        );
    }
    Ok(())
}

/// A takes its xid first and commits last; B commits in between. A sequence cursor would have
/// moved past A's change when it read B's.
#[tokio::test]
async fn an_older_transaction_committing_late_is_not_skipped() -> anyhow::Result<()> {
    let (database, mut poller) = migrated("store_late_commit").await?;
    let mut a = connect(&database.url).await?;
    let mut b = connect(&database.url).await?;
    let position = load_position(&poller, "cdc").await?;

    let transaction_a = a.transaction().await?;
    transaction_a
        .execute("INSERT INTO users (id, raw) VALUES ('from-a', '{}')", &[])
        .await?;
    let xid_a: String = transaction_a
        .query_one("SELECT pg_current_xact_id()::text", &[])
        .await?
        .get(0);
    upsert_page(&mut b, &page(&["from-b"])).await?;

    // B is committed, but A (older) is open: nothing may be emitted past A's xid.
    let poll = poll_changes(&poller, &position, 100).await?;
    assert!(
        poll.changes.is_empty(),
        "emitted past an open transaction: {poll:#?}"
    );
    assert!(poll.next.watermark <= xid_a.parse::<u64>()?);
    commit_position(&poller, "cdc", &poll.next).await?;

    transaction_a.commit().await?;
    let changes = drain(&poller, "cdc", 100, 2).await?;
    assert_eq!(
        summary(&changes),
        [(Op::Create, "from-a"), (Op::Create, "from-b")],
        "both, once each, in xid order"
    );
    assert_eq!(changes[0].xid.to_string(), xid_a);

    upsert_page(&mut poller, &page(&["later"])).await?;
    let changes = drain(&poller, "cdc", 100, 1).await?;
    assert_eq!(summary(&changes), [(Op::Create, "later")]);
    Ok(())
}

/// B takes its xid first and commits while A (newer) stays open: B's change is final and is
/// emitted; A's follows once A commits.
#[tokio::test]
async fn a_newer_open_transaction_holds_back_only_itself() -> anyhow::Result<()> {
    let (database, poller) = migrated("store_open_newer").await?;
    let mut a = connect(&database.url).await?;
    let mut b = connect(&database.url).await?;

    let transaction_b = b.transaction().await?;
    transaction_b
        .execute("INSERT INTO users (id, raw) VALUES ('from-b', '{}')", &[])
        .await?;
    let transaction_a = a.transaction().await?;
    transaction_a
        .execute("INSERT INTO users (id, raw) VALUES ('from-a', '{}')", &[])
        .await?;
    transaction_b.commit().await?;

    let changes = drain(&poller, "cdc", 100, 1).await?;
    assert_eq!(summary(&changes), [(Op::Create, "from-b")]);
    let first = changes[0].key();

    transaction_a.commit().await?;
    let changes = drain(&poller, "cdc", 100, 1).await?;
    assert_eq!(summary(&changes), [(Op::Create, "from-a")]);
    assert!(changes[0].key() > first);
    Ok(())
}

#[tokio::test]
async fn a_batch_limit_inside_one_transaction_loses_and_repeats_nothing() -> anyhow::Result<()> {
    let (_database, mut client) = migrated("store_batches").await?;
    upsert_page(&mut client, &page(&["u1", "u2", "u3", "u4", "u5"])).await?;
    upsert_page(&mut client, &page(&["u6", "u7", "u8"])).await?;

    let changes = drain(&client, "cdc", 2, 8).await?;
    assert_eq!(
        changes
            .iter()
            .map(|change| change.user_id.as_str())
            .collect::<Vec<_>>(),
        ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"]
    );
    assert!(changes[..5]
        .iter()
        .all(|change| change.xid == changes[0].xid));
    assert!(changes[5..]
        .iter()
        .all(|change| change.xid == changes[5].xid));
    Ok(())
}

/// Transaction ids are numbers: xid 10 comes after xid 9, though "10" sorts before "9" as text.
/// (Changes are planted with such ids, since real ones cross a digit only every so often.)
#[tokio::test]
async fn changes_come_in_numeric_transaction_order_across_a_digit() -> anyhow::Result<()> {
    let (_database, client) = migrated("store_xid_digits").await?;
    for (xid, user_id) in [("10", "second"), ("9", "first"), ("100", "third")] {
        client
            .execute(
                "INSERT INTO user_changes (xid, op, user_id, after) \
                 VALUES ($1::text::xid8, 'd', $2, NULL)",
                &[&xid, &user_id],
            )
            .await?;
    }
    let changes = drain(&client, "cdc", 1, 3).await?;
    assert_eq!(
        summary(&changes),
        [
            (Op::Delete, "first"),
            (Op::Delete, "second"),
            (Op::Delete, "third")
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_position_not_committed_is_read_again() -> anyhow::Result<()> {
    let (_database, mut client) = migrated("store_redeliver").await?;
    upsert_page(&mut client, &page(&["u1", "u2"])).await?;
    let start = load_position(&client, "cdc").await?;
    let first = eventually("the page's changes", DEFAULT_DEADLINE, || async {
        let poll = poll_changes(&client, &start, 100).await?;
        Ok((poll.changes.len() == 2).then_some(poll))
    })
    .await?;

    // Kafka never acknowledged: after a restart the same changes come again.
    assert_eq!(load_position(&client, "cdc").await?, start);
    let again = poll_changes(&client, &start, 100).await?;
    assert_eq!(again.changes, first.changes);
    Ok(())
}

#[tokio::test]
async fn prune_removes_only_what_every_consumer_passed() -> anyhow::Result<()> {
    let (_database, mut client) = migrated("store_prune").await?;
    upsert_page(&mut client, &page(&["u1", "u2", "u3"])).await?;
    assert_eq!(
        store::prune(&client).await?,
        0,
        "no consumer, nothing passed"
    );

    drain(&client, "fast", 100, 3).await?;
    // A consumer that has registered but emitted nothing yet holds everything back.
    let slow = load_position(&client, "slow").await?;
    assert_eq!(store::prune(&client).await?, 0);

    let poll = eventually("slow's first change", DEFAULT_DEADLINE, || async {
        let poll = poll_changes(&client, &slow, 1).await?;
        Ok((!poll.changes.is_empty()).then_some(poll))
    })
    .await?;
    commit_position(&client, "slow", &poll.next).await?;
    assert_eq!(store::prune(&client).await?, 1, "only u1 passed by both");
    let left: Vec<String> = client
        .query("SELECT user_id FROM user_changes ORDER BY xid, seq", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(left, ["u2", "u3"]);

    // The pruned change is not missed: slow goes on from where it was.
    let changes = drain(&client, "slow", 100, 2).await?;
    assert_eq!(summary(&changes), [(Op::Create, "u2"), (Op::Create, "u3")]);
    upsert_page(&mut client, &page(&["u4"])).await?;
    assert_eq!(store::prune(&client).await?, 2);
    assert_eq!(
        change_rows(&client).await?,
        1,
        "u4 is not passed by anyone yet"
    );
    Ok(())
}

#[tokio::test]
async fn errors_say_whether_a_retry_can_help() -> anyhow::Result<()> {
    let (database, mut client) = migrated("store_errors").await?;

    let mut bad = user("u1", "Berlin");
    bad.0.latitude = Some(f64::INFINITY);
    let error = upsert_page(&mut client, &[user("u0", "Berlin"), bad])
        .await
        .err()
        .context("an infinite latitude is refused")?;
    assert!(
        matches!(&error, StoreError::InvalidUser { id, .. } if id == "u1"),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(
        change_rows(&client).await?,
        0,
        "nothing of the page was written"
    );

    let error = delete_user(&client, "nul\0id")
        .await
        .err()
        .context("PostgreSQL refuses NUL in text")?;
    assert!(!error.is_retryable(), "{error:?}");

    let victim = connect(&database.url).await?;
    let pid: i32 = victim
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    client
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await?;
    let error = eventually(
        "the terminated connection to fail",
        DEFAULT_DEADLINE,
        || async { Ok(load_position(&victim, "cdc").await.err()) },
    )
    .await?;
    assert!(error.is_retryable(), "{error:?}");
    Ok(())
}
