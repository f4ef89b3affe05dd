//! The report as a person reads it on a terminal.

use std::fmt;

use super::{Report, Section};

/// One screen: the verdict and its reasons first, then one block per service.
pub struct Screen<'a>(pub &'a Report);

fn when(time: Option<chrono::DateTime<chrono::Utc>>) -> String {
    time.map_or_else(
        || "-".to_owned(),
        |time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// The heading of a service's block, or why there is nothing under it.
fn heading<T>(f: &mut fmt::Formatter<'_>, name: &str, section: &Section<T>) -> fmt::Result {
    match (&section.error, section.reachable) {
        (Some(error), false) => writeln!(f, "{name}: UNREACHABLE — {error}"),
        (Some(error), true) => writeln!(f, "{name}: reachable, but {error}"),
        (None, _) => writeln!(f, "{name}:"),
    }
}

impl fmt::Display for Screen<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self.0;
        writeln!(
            f,
            "userstream status: {} (exit {}) at {}",
            match report.verdict {
                super::Verdict::Healthy => "healthy",
                super::Verdict::Degraded => "DEGRADED",
                super::Verdict::Unreachable => "UNREACHABLE",
            },
            report.exit_code,
            when(Some(report.checked_at))
        )?;
        for problem in &report.problems {
            writeln!(f, "  ! {problem}")?;
        }

        writeln!(f)?;
        heading(f, "PostgreSQL", &report.postgres)?;
        if let Some(postgres) = &report.postgres.details {
            writeln!(f, "  users: {}", postgres.users)?;
            if postgres.cdc_cursors.is_empty() {
                writeln!(f, "  cdc cursors: none yet")?;
            }
            for cursor in &postgres.cdc_cursors {
                write!(
                    f,
                    "  cdc cursor {}: {} unproduced change(s)",
                    cursor.consumer, cursor.unproduced
                )?;
                if let Some(age) = cursor.oldest_unproduced_age_seconds {
                    write!(f, ", the oldest {age:.1}s old")?;
                }
                writeln!(f, "; cursor stored {}", when(Some(cursor.updated_at)))?;
            }
            match &postgres.oldest_xmin_holder {
                None => writeln!(f, "  oldest transaction holding the xmin: none")?,
                Some(holder) => writeln!(
                    f,
                    "  oldest transaction holding the xmin: pid {} ({}, {}, {}) since {} ({:.1}s)",
                    holder.pid,
                    holder.application_name.as_deref().unwrap_or("-"),
                    holder.database.as_deref().unwrap_or("-"),
                    holder.state.as_deref().unwrap_or("-"),
                    when(holder.transaction_start),
                    holder.age_seconds.unwrap_or_default()
                )?,
            }
        }

        writeln!(f)?;
        heading(f, "Kafka", &report.kafka)?;
        if let Some(kafka) = &report.kafka.details {
            if kafka.topic_exists {
                writeln!(
                    f,
                    "  topic {}: {} partition(s)",
                    kafka.topic,
                    kafka.partitions.len()
                )?;
            } else {
                writeln!(f, "  topic {}: does not exist", kafka.topic)?;
            }
            writeln!(
                f,
                "  group {} ({}), {} member(s), lag {}",
                kafka.group,
                kafka.group_state.as_deref().unwrap_or("unknown"),
                kafka.members.len(),
                kafka.total_lag
            )?;
            if !kafka.partitions.is_empty() {
                writeln!(f, "    partition  end offset   committed         lag")?;
            }
            for partition in &kafka.partitions {
                writeln!(
                    f,
                    "    {:>9}  {:>10}  {:>10}  {:>10}",
                    partition.partition,
                    partition.end_offset,
                    partition
                        .committed
                        .map_or_else(|| "-".to_owned(), |offset| offset.to_string()),
                    partition.lag
                )?;
            }
            for member in &kafka.members {
                writeln!(
                    f,
                    "    member {} ({} on {})",
                    member.member_id, member.client_id, member.client_host
                )?;
            }
        }

        writeln!(f)?;
        heading(f, "Dead letters", &report.dead_letters)?;
        if let Some(letters) = &report.dead_letters.details {
            write!(f, "  {}: {} message(s)", letters.topic, letters.count)?;
            match letters.replayed {
                Some(replayed) => writeln!(f, ", {replayed} replayed")?,
                None => writeln!(f)?,
            }
            for letter in &letters.latest {
                writeln!(
                    f,
                    "    {} {}/{} key {} {}: {}",
                    when(letter.timestamp),
                    letter.partition,
                    letter.offset,
                    letter.key.as_deref().unwrap_or("-"),
                    letter.error_kind.as_deref().unwrap_or("-"),
                    letter.error_message.as_deref().unwrap_or("-")
                )?;
            }
        }

        writeln!(f)?;
        heading(f, "Schema Registry", &report.registry)?;
        if let Some(registry) = &report.registry.details {
            writeln!(
                f,
                "  subject {}: versions {:?}, newest id {}",
                registry.subject,
                registry.versions,
                registry
                    .newest_id
                    .map_or_else(|| "-".to_owned(), |id| id.to_string())
            )?;
        }

        writeln!(f)?;
        heading(f, "Cassandra", &report.cassandra)?;
        if let Some(cassandra) = &report.cassandra.details {
            if cassandra.keyspace_exists {
                let applied: Vec<String> = cassandra
                    .migrations
                    .iter()
                    .map(|migration| {
                        format!(
                            "{} {}",
                            migration.version,
                            migration.name.as_deref().unwrap_or("-")
                        )
                    })
                    .collect();
                writeln!(
                    f,
                    "  keyspace {}: {} of {} CQL migrations applied ({})",
                    cassandra.keyspace,
                    cassandra.migrations.len(),
                    cassandra.known_migrations,
                    applied.join(", ")
                )?;
            } else {
                writeln!(f, "  keyspace {}: does not exist", cassandra.keyspace)?;
            }
        }
        Ok(())
    }
}
