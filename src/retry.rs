//! Retrying transient failures with capped exponential backoff and full jitter.
//!
//! Only errors that say they are retryable ([`Retryable`]) are retried; anything else returns at
//! once so the caller can reject or dead-letter the input. Every retry is logged and counted under
//! `userstream_retries_total{operation}`, and a cancelled shutdown token ends the wait at once.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::error::Retryable;

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The first wait; each further wait doubles, up to `max`.
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

/// The state of one sequence of attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
}

impl Backoff {
    pub fn new(policy: BackoffPolicy) -> Self {
        Self { policy, attempt: 0 }
    }

    /// The next wait: uniformly random in `[0, min(max, initial · 2^attempt)]`, so that many
    /// clients failing together do not retry in lockstep.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .policy
            .initial
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.policy.max);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::rng().random_range(0..=ceiling_us))
    }

    /// How many waits have been handed out.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// Why [`retry`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum RetryError<E> {
    /// The operation failed in a way retrying cannot fix.
    #[error(transparent)]
    Permanent(E),
    /// Shutdown was requested while the operation was still failing.
    #[error("shutdown requested while retrying (last error: {0})")]
    Cancelled(E),
}

impl<E> RetryError<E> {
    pub fn into_inner(self) -> E {
        match self {
            Self::Permanent(error) | Self::Cancelled(error) => error,
        }
    }
}

/// Runs `operation` until it succeeds, fails permanently, or `shutdown` is cancelled.
pub async fn retry<T, E, F, Fut>(
    operation_name: &'static str,
    policy: BackoffPolicy,
    shutdown: &CancellationToken,
    mut operation: F,
) -> Result<T, RetryError<E>>
where
    E: Retryable + Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(policy);
    loop {
        let error = match operation().await {
            Ok(value) => return Ok(value),
            Err(error) if !error.is_retryable() => return Err(RetryError::Permanent(error)),
            Err(error) => error,
        };
        if shutdown.is_cancelled() {
            return Err(RetryError::Cancelled(error));
        }
        let delay = backoff.next_delay();
        metrics::counter!("userstream_retries_total", "operation" => operation_name).increment(1);
        tracing::warn!(
            operation = operation_name,
            attempt = backoff.attempts(),
            retry_in = ?delay,
            %error,
            "transient failure; retrying"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Err(RetryError::Cancelled(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Failure(&'static str, bool);

    impl Retryable for Failure {
        fn is_retryable(&self) -> bool {
            self.1
        }
    }

    const FAST: BackoffPolicy = BackoffPolicy {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(4),
    };

    #[test]
    fn delays_stay_under_the_doubling_ceiling_and_the_cap() {
        let mut backoff = Backoff::new(BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        });
        let ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
        for ceiling in ceilings {
            assert!(backoff.next_delay() <= Duration::from_millis(ceiling));
        }
        assert_eq!(backoff.attempts(), 7);
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let result = retry("test", FAST, &CancellationToken::new(), || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Err(Failure("down", true)),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
    }

    #[tokio::test]
    async fn permanent_errors_return_at_once() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry("test", FAST, &CancellationToken::new(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Failure("bad input", false))
        })
        .await;
        assert!(matches!(
            result,
            Err(RetryError::Permanent(Failure("bad input", false)))
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn cancellation_stops_the_retries() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let result: Result<(), _> = retry("test", FAST, &shutdown, || async {
            Err(Failure("down", true))
        })
        .await;
        assert!(matches!(result, Err(RetryError::Cancelled(_))));
    }
}
