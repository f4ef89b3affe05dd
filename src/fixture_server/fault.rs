//! Fault specs (`status-503-x2`, `slow-1500ms`, …) and the per-scenario request counters.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Longer delays are refused: they would only hold a test (and a graceful shutdown) hostage.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// One way of misbehaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500 with the API's `{"error": …}` body.
    Status500,
    /// HTTP 503 with the API's `{"error": …}` body.
    Status503,
    /// HTTP 200 with an HTML page instead of JSON.
    Html,
    /// HTTP 200, JSON content type, the normal body cut in the middle.
    Truncated,
    /// The normal response, after this delay.
    Slow(Duration),
    /// HTTP 200 with the API's `{"error": …}` body.
    ErrorBody,
    /// The connection is dropped without any response.
    Close,
}

impl Fault {
    /// A low-cardinality name for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Status500 => "status_500",
            Self::Status503 => "status_503",
            Self::Html => "html",
            Self::Truncated => "truncated",
            Self::Slow(_) => "slow",
            Self::ErrorBody => "error_body",
            Self::Close => "close",
        }
    }
}

/// A fault and how many requests it applies to; see the module documentation for the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    pub fault: Fault,
    /// Only the first this-many requests misbehave (`-xN`); `None` means every request.
    pub times: Option<NonZeroU64>,
}

impl FaultSpec {
    /// The fault to apply to the request that is number `ordinal` (from 0) of its scenario.
    pub fn for_request(self, ordinal: u64) -> Option<Fault> {
        self.times
            .is_none_or(|times| ordinal < times.get())
            .then_some(self.fault)
    }
}

/// A fault spec that does not follow the grammar.
#[derive(Debug, thiserror::Error)]
pub enum FaultSpecError {
    #[error(
        "unknown fault {0:?}: expected status-500, status-503, html, truncated, \
         slow-<duration>, error-body or close, optionally followed by -x<N>"
    )]
    Unknown(String),
    #[error("fault {spec:?} has a delay humantime cannot read (try slow-2s or slow-1500ms)")]
    Delay {
        spec: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error("fault {spec:?} delays longer than the limit of one hour")]
    TooSlow { spec: String },
    #[error("fault {spec:?}: -x must be followed by a whole number from 1 up")]
    Times {
        spec: String,
        #[source]
        source: std::num::ParseIntError,
    },
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (base, times) = match spec.rsplit_once("-x") {
            Some((base, count))
                if !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()) =>
            {
                let times =
                    count
                        .parse::<NonZeroU64>()
                        .map_err(|source| FaultSpecError::Times {
                            spec: spec.to_owned(),
                            source,
                        })?;
                (base, Some(times))
            }
            _ => (spec, None),
        };
        let fault = match base {
            "status-500" => Fault::Status500,
            "status-503" => Fault::Status503,
            "html" => Fault::Html,
            "truncated" => Fault::Truncated,
            "error-body" => Fault::ErrorBody,
            "close" => Fault::Close,
            _ => match base.strip_prefix("slow-") {
                Some(delay) => {
                    let delay = humantime::parse_duration(delay).map_err(|source| {
                        FaultSpecError::Delay {
                            spec: spec.to_owned(),
                            source,
                        }
                    })?;
                    if delay > MAX_DELAY {
                        return Err(FaultSpecError::TooSlow {
                            spec: spec.to_owned(),
                        });
                    }
                    Fault::Slow(delay)
                }
                None => return Err(FaultSpecError::Unknown(spec.to_owned())),
            },
        };
        Ok(Self { fault, times })
    }
}

/// How many requests each scenario (the test-chosen id in `/_fault/{scenario}/…`) has seen.
///
/// Scenarios are never forgotten: this is a test server, and a test may come back to one late.
#[derive(Debug, Default)]
pub struct Scenarios(Mutex<HashMap<String, u64>>);

impl Scenarios {
    /// Counts a request of `scenario`, returning its ordinal (0 for the first).
    pub fn next(&self, scenario: &str) -> u64 {
        // The map is only ever incremented, so a panic elsewhere cannot leave it inconsistent.
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(scenario.to_owned()).or_default();
        let ordinal = *count;
        *count += 1;
        ordinal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> FaultSpec {
        spec.parse()
            .unwrap_or_else(|error| panic!("{spec}: {error}"))
    }

    #[test]
    fn parses_every_fault() {
        let cases = [
            ("status-500", Fault::Status500),
            ("status-503", Fault::Status503),
            ("html", Fault::Html),
            ("truncated", Fault::Truncated),
            ("error-body", Fault::ErrorBody),
            ("close", Fault::Close),
            ("slow-2s", Fault::Slow(Duration::from_secs(2))),
            ("slow-1500ms", Fault::Slow(Duration::from_millis(1500))),
            ("slow-1m30s", Fault::Slow(Duration::from_secs(90))),
        ];
        for (spec, fault) in cases {
            assert_eq!(parse(spec), FaultSpec { fault, times: None }, "{spec}");
        }
    }

    #[test]
    fn parses_the_repeat_suffix() {
        assert_eq!(
            parse("status-503-x2"),
            FaultSpec {
                fault: Fault::Status503,
                times: NonZeroU64::new(2),
            }
        );
        assert_eq!(
            parse("slow-250ms-x10"),
            FaultSpec {
                fault: Fault::Slow(Duration::from_millis(250)),
                times: NonZeroU64::new(10),
            }
        );
    }

    #[test]
    fn refuses_malformed_specs_with_the_reason() {
        for (spec, expected) in [
            ("status-404", "unknown fault"),
            ("", "unknown fault"),
            ("close-x", "unknown fault"),
            ("close-xy", "unknown fault"),
            ("Close", "unknown fault"),
            ("slow-", "delay"),
            ("slow-fast", "delay"),
            ("slow-2h", "limit of one hour"),
            ("html-x0", "whole number"),
            ("html-x99999999999999999999", "whole number"),
        ] {
            let error = spec.parse::<FaultSpec>().unwrap_err().to_string();
            assert!(error.contains(expected), "{spec:?}: {error}");
        }
    }

    #[test]
    fn a_limited_fault_stops_after_its_count() {
        let spec = parse("close-x2");
        let faults: Vec<_> = (0..4).map(|ordinal| spec.for_request(ordinal)).collect();
        assert_eq!(faults, [Some(Fault::Close), Some(Fault::Close), None, None]);
        assert_eq!(parse("html").for_request(u64::MAX), Some(Fault::Html));
    }

    #[test]
    fn scenarios_count_independently() {
        let scenarios = Scenarios::default();
        assert_eq!(scenarios.next("a"), 0);
        assert_eq!(scenarios.next("a"), 1);
        assert_eq!(scenarios.next("b"), 0);
        assert_eq!(scenarios.next("a"), 2);
    }
}
