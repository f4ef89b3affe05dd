//! The Cassandra sink against a real node: what the pipeline's guarantees rest on. Each write
//! carries `USING TIMESTAMP` = the change's source time, so the outcome in Cassandra depends on
//! the versions' source times and never on the order they arrive in; a newer null removes a
//! value; a delete shadows every older version; `users_by_country` keeps one row per user, newest
//! registrations first.
//!
//! Every change is written as the processor writes it: with the version it replaced (what the
//! change log's before image says), `None` for a create.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use scylla::client::session::Session;
use userstream::config::CassandraArgs;
use userstream::normalize::{normalize, NormalizedUser};
use userstream::sink::{self, CassandraSink, CountryKey};

use crate::common::{self, TestKeyspace};
use crate::harness;

const REPLICATION: &str = "{'class': 'SimpleStrategy', 'replication_factor': 1}";

/// A migrated keyspace of its own and the sink's prepared statements on it.
struct TestSink {
    sink: CassandraSink,
    session: Arc<Session>,
    keyspace: TestKeyspace,
}

impl TestSink {
    async fn new(prefix: &str) -> anyhow::Result<Self> {
        let keyspace = TestKeyspace::new(prefix);
        let session = Arc::new(
            sink::connect(&CassandraArgs {
                nodes: common::cassandra_nodes(),
                keyspace: keyspace.name.clone(),
                keyspace_replication: REPLICATION.to_owned(),
            })
            .await?,
        );
        sink::migrate(&session, &keyspace.name, REPLICATION).await?;
        let sink = CassandraSink::prepare(Arc::clone(&session), &keyspace.name).await?;
        Ok(Self {
            sink,
            session,
            keyspace,
        })
    }

    /// Writes `user` at `source_ts_us`, a version that replaced `replaced`.
    async fn upsert(
        &self,
        user: &NormalizedUser,
        replaced: Option<&NormalizedUser>,
        source_ts_us: i64,
    ) -> anyhow::Result<()> {
        let previous = replaced.map(CountryKey::of);
        self.sink
            .upsert(user, previous.as_ref(), source_ts_us, Some(source_ts_us))
            .await
            .with_context(|| format!("upserting {} at {source_ts_us}", user.id))?;
        Ok(())
    }

    /// Deletes the user at `source_ts_us`, whose version then was `replaced`.
    async fn delete(
        &self,
        user_id: &str,
        replaced: Option<&NormalizedUser>,
        source_ts_us: i64,
    ) -> anyhow::Result<()> {
        let previous = replaced.map(CountryKey::of);
        self.sink
            .delete(user_id, previous.as_ref(), source_ts_us)
            .await
            .with_context(|| format!("deleting {user_id} at {source_ts_us}"))?;
        Ok(())
    }

    /// Applies `history[i]` for each `i` of `order`: each change with the version before it (none
    /// after a delete: the user was created again).
    async fn apply(&self, history: &[Version], order: &[usize]) -> anyhow::Result<()> {
        for &index in order {
            let replaced = index
                .checked_sub(1)
                .and_then(|before| history[before].user.as_ref());
            let version = &history[index];
            match &version.user {
                Some(user) => self.upsert(user, replaced, version.source_ts_us).await?,
                None => {
                    let id = &replaced.context("a delete follows a version")?.id;
                    self.delete(id, replaced, version.source_ts_us).await?
                }
            }
        }
        Ok(())
    }

    /// Every column of the user's `users_by_id` row as JSON, if there is one.
    async fn by_id_json(&self, user_id: &str) -> anyhow::Result<Option<String>> {
        let query = format!(
            "SELECT JSON * FROM {}.users_by_id WHERE user_id = ?",
            self.keyspace.name
        );
        Ok(self
            .session
            .query_unpaged(query, (user_id,))
            .await?
            .into_rows_result()?
            .maybe_first_row::<(String,)>()?
            .map(|(json,)| json))
    }

    /// `(first_name, email, source_ts_us)` of the user's `users_by_id` row, if any.
    async fn by_id(
        &self,
        user_id: &str,
    ) -> anyhow::Result<Option<(Option<String>, Option<String>, Option<i64>)>> {
        let query = format!(
            "SELECT first_name, email, source_ts_us FROM {}.users_by_id WHERE user_id = ?",
            self.keyspace.name
        );
        Ok(self
            .session
            .query_unpaged(query, (user_id,))
            .await?
            .into_rows_result()?
            .maybe_first_row()?)
    }

    /// `(country_code, registered_at, first_name)` of every `users_by_country` row of the user.
    async fn country_rows(
        &self,
        user_id: &str,
    ) -> anyhow::Result<Vec<(String, DateTime<Utc>, Option<String>)>> {
        let query = format!(
            "SELECT country_code, registered_at, user_id, first_name FROM {}.users_by_country",
            self.keyspace.name
        );
        let result = self
            .session
            .query_unpaged(query, ())
            .await?
            .into_rows_result()?;
        let rows = result
            .rows::<(String, DateTime<Utc>, String, Option<String>)>()?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter(|(_, _, id, _)| id == user_id)
            .map(|(country, registered, _, first_name)| (country, registered, first_name))
            .collect())
    }
}

fn user(id: &str, first_name: &str) -> NormalizedUser {
    let (record, _) = harness::sample_user(id, first_name);
    normalize(&record).expect("the sample user normalizes").user
}

/// One change of a user's history: the version it wrote (`None`: a delete) and when.
struct Version {
    user: Option<NormalizedUser>,
    source_ts_us: i64,
}

fn registered(year: i32) -> Option<DateTime<Utc>> {
    Some(Utc.with_ymd_and_hms(year, 1, 2, 3, 4, 5).unwrap())
}

#[tokio::test]
async fn an_older_version_arriving_after_a_newer_one_changes_nothing() -> anyhow::Result<()> {
    let test = TestSink::new("sink_lww").await?;
    let old = user("u-1", "Old");
    let new = user("u-1", "New");
    test.upsert(&new, Some(&old), 2_000).await?;
    test.upsert(&old, None, 1_000).await?;

    let (first_name, _, source_ts) = test.by_id("u-1").await?.context("no users_by_id row")?;
    assert_eq!(first_name.as_deref(), Some("New"));
    assert_eq!(source_ts, Some(2_000));
    let rows = test.country_rows("u-1").await?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].2.as_deref(), Some("New"));
    Ok(())
}

#[tokio::test]
async fn a_replayed_version_leaves_the_same_rows() -> anyhow::Result<()> {
    let test = TestSink::new("sink_replay").await?;
    let version = user("u-1", "Ada");
    for _ in 0..3 {
        test.upsert(&version, None, 1_000).await?;
    }
    assert_eq!(
        test.by_id("u-1").await?,
        Some((
            Some("Ada".to_owned()),
            Some("u-1@example.com".to_owned()),
            Some(1_000)
        ))
    );
    assert_eq!(test.country_rows("u-1").await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_null_in_a_newer_version_removes_the_value_for_good() -> anyhow::Result<()> {
    let test = TestSink::new("sink_null").await?;
    let with_email = user("u-1", "Ada");
    let mut without_email = with_email.clone();
    without_email.email = None;
    test.upsert(&with_email, None, 1_000).await?;
    test.upsert(&without_email, Some(&with_email), 3_000)
        .await?;
    // A version between the two, arriving last, must not bring the e-mail back.
    test.upsert(&with_email, Some(&with_email), 2_000).await?;

    let (_, email, source_ts) = test.by_id("u-1").await?.context("no users_by_id row")?;
    assert_eq!(email, None);
    assert_eq!(source_ts, Some(3_000));
    Ok(())
}

#[tokio::test]
async fn a_delete_shadows_every_older_version_whenever_it_arrives() -> anyhow::Result<()> {
    let test = TestSink::new("sink_delete").await?;
    let (ada, late) = (user("u-1", "Ada"), user("u-1", "Late"));
    test.upsert(&ada, None, 1_000).await?;
    test.delete("u-1", Some(&late), 2_000).await?;
    test.upsert(&late, Some(&ada), 1_500).await?;
    assert_eq!(test.by_id("u-1").await?, None);
    assert_eq!(test.country_rows("u-1").await?, vec![]);

    // A version newer than the delete (the user was inserted again) is written.
    test.upsert(&user("u-1", "Again"), None, 2_500).await?;
    let (first_name, ..) = test
        .by_id("u-1")
        .await?
        .context("re-inserted user missing")?;
    assert_eq!(first_name.as_deref(), Some("Again"));
    assert_eq!(test.country_rows("u-1").await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_move_leaves_one_country_row_whatever_order_the_versions_arrive_in() -> anyhow::Result<()>
{
    let test = TestSink::new("sink_move").await?;
    let in_germany = user("u-1", "Ada");
    let mut in_france = in_germany.clone();
    in_france.country_code = "FR".to_owned();
    let mut registered_again = in_france.clone();
    registered_again.registered_at = registered(2020);

    test.upsert(&in_germany, None, 1_000).await?;
    test.upsert(&registered_again, Some(&in_france), 3_000)
        .await?;
    test.upsert(&in_france, Some(&in_germany), 2_000).await?;

    let rows = test.country_rows("u-1").await?;
    assert_eq!(
        rows,
        vec![(
            "FR".to_owned(),
            registered(2020).unwrap(),
            Some("Ada".to_owned())
        )]
    );
    Ok(())
}

#[tokio::test]
async fn users_by_country_lists_the_newest_registrations_first() -> anyhow::Result<()> {
    let test = TestSink::new("sink_order").await?;
    for (id, year) in [("u-a", 2012), ("u-b", 2019), ("u-c", 2015)] {
        let mut member = user(id, "Ada");
        member.registered_at = registered(year);
        test.upsert(&member, None, 1_000).await?;
    }
    let mut unregistered = user("u-d", "Ada");
    unregistered.registered_at = None;
    test.upsert(&unregistered, None, 1_000).await?;

    let query = format!(
        "SELECT user_id FROM {}.users_by_country WHERE country_code = 'DE'",
        test.keyspace.name
    );
    let result = test
        .session
        .query_unpaged(query, ())
        .await?
        .into_rows_result()?;
    let ids = result
        .rows::<(String,)>()?
        .map(|row| row.map(|(id,)| id))
        .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(ids, ["u-b", "u-c", "u-a", "u-d"]);
    Ok(())
}

/// A user moving from DE to FR and then to another registration, as three versions.
fn moving_user(id: &str) -> Vec<Version> {
    let in_germany = user(id, "Ada");
    let mut in_france = in_germany.clone();
    in_france.country_code = "FR".to_owned();
    in_france.nat = Some("FR".to_owned());
    let mut registered_again = in_france.clone();
    registered_again.registered_at = registered(2020);
    [in_germany, in_france, registered_again]
        .into_iter()
        .zip([1_000, 2_000, 3_000])
        .map(|(user, source_ts_us)| Version {
            user: Some(user),
            source_ts_us,
        })
        .collect()
}

#[tokio::test]
async fn a_move_arriving_in_any_order_leaves_exactly_the_newest_country_row() -> anyhow::Result<()>
{
    let test = TestSink::new("sink_late_move").await?;
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        // The first version arriving after the two that moved the user away from it.
        [2, 1, 0],
    ];
    for (n, order) in orders.iter().enumerate() {
        let id = format!("u-{n}");
        test.apply(&moving_user(&id), order).await?;
        let rows = test.country_rows(&id).await?;
        assert_eq!(
            rows,
            vec![(
                "FR".to_owned(),
                registered(2020).unwrap(),
                Some("Ada".to_owned())
            )],
            "versions applied in the order {order:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_delete_removes_the_country_row_its_before_image_names() -> anyhow::Result<()> {
    let test = TestSink::new("sink_delete_moved").await?;
    let mut history = moving_user("u-1");
    history.push(Version {
        user: None,
        source_ts_us: 4_000,
    });
    test.apply(&history, &[0, 1, 2]).await?;
    assert_eq!(test.country_rows("u-1").await?.len(), 1);
    test.apply(&history, &[3]).await?;
    assert_eq!(test.by_id("u-1").await?, None);
    assert_eq!(test.country_rows("u-1").await?, vec![]);

    // The delete first, then the versions it shadows (a replay after it).
    let mut history = moving_user("u-2");
    history.push(Version {
        user: None,
        source_ts_us: 4_000,
    });
    test.apply(&history, &[3, 1, 0, 2]).await?;
    assert_eq!(test.by_id("u-2").await?, None);
    assert_eq!(test.country_rows("u-2").await?, vec![]);
    Ok(())
}

#[tokio::test]
async fn a_whole_history_replayed_in_reverse_ends_as_applied_in_order() -> anyhow::Result<()> {
    let test = TestSink::new("sink_reverse").await?;
    // Moves, a null, a delete, the user created again elsewhere, and another move.
    let history = |id: &str| {
        let mut history = moving_user(id);
        let mut without_email = history[2].user.clone().expect("an upsert");
        without_email.email = None;
        let mut back_in_germany = user(id, "Ada");
        back_in_germany.registered_at = registered(2022);
        let mut renamed = back_in_germany.clone();
        renamed.first_name = Some("Adele".to_owned());
        renamed.registered_at = registered(2023);
        history.extend([
            Version {
                user: Some(without_email),
                source_ts_us: 4_000,
            },
            Version {
                user: None,
                source_ts_us: 5_000,
            },
            Version {
                user: Some(back_in_germany),
                source_ts_us: 6_000,
            },
            Version {
                user: Some(renamed),
                source_ts_us: 7_000,
            },
        ]);
        history
    };
    let forward = history("u-forward");
    let reverse = history("u-reverse");
    let in_order: Vec<usize> = (0..forward.len()).collect();
    let reversed: Vec<usize> = in_order.iter().rev().copied().collect();
    test.apply(&forward, &in_order).await?;
    test.apply(&reverse, &reversed).await?;

    let forward_row = test.by_id_json("u-forward").await?.context("no row")?;
    let reverse_row = test.by_id_json("u-reverse").await?.context("no row")?;
    assert_eq!(reverse_row.replace("u-reverse", "u-forward"), forward_row);
    let forward_rows = test.country_rows("u-forward").await?;
    assert_eq!(
        forward_rows,
        vec![(
            "DE".to_owned(),
            registered(2023).unwrap(),
            Some("Adele".to_owned())
        )]
    );
    assert_eq!(test.country_rows("u-reverse").await?, forward_rows);
    Ok(())
}
