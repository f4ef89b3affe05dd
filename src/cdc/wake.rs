//! Waking the poller when changes commit, instead of letting them wait for the next poll.
//!
//! Migration 011 has every statement that writes the change log notify [`CHANNEL`]; PostgreSQL
//! delivers a notification when its transaction commits. A connection of its own `LISTEN`s and
//! wakes the poller on each. Correctness never depends on it: the poller reads by the watermark
//! as always, and still polls every `--cdc-poll-interval` when no notification comes (this
//! connection lost and reconnecting, or an open transaction that ends without writing changes
//! but was holding others back).

use std::future::poll_fn;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::retry::{Backoff, BackoffPolicy};
use crate::store::StoreError;

/// The channel migration 011's trigger notifies (`src/store/sql/011_change_notify.sql`).
pub const CHANNEL: &str = "user_changes";

/// How the listening session shows in `pg_stat_activity`, unless the URL names another.
pub const LISTENER_APPLICATION_NAME: &str = "userstream cdc listener";

/// Listens on [`CHANNEL`] until `shutdown`, calling `wake.notify_one()` for every notification
/// and once after each (re)connection (changes may have committed while nobody listened). A lost
/// connection is reconnected with backoff.
pub fn spawn_listener(
    url: Secret<String>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Backoff::new(BackoffPolicy::default());
        loop {
            match listen(&url, &wake, &shutdown, &mut backoff).await {
                Ended::Shutdown => break,
                Ended::Closed => tracing::warn!("the CDC listener's connection was closed"),
                Ended::Failed(error) => tracing::warn!(%error, "the CDC listener failed"),
            }
            metrics::gauge!("userstream_cdc_listening").set(0.0);
            metrics::counter!("userstream_retries_total", "operation" => "cdc listen").increment(1);
            let delay = backoff.next_delay();
            tracing::info!(retry_in = ?delay, "the poller polls by its interval until the listener is back");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => break,
            }
        }
        metrics::gauge!("userstream_cdc_listening").set(0.0);
    })
}

/// How one listening connection ended.
enum Ended {
    Shutdown,
    /// The server closed the connection without an error.
    Closed,
    Failed(StoreError),
}

async fn listen(
    url: &Secret<String>,
    wake: &Notify,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Ended {
    let mut config: tokio_postgres::Config = match url.expose().parse() {
        Ok(config) => config,
        Err(error) => return Ended::Failed(StoreError::postgres("read the PostgreSQL URL")(error)),
    };
    if config.get_application_name().is_none() {
        config.application_name(LISTENER_APPLICATION_NAME);
    }
    let (client, mut connection) = match config.connect(tokio_postgres::NoTls).await {
        Ok(connected) => connected,
        Err(error) => return Ended::Failed(StoreError::postgres("connect the listener")(error)),
    };
    // Notifications arrive as messages of the connection itself, so it is driven here rather
    // than by a task of its own; it also carries the LISTEN below.
    let driven = async {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    metrics::counter!("userstream_cdc_notifications_total").increment(1);
                    wake.notify_one();
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    return Ended::Failed(StoreError::postgres("listen for changes")(error))
                }
                None => return Ended::Closed,
            }
        }
    };
    tokio::pin!(driven);
    let listen = format!("LISTEN {CHANNEL}");
    let subscribed = client.batch_execute(&listen);
    tokio::select! {
        subscribed = subscribed => {
            if let Err(error) = subscribed {
                return Ended::Failed(StoreError::postgres("listen for changes")(error));
            }
        }
        ended = &mut driven => return ended,
        () = shutdown.cancelled() => return Ended::Shutdown,
    }
    tracing::info!(channel = CHANNEL, "listening for committed changes");
    metrics::gauge!("userstream_cdc_listening").set(1.0);
    *backoff = Backoff::new(BackoffPolicy::default());
    wake.notify_one();
    tokio::select! {
        ended = driven => ended,
        () = shutdown.cancelled() => Ended::Shutdown,
    }
}
