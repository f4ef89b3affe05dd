//! Progress of long work (`fetch` of many users, `snapshot`) for the person waiting on it.
//!
//! On a terminal, stderr shows a bar with the count, the rate and the time left (indicatif).
//! Anywhere else (a log file, a pipe, a container's log) a bar would be a mess of carriage
//! returns, so one log line is written per interval instead, and one when the work ends.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How progress is reported.
#[derive(Debug, Clone, clap::Args)]
pub struct ProgressArgs {
    /// How often a progress line is logged when stderr is not a terminal (on a terminal a bar
    /// shows the count, rate and time left instead).
    #[arg(
        long = "progress-interval",
        env = "USERSTREAM_PROGRESS_INTERVAL",
        default_value = "10s",
        value_parser = humantime::parse_duration
    )]
    pub interval: Duration,
}

impl Default for ProgressArgs {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
        }
    }
}

/// The bar's layout: what, elapsed, bar, count, rate, time left.
const BAR_TEMPLATE: &str =
    "{msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({rate}, ETA {eta})";

/// Progress of one piece of work whose size is known (roughly: it may grow or shrink).
#[derive(Debug)]
pub struct Progress {
    what: &'static str,
    output: Output,
}

#[derive(Debug)]
enum Output {
    Bar(ProgressBar),
    Log(IntervalLog),
}

impl Progress {
    /// Starts reporting `what` (e.g. "users re-emitted"), of which `done` of `total` are done
    /// already (a resumed piece of work).
    pub fn start(what: &'static str, done: u64, total: u64, args: &ProgressArgs) -> Self {
        let output = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            // The template is a constant; a typo in it shows as a plain bar, not a failure.
            if let Ok(style) = ProgressStyle::with_template(BAR_TEMPLATE) {
                let style = style.with_key(
                    "rate",
                    |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = write!(out, "{:.0}/s", state.per_sec());
                    },
                );
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what);
            bar.set_position(done);
            bar.reset_eta();
            Output::Bar(bar)
        } else {
            Output::Log(IntervalLog::new(done, total, args.interval, Instant::now()))
        };
        Self { what, output }
    }

    /// `count` more are done.
    pub fn advance(&mut self, count: u64) {
        match &mut self.output {
            Output::Bar(bar) => bar.inc(count),
            Output::Log(log) => {
                if let Some(line) = log.advance(count, Instant::now()) {
                    line.log(self.what, "in progress");
                }
            }
        }
    }

    /// The work turned out to have `total` parts in all.
    pub fn set_total(&mut self, total: u64) {
        match &mut self.output {
            Output::Bar(bar) => bar.set_length(total),
            Output::Log(log) => log.total = total,
        }
    }

    /// The work ended (finished, or stopped early: the last count says which).
    pub fn finish(self) {
        match self.output {
            Output::Bar(bar) => bar.abandon(),
            Output::Log(log) => log.line(Instant::now()).log(self.what, "ended"),
        }
    }
}

/// Progress as log lines: one when an interval has passed since the last one.
#[derive(Debug)]
struct IntervalLog {
    /// Done when reporting started: the rate counts only what this run did.
    done_at_start: u64,
    done: u64,
    total: u64,
    started: Instant,
    interval: Duration,
    next_line: Instant,
}

/// One progress report.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    done: u64,
    total: u64,
    /// Parts per second since reporting started.
    rate: f64,
    /// The time left at that rate; unknown before anything was done.
    eta: Option<Duration>,
}

impl IntervalLog {
    fn new(done: u64, total: u64, interval: Duration, now: Instant) -> Self {
        Self {
            done_at_start: done,
            done,
            total,
            started: now,
            interval,
            next_line: now + interval,
        }
    }

    /// Counts `count` more; returns a line when one is due.
    fn advance(&mut self, count: u64, now: Instant) -> Option<Line> {
        self.done = self.done.saturating_add(count);
        if now < self.next_line {
            return None;
        }
        // Skips intervals that passed without a call, so a stall is not followed by a burst.
        while self.next_line <= now {
            self.next_line += self.interval.max(Duration::from_millis(1));
        }
        Some(self.line(now))
    }

    fn line(&self, now: Instant) -> Line {
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        let done_here = self.done.saturating_sub(self.done_at_start) as f64;
        let rate = if elapsed > 0.0 {
            done_here / elapsed
        } else {
            0.0
        };
        let left = self.total.saturating_sub(self.done) as f64;
        let eta = (rate > 0.0).then(|| Duration::from_secs_f64(left / rate));
        Line {
            done: self.done,
            total: self.total,
            rate,
            eta,
        }
    }
}

impl Line {
    fn log(&self, what: &'static str, state: &'static str) {
        let percent = if self.total == 0 {
            100.0
        } else {
            (self.done as f64 * 100.0 / self.total as f64).min(100.0)
        };
        let eta = self
            .eta
            .map(|eta| humantime::format_duration(Duration::from_secs(eta.as_secs())).to_string())
            .unwrap_or_else(|| "unknown".to_owned());
        tracing::info!(
            done = self.done,
            total = self.total,
            percent = %format!("{percent:.1}"),
            per_second = %format!("{:.1}", self.rate),
            eta = %eta,
            "{what}: {state}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_due_once_per_interval_and_a_stall_does_not_cause_a_burst() {
        let start = Instant::now();
        let mut log = IntervalLog::new(0, 100, Duration::from_secs(10), start);
        assert_eq!(log.advance(5, start + Duration::from_secs(3)), None);
        let line = log
            .advance(5, start + Duration::from_secs(10))
            .expect("a line after one interval");
        assert_eq!((line.done, line.total), (10, 100));
        assert_eq!(log.advance(1, start + Duration::from_secs(15)), None);
        // Three intervals pass without a call: one line, then quiet until the next boundary.
        assert!(log.advance(1, start + Duration::from_secs(41)).is_some());
        assert_eq!(log.advance(1, start + Duration::from_secs(45)), None);
        assert!(log.advance(1, start + Duration::from_secs(50)).is_some());
    }

    #[test]
    fn rate_and_time_left_count_only_this_run() {
        let start = Instant::now();
        // Resumed at 40 of 100: 20 more in 10 s is 2 a second, and 40 left take 20 s.
        let mut log = IntervalLog::new(40, 100, Duration::from_secs(10), start);
        let line = log
            .advance(20, start + Duration::from_secs(10))
            .expect("a line after one interval");
        assert_eq!(line.done, 60);
        assert!((line.rate - 2.0).abs() < 1e-9, "{line:?}");
        assert_eq!(line.eta, Some(Duration::from_secs(20)));
    }

    #[test]
    fn the_time_left_is_unknown_until_something_is_done() {
        let start = Instant::now();
        let log = IntervalLog::new(0, 100, Duration::from_secs(10), start);
        let line = log.line(start + Duration::from_secs(5));
        assert_eq!(line.eta, None);
        assert_eq!(line.rate, 0.0);
    }
}
