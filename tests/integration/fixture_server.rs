//! The randomuser fixture server (`userstream fixture-server`) at `USERSTREAM_RANDOMUSER_URL`:
//! the API's paging, seeds and filters over the captured records, and every misbehaviour.
//! The last tests start servers of their own in-process (for `--fault` and start-up errors).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use userstream::fixture_server::{Config, FixtureServer, API_ERROR_MESSAGE};

use crate::common::{randomuser_url, unique_name};

/// The captured records, as SOURCES.md counts them.
const TOTAL_RECORDS: usize = 2848;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/randomuser")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a default reqwest client builds")
}

/// `GET {base}{path_and_query}` as JSON, failing on anything but a 200 with JSON.
async fn get_json(base: &str, path_and_query: &str) -> anyhow::Result<Value> {
    let url = format!("{base}{path_and_query}");
    let response = client()
        .get(&url)
        .send()
        .await
        .with_context(|| url.clone())?;
    let status = response.status();
    let body = response.text().await.with_context(|| url.clone())?;
    ensure!(status == 200, "GET {url}: status {status}, body {body}");
    serde_json::from_str(&body).with_context(|| format!("GET {url}: body is not JSON"))
}

fn results(page: &Value) -> anyhow::Result<&Vec<Value>> {
    page["results"]
        .as_array()
        .with_context(|| format!("no results array in {page}"))
}

/// Pages through everything `query` selects with `per_page` records a page, until a page is empty.
async fn all_pages(query: &str, per_page: usize) -> anyhow::Result<Vec<Value>> {
    let base = randomuser_url();
    let mut records = Vec::new();
    for page in 1.. {
        let body = get_json(
            &base,
            &format!("/api/?{query}&results={per_page}&page={page}"),
        )
        .await?;
        ensure!(
            body["info"]["page"] == page,
            "info.page in {}",
            body["info"]
        );
        let batch = results(&body)?;
        if batch.is_empty() {
            break;
        }
        ensure!(
            batch.len() <= per_page,
            "page {page} has {} records",
            batch.len()
        );
        records.extend(batch.iter().cloned());
    }
    Ok(records)
}

/// Every record of every captured file, parsed by the test itself.
fn captured_records() -> anyhow::Result<Vec<Value>> {
    let mut records = Vec::new();
    for entry in std::fs::read_dir(fixtures_dir())? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let text = std::fs::read_to_string(&path)?;
            let document: Value = serde_json::from_str(&text)?;
            let list = match document {
                Value::Array(list) => list,
                mut object => match object["results"].take() {
                    Value::Array(list) => list,
                    _ => bail!("{} has no results array", path.display()),
                },
            };
            records.extend(list);
        }
    }
    Ok(records)
}

/// SOURCES.md's "Records per `nat`" line, as a map.
fn documented_nat_totals() -> anyhow::Result<BTreeMap<String, usize>> {
    let sources = std::fs::read_to_string(fixtures_dir().join("SOURCES.md"))?;
    let line = sources
        .lines()
        .find(|line| line.starts_with("Records per `nat`"))
        .context("SOURCES.md has no \"Records per `nat`\" line")?;
    let list = line
        .split_once(": ")
        .and_then(|(_, rest)| rest.split(" (").next())
        .context("unexpected format of the nat line")?;
    list.split(", ")
        .map(|pair| {
            let (nat, count) = pair.split_once(' ').context(pair.to_owned())?;
            Ok((nat.to_owned(), count.parse()?))
        })
        .collect()
}

fn canonical(record: &Value) -> String {
    record.to_string()
}

#[tokio::test]
async fn healthz_answers_ok() -> anyhow::Result<()> {
    let response = client()
        .get(format!("{}/healthz", randomuser_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    Ok(())
}

#[tokio::test]
async fn paging_with_one_seed_returns_every_captured_record_exactly_once() -> anyhow::Result<()> {
    let seed = unique_name("seed");
    let served = all_pages(&format!("seed={seed}"), 250).await?;
    assert_eq!(served.len(), TOTAL_RECORDS);
    let distinct: HashSet<String> = served.iter().map(canonical).collect();
    assert_eq!(
        distinct.len(),
        TOTAL_RECORDS,
        "some record was served twice"
    );

    let captured: HashSet<String> = captured_records()?.iter().map(canonical).collect();
    assert_eq!(captured.len(), TOTAL_RECORDS);
    assert_eq!(
        distinct, captured,
        "the served records differ from the captured ones"
    );
    Ok(())
}

#[tokio::test]
async fn a_seed_fixes_the_order_and_other_seeds_change_it() -> anyhow::Result<()> {
    let base = randomuser_url();
    let seed = unique_name("seed");
    let first = get_json(&base, &format!("/api/?results=5000&seed={seed}")).await?;
    let again = get_json(&base, &format!("/api/?results=5000&seed={seed}")).await?;
    assert_eq!(results(&first)?.len(), TOTAL_RECORDS);
    assert_eq!(first, again, "the same seed gave a different response");
    assert_eq!(first["info"]["seed"], seed.as_str());
    assert_eq!(first["info"]["results"], TOTAL_RECORDS);
    assert_eq!(first["info"]["version"], "1.4");

    let other = get_json(&base, "/api/?results=5000&seed=some-other-seed").await?;
    let order = |page: &Value| -> anyhow::Result<Vec<String>> {
        Ok(results(page)?.iter().map(canonical).collect())
    };
    let (mut a, mut b) = (order(&first)?, order(&other)?);
    assert_ne!(a, b, "two seeds gave the same order");
    a.sort();
    b.sort();
    assert_eq!(a, b, "two seeds gave different record sets");

    let page_two = get_json(&base, &format!("/api/?results=7&page=2&seed={seed}")).await?;
    assert_eq!(results(&page_two)?[..], results(&first)?[7..14]);
    Ok(())
}

#[tokio::test]
async fn without_a_seed_the_server_picks_one_and_reports_it() -> anyhow::Result<()> {
    let base = randomuser_url();
    let page = get_json(&base, "/api/?results=20").await?;
    let seed = page["info"]["seed"]
        .as_str()
        .context("info.seed is not a string")?;
    assert!(!seed.is_empty());
    let replay = get_json(&base, &format!("/api/?results=20&seed={seed}")).await?;
    assert_eq!(results(&replay)?, results(&page)?);

    let default = get_json(&base, "/api/").await?;
    assert_eq!(results(&default)?.len(), 1, "results defaults to 1");
    assert_eq!(default["info"]["page"], 1);
    Ok(())
}

#[tokio::test]
async fn the_api_answers_on_every_path_form() -> anyhow::Result<()> {
    let base = randomuser_url();
    for path in ["/api", "/api/", "/api/1.3/", "/api/1.0"] {
        let page = get_json(&base, &format!("{path}?results=3&seed=paths")).await?;
        assert_eq!(results(&page)?.len(), 3, "{path}");
    }
    let response = client().get(format!("{base}/nowhere")).send().await?;
    assert_eq!(response.status(), 404);
    Ok(())
}

#[tokio::test]
async fn nat_filter_matches_the_documented_totals() -> anyhow::Result<()> {
    let totals = documented_nat_totals()?;
    assert_eq!(totals.len(), 21);
    let seed = unique_name("nat");
    let mut served_total = 0;
    for (nat, expected) in &totals {
        let lower = nat.to_lowercase();
        let records = all_pages(&format!("seed={seed}&nat={lower}"), 40).await?;
        assert_eq!(records.len(), *expected, "records with nat {nat}");
        for record in &records {
            assert_eq!(record["nat"], nat.as_str(), "nat={lower} served {record}");
        }
        served_total += records.len();
    }
    let without_nat = captured_records()?
        .iter()
        .filter(|record| record.get("nat").is_none())
        .count();
    assert_eq!(served_total + without_nat, TOTAL_RECORDS);

    let two = all_pages(&format!("seed={seed}&nat=US,gb"), 5000).await?;
    assert_eq!(two.len(), totals["US"] + totals["GB"]);
    assert!(two
        .iter()
        .all(|record| record["nat"] == "US" || record["nat"] == "GB"));
    Ok(())
}

fn fields_of(record: &Value) -> anyhow::Result<(Vec<String>, bool)> {
    let object = record.as_object().context("record is not an object")?;
    match object.get("user").and_then(Value::as_object) {
        Some(user) => Ok((user.keys().cloned().collect(), true)),
        None => Ok((object.keys().cloned().collect(), false)),
    }
}

#[tokio::test]
async fn inc_and_exc_select_top_level_fields_also_inside_legacy_wrappers() -> anyhow::Result<()> {
    let base = randomuser_url();
    let seed = unique_name("fields");
    let all = get_json(&base, &format!("/api/?results=5000&seed={seed}")).await?;
    let included = get_json(
        &base,
        &format!("/api/?results=5000&seed={seed}&inc=name,NAT"),
    )
    .await?;
    let excluded = get_json(
        &base,
        &format!("/api/?results=5000&seed={seed}&exc=login,id,email"),
    )
    .await?;
    let (all, included, excluded) = (results(&all)?, results(&included)?, results(&excluded)?);
    assert_eq!(included.len(), TOTAL_RECORDS);
    assert_eq!(excluded.len(), TOTAL_RECORDS);

    let mut legacy = 0;
    for ((full, inc), exc) in all.iter().zip(included).zip(excluded) {
        let (full_fields, is_legacy) = fields_of(full)?;
        let (inc_fields, _) = fields_of(inc)?;
        let (exc_fields, _) = fields_of(exc)?;
        let expect_inc: Vec<&String> = full_fields
            .iter()
            .filter(|field| *field == "name" || *field == "nat")
            .collect();
        let expect_exc: Vec<&String> = full_fields
            .iter()
            .filter(|field| !["login", "id", "email"].contains(&field.as_str()))
            .collect();
        assert_eq!(
            inc_fields.iter().collect::<Vec<_>>(),
            expect_inc,
            "inc on {full}"
        );
        assert_eq!(
            exc_fields.iter().collect::<Vec<_>>(),
            expect_exc,
            "exc on {full}"
        );
        if is_legacy {
            legacy += 1;
            let user = &inc["user"];
            assert_eq!(user["name"], full["user"]["name"]);
            for wrapper in ["seed", "version"] {
                assert_eq!(
                    inc.get(wrapper),
                    full.get(wrapper),
                    "wrapper {wrapper} kept"
                );
            }
        } else if let Some(name) = full.get("name") {
            assert_eq!(&inc["name"], name);
        }
    }
    assert_eq!(legacy, 1001 + 10 + 6, "legacy records (0.8, 0.3.2, 2013)");
    Ok(())
}

#[tokio::test]
async fn noinfo_leaves_out_info() -> anyhow::Result<()> {
    let page = get_json(&randomuser_url(), "/api/?results=2&noinfo").await?;
    assert!(page.get("info").is_none(), "{page}");
    assert_eq!(results(&page)?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn records_are_served_byte_for_byte() -> anyhow::Result<()> {
    let response = client()
        .get(format!("{}/api/?results=5000&seed=bytes", randomuser_url()))
        .send()
        .await?;
    let body = response.text().await?;
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures_dir())? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        // The one-record captures: their record is everything inside the results brackets.
        if !name.contains("-results1-") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let start = text.find('[').context("no [")? + 1;
        let end = text.rfind(']').context("no ]")?;
        let raw = text[start..end].trim();
        assert!(body.contains(raw), "{name}: record not served verbatim");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} one-record captures found");
    assert!(body.contains("\r\n"), "CRLF line ends were lost");
    assert!(body.contains("\\u00"), "\\u escapes were lost");
    Ok(())
}

#[tokio::test]
async fn bad_numbers_are_refused_with_the_apis_error_shape() -> anyhow::Result<()> {
    let base = randomuser_url();
    for (query, mentions) in [
        ("results=5001", "results"),
        ("results=100000", "results"),
        ("results=0", "results"),
        ("results=many", "results"),
        ("page=0", "page"),
        ("page=-3", "page"),
    ] {
        let response = client().get(format!("{base}/api/?{query}")).send().await?;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await?;
        let message = body["error"].as_str().context("no error message")?;
        assert!(message.contains(mentions), "{query}: {message}");
    }
    let max = get_json(&base, "/api/?results=5000&seed=max").await?;
    assert_eq!(results(&max)?.len(), TOTAL_RECORDS);
    Ok(())
}

#[tokio::test]
async fn a_page_past_the_end_is_empty() -> anyhow::Result<()> {
    let page = get_json(&randomuser_url(), "/api/?results=1000&page=4&seed=end").await?;
    assert_eq!(results(&page)?.len(), 0);
    let huge = get_json(
        &randomuser_url(),
        "/api/?results=5000&page=18446744073709551615",
    )
    .await?;
    assert_eq!(results(&huge)?.len(), 0);
    Ok(())
}

// ---- misbehaviour ----

fn fault_url(scenario: &str, spec: &str, query: &str) -> String {
    format!("{}/_fault/{scenario}/{spec}/api/?{query}", randomuser_url())
}

/// What a client made of one response.
#[derive(Debug, PartialEq)]
enum Outcome {
    Records(usize),
    Status(u16),
    Html,
    Unparseable,
    ErrorBody,
    Dropped,
}

async fn outcome(url: &str) -> Outcome {
    let response = match client().get(url).send().await {
        Ok(response) => response,
        Err(_) => return Outcome::Dropped,
    };
    let status = response.status().as_u16();
    let html = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    let Ok(body) = response.bytes().await else {
        return Outcome::Dropped;
    };
    if status != 200 {
        return Outcome::Status(status);
    }
    if html {
        return Outcome::Html;
    }
    match serde_json::from_slice::<Value>(&body) {
        Err(_) => Outcome::Unparseable,
        Ok(value) if value.get("error").is_some() => Outcome::ErrorBody,
        Ok(value) => Outcome::Records(value["results"].as_array().map_or(0, Vec::len)),
    }
}

#[tokio::test]
async fn status_faults_send_the_apis_error_body_as_json() -> anyhow::Result<()> {
    for (spec, status) in [
        ("status-500", 500),
        ("status-503", 503),
        ("error-body", 200),
    ] {
        let scenario = unique_name(spec);
        let response = client()
            .get(fault_url(&scenario, spec, "results=5"))
            .send()
            .await?;
        assert_eq!(response.status(), status, "{spec}");
        let content_type = response.headers()["content-type"].to_str()?.to_owned();
        assert!(
            content_type.starts_with("application/json"),
            "{spec}: {content_type}"
        );
        let body: Value = response.json().await?;
        assert_eq!(
            body,
            serde_json::json!({ "error": API_ERROR_MESSAGE }),
            "{spec}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn html_fault_sends_an_html_page() -> anyhow::Result<()> {
    let response = client()
        .get(fault_url(&unique_name("html"), "html", "results=5"))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str()?.to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let body = response.text().await?;
    assert!(body.contains("<html"), "{body}");
    assert!(serde_json::from_str::<Value>(&body).is_err());
    Ok(())
}

#[tokio::test]
async fn truncated_fault_cuts_the_real_body_so_it_cannot_parse() -> anyhow::Result<()> {
    let query = "results=50&seed=truncation";
    let response = client()
        .get(fault_url(&unique_name("truncated"), "truncated", query))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str()?.to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let cut = response.text().await?;
    assert!(
        serde_json::from_str::<Value>(&cut).is_err(),
        "truncated body parsed"
    );

    let whole = client()
        .get(format!("{}/api/?{query}", randomuser_url()))
        .send()
        .await?
        .text()
        .await?;
    assert!(whole.starts_with(&cut), "not a prefix of the real body");
    assert!(cut.len() < whole.len() && cut.len() >= whole.len() / 3);
    Ok(())
}

#[tokio::test]
async fn slow_fault_answers_normally_after_its_delay() -> anyhow::Result<()> {
    let delay = Duration::from_millis(1200);
    let started = Instant::now();
    let result = outcome(&fault_url(&unique_name("slow"), "slow-1200ms", "results=3")).await;
    let elapsed = started.elapsed();
    assert_eq!(result, Outcome::Records(3));
    assert!(
        elapsed >= delay,
        "answered after {elapsed:?}, before the {delay:?} delay"
    );
    Ok(())
}

#[tokio::test]
async fn close_fault_drops_the_connection_without_a_response() -> anyhow::Result<()> {
    let url = fault_url(&unique_name("close"), "close", "results=3");
    let error = client()
        .get(&url)
        .send()
        .await
        .err()
        .context("the request got a response")?;
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");

    // On the wire: the server sends not a single byte before closing.
    let authority = randomuser_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let path = format!("/_fault/{}/close/api/", unique_name("close_raw"));
    let mut stream = tokio::net::TcpStream::connect(&authority).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await?;
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received))
        .await
        .context("the server kept the connection open")?;
    assert!(
        read.is_err() || received.is_empty(),
        "received {:?}",
        String::from_utf8_lossy(&received)
    );
    Ok(())
}

#[tokio::test]
async fn every_fault_recovers_after_its_count() -> anyhow::Result<()> {
    let cases = [
        ("status-500-x2", Outcome::Status(500)),
        ("status-503-x2", Outcome::Status(503)),
        ("html-x2", Outcome::Html),
        ("truncated-x2", Outcome::Unparseable),
        ("error-body-x2", Outcome::ErrorBody),
        ("close-x2", Outcome::Dropped),
        ("slow-10ms-x2", Outcome::Records(4)),
    ];
    for (spec, misbehaviour) in cases {
        let scenario = unique_name("recover");
        let url = fault_url(&scenario, spec, "results=4");
        for attempt in 1..=2 {
            assert_eq!(
                outcome(&url).await,
                misbehaviour,
                "{spec} attempt {attempt}"
            );
        }
        for attempt in 3..=4 {
            assert_eq!(
                outcome(&url).await,
                Outcome::Records(4),
                "{spec} attempt {attempt}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn scenarios_are_counted_separately() -> anyhow::Result<()> {
    let (first, second) = (unique_name("scenario"), unique_name("scenario"));
    let spec = "status-503-x1";
    assert_eq!(
        outcome(&fault_url(&first, spec, "")).await,
        Outcome::Status(503)
    );
    assert_eq!(
        outcome(&fault_url(&first, spec, "")).await,
        Outcome::Records(1)
    );
    assert_eq!(
        outcome(&fault_url(&second, spec, "")).await,
        Outcome::Status(503)
    );
    Ok(())
}

#[tokio::test]
async fn a_malformed_fault_spec_is_refused_naming_it() -> anyhow::Result<()> {
    for spec in ["status-418", "slow-soon", "close-x0"] {
        let response = client()
            .get(fault_url(&unique_name("bad"), spec, ""))
            .send()
            .await?;
        assert_eq!(response.status(), 400, "{spec}");
        let body: Value = response.json().await?;
        let message = body["error"].as_str().context("no error message")?;
        assert!(message.contains(spec), "{spec}: {message}");
    }
    Ok(())
}

// ---- servers of the test's own ----

fn config(fixtures_dir: PathBuf, fault: Option<&str>) -> anyhow::Result<Config> {
    Ok(Config {
        listen: "127.0.0.1:0".parse()?,
        fixtures_dir,
        fault: fault.map(str::parse).transpose()?,
    })
}

#[tokio::test]
async fn the_fault_flag_applies_to_every_request_but_health() -> anyhow::Result<()> {
    let server = FixtureServer::start(&config(fixtures_dir(), Some("status-503-x2"))?).await?;
    assert_eq!(server.record_count(), TOTAL_RECORDS);
    let api = format!("{}/api/?results=2", server.url());
    assert_eq!(outcome(&api).await, Outcome::Status(503));
    let health = client()
        .get(format!("{}/healthz", server.url()))
        .send()
        .await?;
    assert_eq!(health.status(), 200);
    assert_eq!(outcome(&api).await, Outcome::Status(503));
    assert_eq!(outcome(&api).await, Outcome::Records(2));
    server.stop().await?;
    Ok(())
}

/// A folder of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(unique_name("userstream_fixtures"));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_fixture_that_does_not_parse_stops_the_start_naming_the_file() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    std::fs::write(dir.0.join("a-good.json"), r#"[{"nat":"US"}]"#)?;
    std::fs::write(dir.0.join("b-broken.json"), r#"{"results":[{"nat":"US"}"#)?;
    std::fs::write(dir.0.join("notes.txt"), "not a fixture")?;
    let error = FixtureServer::start(&config(dir.0.clone(), None)?)
        .await
        .err()
        .context("a broken fixture was accepted")?;
    assert!(error.to_string().contains("b-broken.json"), "{error}");

    std::fs::write(dir.0.join("b-broken.json"), r#"{"info":{}}"#)?;
    let error = FixtureServer::start(&config(dir.0.clone(), None)?)
        .await
        .err()
        .context("a fixture without results was accepted")?;
    let message = error.to_string();
    assert!(
        message.contains("b-broken.json") && message.contains("results"),
        "{message}"
    );

    std::fs::remove_file(dir.0.join("b-broken.json"))?;
    let server = FixtureServer::start(&config(dir.0.clone(), None)?).await?;
    assert_eq!(server.record_count(), 1);
    let page = get_json(&server.url(), "/api/?results=10").await?;
    assert_eq!(results(&page)?, &vec![serde_json::json!({"nat": "US"})]);
    server.stop().await?;

    let empty = TempDir::new()?;
    let error = FixtureServer::start(&config(empty.0.clone(), None)?)
        .await
        .err()
        .context("an empty fixtures folder was accepted")?;
    assert!(error.to_string().contains("no *.json"), "{error}");
    Ok(())
}
