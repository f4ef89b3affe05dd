//! What a person watches while the pipeline runs: the live status page at `/` of every stage's
//! `--metrics-listen`, loaded in a real browser (headless Chromium), and the Grafana dashboard,
//! whose every query must name a metric some stage really exposes.
//!
//! Chromium is required, not optional: `scripts/local-stack up` (and so CI) installs Debian's
//! `chromium`; a machine without it fails these tests with how to install it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use tokio_util::sync::{CancellationToken, DropGuard};
use userstream::config::{MetricsArgs, PostgresArgs, Secret};
use userstream::fetcher::{self, FetchOptions};
use userstream::normalize::{normalize, NormalizedUser};
use userstream::progress::ProgressArgs;
use userstream::store;

use crate::common::{self, TestDatabase};
use crate::harness::{header, produce, producer, sample_user, TestPipeline};

const DEADLINE: Duration = Duration::from_secs(90);

/// Users the fetch stage stores (one page).
const FETCHED: u32 = 25;

/// The page's viewport, and so the screenshot's size.
const WINDOW: (u32, u32) = (1280, 900);

/// Metrics that Prometheus makes itself when it scrapes, which no stage exposes.
const MADE_BY_PROMETHEUS: &[&str] = &["up"];

// ---- the pipeline being watched ----

/// Fetch, cdc and process on one test pipeline, each stage with a metrics server of its own. The
/// fetch stage stores into a database of its own, through one transient fault (a 503), so its
/// counters and a retry show; cdc and process carry the test's own users, so the test knows
/// what reached Cassandra.
struct WatchedPipeline {
    pipeline: TestPipeline,
    fetch: SocketAddr,
    cdc: SocketAddr,
    process: SocketAddr,
    /// The users stored so far, as Cassandra must come to hold them.
    expected: BTreeMap<String, NormalizedUser>,
    /// Stops the fetch stage's metrics server (the stage itself ran once and ended).
    _fetch_stage: DropGuard,
    _fetch_database: TestDatabase,
}

impl WatchedPipeline {
    async fn start(prefix: &str) -> anyhow::Result<Self> {
        let mut pipeline = TestPipeline::new(prefix).await?;
        let (fetch, cdc, process) = (free_address()?, free_address()?, free_address()?);
        let mut cdc_config = pipeline.cdc_config();
        cdc_config.metrics.listen = Some(cdc);
        pipeline.start_cdc_with(cdc_config);
        let mut processor_config = pipeline.processor_config();
        processor_config.metrics.listen = Some(process);
        pipeline.start_processor_with(processor_config);

        let fetch_database = TestDatabase::create(&format!("{prefix}_fetch")).await?;
        store::migrate(&mut store::connect(&Secret::new(fetch_database.url.clone())).await?)
            .await?;
        let fetch_stage = CancellationToken::new();
        let fetch_config = fetcher::Config {
            postgres: PostgresArgs {
                pg_url: Secret::new(fetch_database.url.clone()),
            },
            metrics: MetricsArgs {
                listen: Some(fetch),
            },
            options: FetchOptions {
                base_url: format!(
                    "{}/_fault/{}/status-503-x1",
                    common::randomuser_url(),
                    common::unique_name(prefix)
                ),
                count: FETCHED,
                seed: Some("status-page".to_owned()),
                nat: None,
                every: None,
                page_size: FETCHED,
                request_timeout: Duration::from_secs(10),
                max_attempts: 4,
            },
            progress: ProgressArgs::default(),
        };
        tokio::time::timeout(DEADLINE, fetcher::run(fetch_config, fetch_stage.clone()))
            .await
            .context("the fetch stage did not finish its page")?
            .context("the fetch stage failed")?;

        for (stage, address) in [("fetch", fetch), ("cdc", cdc), ("process", process)] {
            pipeline
                .eventually(&format!("{stage} is ready"), DEADLINE, || async move {
                    let status = reqwest::get(format!("http://{address}/healthz"))
                        .await?
                        .status();
                    Ok(status.is_success().then_some(()))
                })
                .await?;
        }
        Ok(Self {
            pipeline,
            fetch,
            cdc,
            process,
            expected: BTreeMap::new(),
            _fetch_stage: fetch_stage.drop_guard(),
            _fetch_database: fetch_database,
        })
    }

    /// Stores `count` more users and waits until Cassandra holds every user stored so far.
    async fn carry(&mut self, count: usize) -> anyhow::Result<()> {
        let first = self.expected.len();
        let users: Vec<_> = (first..first + count)
            .map(|n| sample_user(&format!("watched-{n}"), "Watched"))
            .collect();
        for (record, _) in &users {
            self.expected
                .insert(record.id.clone(), normalize(record)?.user);
        }
        self.pipeline.upsert(&users).await?;
        self.pipeline
            .wait_until_cassandra_holds(&self.expected, DEADLINE)
            .await
    }

    /// Produces one message that is not Avro and waits until it is dead-lettered; returns the
    /// reason it was dead-lettered for.
    async fn poison(&self) -> anyhow::Result<String> {
        produce(
            &producer()?,
            &self.pipeline.topic,
            None,
            "not-avro",
            Some(b"this is not Avro"),
            &[],
        )
        .await?;
        let letters = self
            .pipeline
            .eventually("the poison message is dead-lettered", DEADLINE, || async {
                let letters = self.pipeline.dead_letters().await?;
                Ok((!letters.is_empty()).then_some(letters))
            })
            .await?;
        header(&letters[0], "error_kind").context("a dead letter without error_kind")
    }

    fn page(address: SocketAddr) -> String {
        format!("http://{address}/")
    }
}

/// A port nothing listens on now, for a stage's metrics server.
fn free_address() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

// ---- the browser ----

/// Headless Chromium, one fresh profile per page load.
struct Browser {
    program: String,
}

impl Browser {
    fn find() -> anyhow::Result<Self> {
        let program = common::env_or("USERSTREAM_CHROMIUM", "chromium");
        let found = std::process::Command::new(&program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        ensure!(
            found,
            "these tests load the status page in headless Chromium, and `{program} --version` \
             does not run: install it with `apt-get install -y chromium` (scripts/local-stack up \
             does), or point USERSTREAM_CHROMIUM at a Chromium binary"
        );
        Ok(Self { program })
    }

    /// The page's DOM once its script has polled for `budget` of virtual time (Chromium runs
    /// the page's timers on a virtual clock that does not wait while requests are in flight, so
    /// a few seconds of polling take about as long as the requests do).
    async fn rendered(&self, url: &str, budget: Duration) -> anyhow::Result<RenderedPage> {
        let dom = self
            .run(&[
                format!("--virtual-time-budget={}", budget.as_millis()),
                "--dump-dom".to_owned(),
                url.to_owned(),
            ])
            .await?;
        let dom = String::from_utf8(dom).context("the DOM Chromium dumped is not UTF-8")?;
        Ok(RenderedPage { dom })
    }

    async fn run(&self, args: &[String]) -> anyhow::Result<Vec<u8>> {
        let profile = std::env::temp_dir().join(common::unique_name("userstream-chromium"));
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(&self.program)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .args(args)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await;
        let _ = std::fs::remove_dir_all(&profile);
        let output = output
            .context("Chromium did not finish within 60 s")?
            .with_context(|| format!("cannot run {}", self.program))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!("Chromium {args:?} failed ({}): {stderr}", output.status);
        }
        Ok(output.stdout)
    }
}

/// The DOM of the status page as the browser rendered it.
struct RenderedPage {
    dom: String,
}

impl RenderedPage {
    /// Attribute `name` of the element with id `id`.
    fn attribute(&self, id: &str, name: &str) -> Option<&str> {
        let at = self.dom.find(&format!(" id=\"{id}\""))?;
        let start = self.dom[..at].rfind('<')?;
        let tag = &self.dom[start..at + self.dom[at..].find('>')?];
        let value_at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let value = &tag[value_at..];
        Some(&value[..value.find('"')?])
    }

    /// The text of the element `id` up to its first child element.
    fn text(&self, id: &str) -> Option<&str> {
        let at = self.dom.find(&format!(" id=\"{id}\""))?;
        let text = &self.dom[at + self.dom[at..].find('>')? + 1..];
        Some(&text[..text.find('<')?])
    }

    /// The number the element `id` shows (its raw value, `data-value`).
    fn number(&self, id: &str) -> anyhow::Result<f64> {
        let value = self
            .attribute(id, "data-value")
            .with_context(|| format!("the page has no #{id} with a data-value"))?;
        value
            .parse()
            .with_context(|| format!("#{id} shows {value:?}, not a number"))
    }

    /// Fails unless the page polled at least twice (so rates could be computed) and saw the
    /// process healthy.
    fn ensure_polled_and_healthy(&self) -> anyhow::Result<()> {
        let polls = self.number("polls")?;
        ensure!(polls >= 2.0, "the page polled {polls} times");
        let health = self.attribute("health", "data-state");
        ensure!(health == Some("ok"), "the page shows health {health:?}");
        let error = self.text("error");
        ensure!(error == Some(""), "the page shows an error: {error:?}");
        Ok(())
    }
}

/// One Chromium left running, driven over the DevTools protocol on a pipe
/// (`--remote-debugging-pipe`: JSON messages separated by NUL bytes, commands on the browser's
/// descriptor 3, answers on 4), so a test can watch one page load refresh in real time.
struct LiveBrowser {
    child: tokio::process::Child,
    commands: tokio::process::ChildStdin,
    answers: tokio::io::BufReader<tokio::process::ChildStdout>,
    next_id: u64,
    profile: PathBuf,
}

impl LiveBrowser {
    fn start(browser: &Browser) -> anyhow::Result<Self> {
        let profile = std::env::temp_dir().join(common::unique_name("userstream-chromium"));
        // The shell hands the browser this process's pipes as its descriptors 3 and 4.
        let mut child = tokio::process::Command::new("bash")
            .args([
                "-c",
                r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#,
                &browser.program,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", browser.program))?;
        let commands = child.stdin.take().context("no pipe to the browser")?;
        let answers = child.stdout.take().context("no pipe from the browser")?;
        Ok(Self {
            child,
            commands,
            answers: tokio::io::BufReader::new(answers),
            next_id: 0,
            profile,
        })
    }

    /// Sends one command (to the page `session`, or to the browser) and returns its result.
    async fn call(
        &mut self,
        method: &str,
        params: serde_json::Value,
        session: Option<&str>,
    ) -> anyhow::Result<serde_json::Value> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        self.next_id += 1;
        let id = self.next_id;
        let mut command = serde_json::json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            command["sessionId"] = session.into();
        }
        let mut bytes = serde_json::to_vec(&command)?;
        bytes.push(0);
        self.commands.write_all(&bytes).await?;
        self.commands.flush().await?;
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let mut message = Vec::new();
                if self.answers.read_until(0, &mut message).await? == 0 {
                    bail!("the browser closed its DevTools pipe");
                }
                message.pop();
                let message: serde_json::Value = serde_json::from_slice(&message)?;
                // Events (no id) and answers to earlier commands are not this answer.
                if message["id"] == id {
                    return Ok(message);
                }
            }
        })
        .await
        .with_context(|| format!("the browser did not answer {method} within 30 s"))??;
        if let Some(error) = answer.get("error") {
            bail!("the browser refused {method}: {error}");
        }
        Ok(answer["result"].clone())
    }

    /// Opens `url` in a new tab; returns the session that talks to it.
    async fn open(&mut self, url: &str) -> anyhow::Result<String> {
        let target = self
            .call("Target.createTarget", serde_json::json!({"url": url}), None)
            .await?;
        let attached = self
            .call(
                "Target.attachToTarget",
                serde_json::json!({"targetId": target["targetId"], "flatten": true}),
                None,
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .context("Target.attachToTarget without a sessionId")?
            .to_owned();
        // The page's viewport is the window less the browser's own bars; a screenshot is of the
        // viewport, so it is set to the whole window.
        self.call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({
                "width": WINDOW.0,
                "height": WINDOW.1,
                "deviceScaleFactor": 1,
                "mobile": false,
            }),
            Some(&session),
        )
        .await?;
        Ok(session)
    }

    /// The page's DOM as it is now.
    async fn dom(&mut self, session: &str) -> anyhow::Result<RenderedPage> {
        let evaluated = self
            .call(
                "Runtime.evaluate",
                serde_json::json!({
                    "expression": "document.documentElement.outerHTML",
                    "returnByValue": true,
                }),
                Some(session),
            )
            .await?;
        let dom = evaluated["result"]["value"]
            .as_str()
            .context("Runtime.evaluate returned no DOM")?;
        Ok(RenderedPage {
            dom: dom.to_owned(),
        })
    }

    /// A PNG of the page as it is now.
    async fn screenshot(&mut self, session: &str) -> anyhow::Result<Vec<u8>> {
        use base64::Engine as _;
        let captured = self
            .call(
                "Page.captureScreenshot",
                serde_json::json!({"format": "png"}),
                Some(session),
            )
            .await?;
        let data = captured["data"]
            .as_str()
            .context("Page.captureScreenshot returned no data")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
    }

    async fn close(mut self) -> anyhow::Result<()> {
        let closed = self
            .call("Browser.close", serde_json::json!({}), None)
            .await;
        let exited = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        let _ = std::fs::remove_dir_all(&self.profile);
        closed?;
        exited.context("the browser did not exit within 30 s")??;
        Ok(())
    }
}

/// The element id the page gives a breakdown row (`dead-letters-`, `retries-`) of `key`: each
/// run of characters other than ASCII letters and digits becomes one `-`.
fn row_id(prefix: &str, key: &str) -> String {
    let mut id = prefix.to_owned();
    let mut in_run = false;
    for c in key.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c);
            in_run = false;
        } else if !in_run {
            id.push('-');
            in_run = true;
        }
    }
    id
}

// ---- the tests ----

/// Each stage's page in a browser: the numbers it renders are the pipeline's; one load of it,
/// watched in real time, refreshes by itself and shows its counters grow and its rates leave
/// zero as changes flow; and it paints something worth looking at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_the_running_pipelines_numbers_in_a_browser() -> anyhow::Result<()>
{
    let browser = Browser::find()?;
    let mut watched = WatchedPipeline::start("status_page").await?;
    watched.carry(10).await?;
    let reason = watched.poison().await?;
    let budget = Duration::from_secs(6);

    // Every stage serves the page; each shows its own stage's figures.
    let fetch = browser
        .rendered(&WatchedPipeline::page(watched.fetch), budget)
        .await?;
    fetch.ensure_polled_and_healthy()?;
    let accepted = fetch.number("fetch-accepted")?;
    ensure!(
        accepted >= f64::from(FETCHED),
        "the fetch page shows {accepted} records accepted, the stage accepted {FETCHED}"
    );
    let retries = fetch.number(&row_id("retries-", "fetch page"))?;
    ensure!(
        retries >= 1.0,
        "the fetch page shows {retries} retries of a page that failed once"
    );
    let cdc = browser
        .rendered(&WatchedPipeline::page(watched.cdc), budget)
        .await?;
    cdc.ensure_polled_and_healthy()?;
    let produced = cdc.number("cdc-produced")?;
    ensure!(produced >= 10.0, "the cdc page shows {produced} produced");
    cdc.number("cdc-backlog")?;

    // One load of the process page, watched in real time: it refreshes by itself, and as
    // more changes flow its counters grow and its rates leave zero.
    let mut live = LiveBrowser::start(&browser)?;
    let url = WatchedPipeline::page(watched.process);
    let session = live.open(&url).await?;
    let live = tokio::sync::Mutex::new(live);
    let before = watched
        .pipeline
        .eventually("the live page polled twice", DEADLINE, || async {
            let page = live.lock().await.dom(&session).await?;
            Ok((page.number("polls").unwrap_or(0.0) >= 2.0).then_some(page))
        })
        .await?;
    before.ensure_polled_and_healthy()?;
    let polls_before = before.number("polls")?;
    let written_before = before.number("process-written")?;
    ensure!(
        written_before >= 10.0,
        "the process page shows {written_before} written; 10 users reached Cassandra"
    );
    let dead = before.number(&row_id("dead-letters-", &reason))?;
    ensure!(
        dead >= 1.0,
        "the page shows {dead} dead letters of reason {reason}"
    );
    ensure!(
        before.attribute("stage-process", "data-present") == Some("true"),
        "the process page says no processor runs"
    );

    let writer = TrickleWriter::start(&watched.pipeline.database.url).await?;
    let after = watched
        .pipeline
        .eventually(
            "the same page load shows 10 more users written, at a rate",
            DEADLINE,
            || async {
                let page = live.lock().await.dom(&session).await?;
                let flowing = page.number("process-written")? >= written_before + 10.0
                    && page.number("throughput-cdc").unwrap_or(0.0) > 0.0
                    && page.number("throughput-process").unwrap_or(0.0) > 0.0;
                Ok(flowing.then_some(page))
            },
        )
        .await?;
    // The screenshot is of the page as it refreshes while records flow.
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let png = live.lock().await.screenshot(&session).await?;
    std::fs::write(&screenshot, &png)?;
    ensure_screenshot_shows_a_page(&screenshot)?;
    let trickled = writer.stop().await?;
    live.into_inner().close().await?;
    after.ensure_polled_and_healthy()?;
    let polls_after = after.number("polls")?;
    ensure!(
        polls_after > polls_before,
        "the page did not refresh: poll {polls_before}, then {polls_after}"
    );
    let produced_after = after.number("cdc-produced")?;
    ensure!(
        produced_after >= produced + 10.0,
        "10 more changes were produced, and the page went from {produced} to {produced_after}"
    );
    eprintln!(
        "the page went from {written_before} to {} written in {} polls, at {} records/s, \
         while {trickled} users trickled in",
        after.number("process-written")?,
        polls_after - polls_before,
        after.number("throughput-process")?,
    );

    eprintln!("screenshot: {}", screenshot.display());
    Ok(())
}

/// The dashboard queries only what the stages expose: after a run that retried, dead-lettered
/// and carried changes through every stage, each metric any panel queries is on some stage's
/// `/metrics` (a misspelt or removed one never shows, and the test fails naming it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exposed_by_a_stage() -> anyhow::Result<()> {
    let queried = dashboard_metrics()?;
    ensure!(
        queried.len() >= 10,
        "the dashboard queries only {queried:?}"
    );
    let mut watched = WatchedPipeline::start("status_dash").await?;
    watched.carry(5).await?;
    watched.poison().await?;

    let missing_now = Mutex::new(BTreeSet::new());
    let result = watched
        .pipeline
        .eventually(
            "every metric the dashboard queries is exposed",
            DEADLINE,
            || async {
                let mut exposed = BTreeSet::new();
                for address in [watched.fetch, watched.cdc, watched.process] {
                    let text = reqwest::get(format!("http://{address}/metrics"))
                        .await?
                        .error_for_status()?
                        .text()
                        .await?;
                    exposed.extend(exposed_metrics(&text));
                }
                let missing: BTreeSet<String> = queried
                    .iter()
                    .filter(|name| !exposed.contains(*name))
                    .filter(|name| !MADE_BY_PROMETHEUS.contains(&name.as_str()))
                    .cloned()
                    .collect();
                let done = missing.is_empty();
                *missing_now.lock().unwrap_or_else(|e| e.into_inner()) = missing;
                Ok(done.then_some(()))
            },
        )
        .await;
    let missing = missing_now.into_inner().unwrap_or_else(|e| e.into_inner());
    result.with_context(|| {
        format!("deploy/grafana/userstream.json queries {missing:?}, which no stage exposes")
    })
}

/// The metric-name reader the dashboard test relies on: functions, aggregations, label
/// matchers and grouping labels, ranges, strings and Grafana variables are not metrics.
#[test]
fn metric_names_are_read_from_promql() {
    let names = |expr: &str| metric_names(expr).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (le, op) (rate(userstream_processor_write_seconds_bucket{op=~"up.*"}[$__rate_interval])))"#
        ),
        ["userstream_processor_write_seconds_bucket"]
    );
    assert_eq!(
        names(
            r#"sum without (instance) (increase(a_total[5m])) / on(job) group_left(stage) b_seconds > bool 0 or up{job="x"}"#
        ),
        ["a_total", "b_seconds", "up"]
    );
    assert_eq!(
        names(r#"label_replace(c, "dst", "$1", "src", "(.*)")"#),
        ["c"]
    );
    assert_eq!(names("max(d) offset 5m"), ["d"]);
}

// ---- reading the dashboard and the exposition ----

/// The metrics every `expr` of the Grafana dashboard queries.
fn dashboard_metrics() -> anyhow::Result<BTreeSet<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/userstream.json");
    let dashboard: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", path.display()))?;
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    ensure!(!exprs.is_empty(), "{} has no expr", path.display());
    Ok(exprs.iter().flat_map(|expr| metric_names(expr)).collect())
}

fn collect_exprs(value: &serde_json::Value, exprs: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(members) => {
            for (key, member) in members {
                match (key.as_str(), member) {
                    ("expr", serde_json::Value::String(expr)) => exprs.push(expr.clone()),
                    _ => collect_exprs(member, exprs),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| collect_exprs(item, exprs)),
        _ => {}
    }
}

/// The metric names of a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    // Keywords followed by a parenthesised list of labels.
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const OPERATORS: &[&str] = &[
        "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut labels_follow = false;
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        if c == '"' || c == '\'' || c == '`' {
            at = past_string(&chars, at);
        } else if c == '{' || c == '[' || (c == '(' && labels_follow) {
            let close = match c {
                '{' => '}',
                '[' => ']',
                _ => ')',
            };
            labels_follow = false;
            at += 1;
            while at < chars.len() && chars[at] != close {
                at = if matches!(chars[at], '"' | '\'' | '`') {
                    past_string(&chars, at)
                } else {
                    at + 1
                };
            }
            at += 1;
        } else if c.is_ascii_digit() || c == '.' {
            while at < chars.len() && (chars[at].is_ascii_alphanumeric() || chars[at] == '.') {
                at += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' || c == '$' {
            let start = at;
            at += 1;
            while at < chars.len()
                && (chars[at].is_ascii_alphanumeric() || matches!(chars[at], '_' | ':'))
            {
                at += 1;
            }
            let word: String = chars[start..at].iter().collect();
            let next = chars[at..].iter().find(|c| !c.is_whitespace());
            let lower = word.to_ascii_lowercase();
            if LABEL_LISTS.contains(&lower.as_str()) {
                labels_follow = true;
            } else if !(word.starts_with('$')
                || next == Some(&'(')
                || AGGREGATIONS.contains(&lower.as_str())
                || OPERATORS.contains(&lower.as_str()))
            {
                names.insert(word);
            }
        } else {
            at += 1;
        }
    }
    names
}

/// The index just past the string literal that starts at `start`.
fn past_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut at = start + 1;
    while at < chars.len() && chars[at] != quote {
        at += if chars[at] == '\\' && quote != '`' {
            2
        } else {
            1
        };
    }
    at + 1
}

/// The sample names of a Prometheus text exposition (a histogram's as `_bucket`, `_sum` and
/// `_count`, as queries name them).
fn exposed_metrics(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A screenshot of a rendered page, not a blank or broken one: a PNG of the window's size,
/// with the many colours of text, badges and bars.
fn ensure_screenshot_shows_a_page(path: &Path) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(path).with_context(|| format!("no screenshot at {}", path.display()))?;
    ensure!(
        bytes.len() > 10_000,
        "the screenshot has only {} bytes",
        bytes.len()
    );
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().context("the screenshot is not a PNG")?;
    let mut pixels = vec![0; reader.output_buffer_size().context("a PNG too large")?];
    let frame = reader
        .next_frame(&mut pixels)
        .context("the screenshot does not decode")?;
    ensure!(
        (frame.width, frame.height) == WINDOW,
        "the screenshot is {}x{}, the window {WINDOW:?}",
        frame.width,
        frame.height
    );
    let channels = frame.color_type.samples();
    let colours: BTreeSet<&[u8]> = pixels[..frame.buffer_size()]
        .chunks_exact(channels)
        .collect();
    ensure!(
        colours.len() >= 64,
        "the screenshot has only {} colours: the page did not render",
        colours.len()
    );
    Ok(())
}

/// Stores one user every 100 ms until stopped, so changes flow while the page refreshes.
struct TrickleWriter {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<usize>>,
}

impl TrickleWriter {
    async fn start(database_url: &str) -> anyhow::Result<Self> {
        let mut pg = store::connect(&Secret::new(database_url.to_owned())).await?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut written = 0;
            while !stopped.is_cancelled() {
                let user = sample_user(&format!("trickle-{written}"), "Trickle");
                store::upsert_page(&mut pg, &[user]).await?;
                written += 1;
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    () = stopped.cancelled() => {}
                }
            }
            Ok(written)
        });
        Ok(Self { stop, task })
    }

    async fn stop(self) -> anyhow::Result<usize> {
        self.stop.cancel();
        self.task.await?
    }
}
