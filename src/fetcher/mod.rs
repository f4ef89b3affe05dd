//! `userstream fetch`: randomuser.me → PostgreSQL.
//!
//! Users are requested in pages (`GET {base}/api/?results=N&page=P&seed=S[&nat=…]`, at most 5,000
//! a page, the API's limit). A page is parsed whole before anything is written: a body that is
//! not a usable response (HTTP error, the API's `{"error": …}`, HTML, truncated JSON, a time-out)
//! is retried with backoff and never half-written. Each page's accepted users are upserted in one
//! transaction; rejected records are logged, counted and kept in `fetch_rejections` with their
//! reason. An unchanged user produces no change.
//!
//! Paging follows one seed, so pages never overlap. Without `--seed` each run (and each cycle of
//! `--every`) draws a fresh seed; with `--seed` the cycles continue through that seed's pages.

use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::config::{MetricsArgs, PostgresArgs};
use crate::error::{chain, Retryable};
use crate::progress::{Progress, ProgressArgs};
use crate::randomuser::{self, ResponseError};
use crate::retry::{Backoff, BackoffPolicy};
use crate::store::{self, RejectedRecord, StoreError};
use crate::telemetry::{self, Health};

/// The API's largest page.
pub const MAX_PAGE_SIZE: u32 = 5000;

/// Settings of `userstream fetch`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub postgres: PostgresArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub options: FetchOptions,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

/// The fetcher's own settings (also part of `userstream run`).
#[derive(Debug, Clone, clap::Args)]
pub struct FetchOptions {
    /// Base URL of the randomuser.me API, a mirror, or `userstream fixture-server`.
    #[arg(
        long = "randomuser-url",
        env = "USERSTREAM_RANDOMUSER_URL",
        default_value = "https://randomuser.me"
    )]
    pub base_url: String,

    /// Users to fetch per run (per cycle with --every).
    #[arg(long = "count", env = "USERSTREAM_FETCH_COUNT", default_value_t = 100)]
    pub count: u32,

    /// Seed for the API's generator; the same seed, page and page size return the same users.
    #[arg(long = "seed", env = "USERSTREAM_FETCH_SEED")]
    pub seed: Option<String>,

    /// Comma-separated nationalities to ask for, e.g. "gb,fr" (all when absent).
    #[arg(long = "nat", env = "USERSTREAM_FETCH_NAT")]
    pub nat: Option<String>,

    /// Fetch again at this interval until stopped (e.g. "30s"); once when absent.
    #[arg(long = "every", env = "USERSTREAM_FETCH_EVERY", value_parser = humantime::parse_duration)]
    pub every: Option<Duration>,

    /// Users per request, 1 to 5000.
    #[arg(
        long = "page-size",
        env = "USERSTREAM_FETCH_PAGE_SIZE",
        default_value_t = MAX_PAGE_SIZE,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_SIZE))
    )]
    pub page_size: u32,

    /// Time-out of one HTTP request.
    #[arg(
        long = "request-timeout",
        env = "USERSTREAM_FETCH_REQUEST_TIMEOUT",
        default_value = "30s",
        value_parser = humantime::parse_duration
    )]
    pub request_timeout: Duration,

    /// Attempts per page before the run fails (transient errors only; each waits longer).
    #[arg(
        long = "max-attempts",
        env = "USERSTREAM_FETCH_MAX_ATTEMPTS",
        default_value_t = 6
    )]
    pub max_attempts: u32,
}

/// What went wrong fetching.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("request to {url} failed")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent an unusable response")]
    Response {
        url: String,
        #[source]
        source: ResponseError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("gave up on {url} after {attempts} attempts")]
    GaveUp {
        url: String,
        attempts: u32,
        #[source]
        last: Box<FetchError>,
    },
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
}

impl Retryable for FetchError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Http { .. } => true,
            Self::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            Self::Response { source, .. } => source.is_retryable(),
            Self::Store(error) => error.is_retryable(),
            Self::Client(_) | Self::GaveUp { .. } | Self::Telemetry(_) => false,
        }
    }
}

impl FetchError {
    /// A short, fixed label for metrics.
    fn kind(&self) -> &'static str {
        match self {
            Self::Http { source, .. } if source.is_timeout() => "timeout",
            Self::Http { .. } => "http",
            Self::Status { .. } => "status",
            Self::Response { source, .. } => source.kind(),
            Self::Store(_) => "store",
            Self::Client(_) | Self::GaveUp { .. } | Self::Telemetry(_) => "other",
        }
    }
}

/// What one run fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchReport {
    pub pages: u32,
    pub accepted: u64,
    pub rejected: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// Fetches `config.count` users once, or every `config.every` until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), FetchError> {
    run_reporting(config, shutdown, Health::new("fetch")).await
}

/// [`run`], reporting its readiness as `health` (a part of a process hosting several stages).
pub async fn run_reporting(
    config: Config,
    shutdown: CancellationToken,
    health: Health,
) -> Result<(), FetchError> {
    telemetry::spawn_metrics_server(config.metrics.listen, &health, &shutdown);
    let options = &config.options;
    let fetcher = Fetcher::new(options)?.with_progress(config.progress.clone());
    let mut next_page = 1;
    loop {
        let seed = options.seed.clone().unwrap_or_else(random_seed);
        let mut pg = store::connect(&config.postgres.pg_url).await?;
        health.set_ready(true);
        match fetcher.fetch(&mut pg, &seed, next_page, &shutdown).await {
            Ok(report) => {
                tracing::info!(seed, ?report, "fetch finished");
                if options.seed.is_some() {
                    next_page += report.pages;
                }
            }
            Err(error) if options.every.is_some() => {
                health.set_ready(false);
                tracing::error!(%error, "fetch cycle failed; trying again next cycle");
            }
            Err(error) => return Err(error),
        }
        let Some(every) = options.every else {
            return Ok(());
        };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

fn random_seed() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 16)
}

/// The HTTP side of the fetcher, reusable across runs.
pub struct Fetcher {
    http: reqwest::Client,
    base_url: String,
    count: u32,
    page_size: u32,
    nat: Option<String>,
    max_attempts: u32,
    backoff: BackoffPolicy,
    /// How a fetch of several pages reports its progress.
    progress: ProgressArgs,
}

impl Fetcher {
    pub fn new(config: &FetchOptions) -> Result<Self, FetchError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .user_agent(concat!("userstream/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(FetchError::Client)?;
        Ok(Self {
            http,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            count: config.count,
            page_size: config.page_size.clamp(1, MAX_PAGE_SIZE),
            nat: config.nat.clone(),
            max_attempts: config.max_attempts.max(1),
            backoff: BackoffPolicy::default(),
            progress: ProgressArgs::default(),
        })
    }

    /// Overrides how the progress of a fetch of several pages is reported.
    pub fn with_progress(mut self, progress: ProgressArgs) -> Self {
        self.progress = progress;
        self
    }

    /// Overrides the wait between attempts (tests use short ones).
    pub fn with_backoff(mut self, backoff: BackoffPolicy) -> Self {
        self.backoff = backoff;
        self
    }

    /// Fetches `count` users with `seed`, starting at `first_page`, and stores them.
    pub async fn fetch(
        &self,
        pg: &mut Client,
        seed: &str,
        first_page: u32,
        shutdown: &CancellationToken,
    ) -> Result<FetchReport, FetchError> {
        let mut report = FetchReport::default();
        let mut remaining = self.count;
        let mut page = first_page;
        // One page is over too soon to be worth a progress report.
        let mut progress = (self.count > self.page_size)
            .then(|| Progress::start("users fetched", 0, u64::from(self.count), &self.progress));
        while remaining > 0 && !shutdown.is_cancelled() {
            // Every page of one seed has the same size, so pages never overlap; the last one
            // may be cut short.
            let response = self.page_with_retries(seed, page, shutdown).await?;
            let take = usize::try_from(remaining).unwrap_or(usize::MAX);
            let records: Vec<_> = response.records.into_iter().take(take).collect();
            let empty = records.is_empty();
            let fetched = records.len() as u64;
            self.store_page(pg, seed, page, records, &mut report)
                .await?;
            report.pages += 1;
            if let Some(progress) = &mut progress {
                progress.advance(fetched);
            }
            remaining = remaining.saturating_sub(self.page_size);
            page += 1;
            if empty {
                tracing::info!(seed, page, "the API has no more users for this seed");
                break;
            }
        }
        if let Some(progress) = progress {
            progress.finish();
        }
        Ok(report)
    }

    async fn store_page(
        &self,
        pg: &mut Client,
        seed: &str,
        page: u32,
        records: Vec<randomuser::RecordOutcome>,
        report: &mut FetchReport,
    ) -> Result<(), FetchError> {
        let mut accepted = Vec::new();
        let mut rejections = Vec::new();
        for outcome in records {
            match outcome {
                randomuser::RecordOutcome::Accepted(user) => {
                    match store::validate(&user.record, &user.raw) {
                        Ok(()) => accepted.push((user.record, user.raw)),
                        Err(error) => {
                            tracing::warn!(seed, page, user_id = user.record.id, %error, "record rejected");
                            metrics::counter!("userstream_fetch_records_rejected_total", "reason" => "invalid_user")
                                .increment(1);
                            report.rejected += 1;
                        }
                    }
                }
                randomuser::RecordOutcome::Rejected(rejection) => {
                    tracing::warn!(seed, page, %rejection, "record rejected");
                    metrics::counter!(
                        "userstream_fetch_records_rejected_total",
                        "reason" => rejection.reason.as_str()
                    )
                    .increment(1);
                    report.rejected += 1;
                    rejections.push(rejection);
                }
            }
        }
        let outcome = store::upsert_page(pg, &accepted).await?;
        let rows: Vec<RejectedRecord<'_>> = rejections
            .iter()
            .map(|rejection| RejectedRecord {
                seed,
                page,
                page_size: self.page_size,
                record_index: rejection.index,
                field: rejection.field,
                reason: rejection.reason.as_str(),
                detail: &rejection.detail,
            })
            .collect();
        store::record_rejections(pg, &rows).await?;
        report.accepted += accepted.len() as u64;
        report.inserted += outcome.inserted;
        report.updated += outcome.updated;
        report.unchanged += outcome.unchanged;
        metrics::counter!("userstream_fetch_records_accepted_total")
            .increment(accepted.len() as u64);
        for (stored, count) in [
            ("inserted", outcome.inserted),
            ("updated", outcome.updated),
            ("unchanged", outcome.unchanged),
        ] {
            metrics::counter!("userstream_fetch_records_stored_total", "outcome" => stored)
                .increment(count);
        }
        metrics::counter!("userstream_fetch_pages_total").increment(1);
        tracing::info!(
            seed,
            page,
            accepted = accepted.len(),
            rejected = rejections.len(),
            inserted = outcome.inserted,
            updated = outcome.updated,
            unchanged = outcome.unchanged,
            "page stored"
        );
        Ok(())
    }

    async fn page_with_retries(
        &self,
        seed: &str,
        page: u32,
        shutdown: &CancellationToken,
    ) -> Result<randomuser::Response, FetchError> {
        let url = self.page_url(seed, page);
        let mut backoff = Backoff::new(self.backoff);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.page_once(&url).await {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            metrics::counter!("userstream_fetch_errors_total", "kind" => error.kind()).increment(1);
            if !error.is_retryable() || attempt >= self.max_attempts || shutdown.is_cancelled() {
                return Err(FetchError::GaveUp {
                    url,
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            let delay = backoff.next_delay();
            metrics::counter!("userstream_retries_total", "operation" => "fetch page").increment(1);
            tracing::warn!(url, attempt, retry_in = ?delay, error = %chain(&error), "fetch failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    async fn page_once(&self, url: &str) -> Result<randomuser::Response, FetchError> {
        let http_error = |source| FetchError::Http {
            url: url.to_owned(),
            source,
        };
        let response = self.http.get(url).send().await.map_err(http_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(http_error)?;
        if !status.is_success() {
            // The API's error body says more than the status; prefer it when there is one.
            if let Err(source @ ResponseError::Api { .. }) = randomuser::parse_response(&body) {
                if status.is_server_error() {
                    return Err(FetchError::Response {
                        url: url.to_owned(),
                        source,
                    });
                }
            }
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        randomuser::parse_response(&body).map_err(|source| FetchError::Response {
            url: url.to_owned(),
            source,
        })
    }

    fn page_url(&self, seed: &str, page: u32) -> String {
        let mut url = format!(
            "{}/api/?results={}&page={page}&seed={}",
            self.base_url,
            self.page_size,
            urlencode(seed)
        );
        if let Some(nat) = &self.nat {
            url.push_str("&nat=");
            url.push_str(&urlencode(nat));
        }
        url
    }
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_nationalities_are_escaped_in_the_url() {
        assert_eq!(urlencode("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(urlencode("gb,fr"), "gb,fr");
    }

    #[test]
    fn server_errors_and_throttling_are_retryable_client_errors_are_not() {
        let status = |status| FetchError::Status {
            url: String::new(),
            status,
        };
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(FetchError::Response {
            url: String::new(),
            source: ResponseError::Html
        }
        .is_retryable());
    }
}
