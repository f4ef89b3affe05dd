//! Schema Registry conformance: HTTP checks of every route and error code the pipeline relies on,
//! against the registry at `USERSTREAM_SCHEMA_REGISTRY_URL` — `userstream registry` in the local
//! stack, but written to Confluent's documented behaviour so the same file can run against
//! Confluent's registry or Karapace. Every test uses subjects of its own and sets the
//! compatibility level it depends on at subject level, so the tests run in parallel with each
//! other and never depend on (or change) the global level.
//!
//! The last test starts `userstream registry` in-process on a database of its own to check that
//! ids survive a restart.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use apache_avro::types::Value as AvroValue;
use reqwest::{Method, StatusCode};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::common::{self, TestDatabase};

/// What Confluent's registry sends and accepts.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A registry at `base`, spoken to as Confluent's clients do.
struct Registry {
    base: String,
    http: reqwest::Client,
}

/// One response: status, content type and JSON body (`Value::Null` for an empty body).
struct Reply {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl Reply {
    /// Asserts a success status and returns the body.
    fn ok(self, what: &str) -> anyhow::Result<Value> {
        ensure!(
            self.status == StatusCode::OK,
            "{what}: expected 200, got {} {}",
            self.status,
            self.body
        );
        Ok(self.body)
    }

    /// Asserts Confluent's error shape with this HTTP status and one of these error codes.
    fn error(&self, what: &str, status: StatusCode, codes: &[i64]) -> anyhow::Result<String> {
        ensure!(
            self.status == status,
            "{what}: expected {status}, got {} {}",
            self.status,
            self.body
        );
        let code = self.body["error_code"].as_i64();
        ensure!(
            code.is_some_and(|code| codes.contains(&code)),
            "{what}: expected error_code in {codes:?}, got {}",
            self.body
        );
        let message = self.body["message"]
            .as_str()
            .with_context(|| format!("{what}: no message in {}", self.body))?;
        Ok(message.to_owned())
    }
}

impl Registry {
    fn at(base: String) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    fn from_env() -> Self {
        Self::at(common::registry_url())
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Reply> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header(reqwest::header::ACCEPT, CONTENT_TYPE)
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}: is the registry running?"))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("{method} {path}: body is not JSON: {text}"))?
        };
        Ok(Reply {
            status,
            content_type,
            body,
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Reply> {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> anyhow::Result<Reply> {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> anyhow::Result<Reply> {
        self.call(Method::DELETE, path, None).await
    }

    async fn try_register(&self, subject: &str, schema: &str) -> anyhow::Result<Reply> {
        self.post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": schema }),
        )
        .await
    }

    /// Registers and returns the id, failing on anything but 200.
    async fn register(&self, subject: &str, schema: &str) -> anyhow::Result<i64> {
        let body = self
            .try_register(subject, schema)
            .await?
            .ok(&format!("registering under {subject}"))?;
        body["id"]
            .as_i64()
            .with_context(|| format!("no id in {body}"))
    }

    async fn versions(&self, subject: &str) -> anyhow::Result<Value> {
        self.get(&format!("/subjects/{subject}/versions"))
            .await?
            .ok("listing versions")
    }

    async fn set_level(&self, subject: &str, level: &str) -> anyhow::Result<()> {
        let body = self
            .put(
                &format!("/config/{subject}"),
                json!({ "compatibility": level }),
            )
            .await?
            .ok("setting a subject's level")?;
        ensure!(
            body["compatibility"] == level,
            "PUT /config/{subject}: {body}"
        );
        Ok(())
    }
}

fn subject(label: &str) -> String {
    common::unique_name(&format!("registry_{label}"))
}

/// A `User` record schema with the given fields (JSON objects, comma-separated).
fn user(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"User","namespace":"test.registry","fields":[{fields}]}}"#)
}

const ID: &str = r#"{"name":"id","type":"string"}"#;

fn same_json(a: &str, b: &str) -> anyhow::Result<bool> {
    let a: Value = serde_json::from_str(a).context("first schema is not JSON")?;
    let b: Value = serde_json::from_str(b).context("second schema is not JSON")?;
    Ok(a == b)
}

#[tokio::test]
async fn answers_and_errors_carry_confluents_content_type() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let missing = subject("missing");
    for (path, status) in [
        ("/subjects".to_owned(), StatusCode::OK),
        (
            format!("/subjects/{missing}/versions"),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let reply = registry.get(&path).await?;
        ensure!(reply.status == status, "GET {path}: {}", reply.status);
        ensure!(
            reply.content_type.starts_with(CONTENT_TYPE),
            "GET {path} ({status}): content type {:?}",
            reply.content_type
        );
    }
    Ok(())
}

#[tokio::test]
async fn registers_and_reads_back_by_version_and_id() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let subject = subject("read");
    registry.set_level(&subject, "BACKWARD").await?;
    let v1 = user(ID);
    let v2 = user(&format!(
        r#"{ID},{{"name":"age","type":"int","default":0}}"#
    ));
    let id1 = registry.register(&subject, &v1).await?;
    let id2 = registry.register(&subject, &v2).await?;
    ensure!(id1 != id2, "two schemas got one id {id1}");

    let subjects = registry.get("/subjects").await?.ok("GET /subjects")?;
    ensure!(
        subjects
            .as_array()
            .is_some_and(|all| all.contains(&json!(subject))),
        "{subject} missing from {subjects}"
    );
    ensure!(registry.versions(&subject).await? == json!([1, 2]));

    let first = registry
        .get(&format!("/subjects/{subject}/versions/1"))
        .await?
        .ok("GET version 1")?;
    ensure!(first["subject"] == subject && first["version"] == 1 && first["id"] == id1);
    ensure!(same_json(
        first["schema"].as_str().unwrap_or_default(),
        &v1
    )?);

    for latest in ["latest", "-1"] {
        let body = registry
            .get(&format!("/subjects/{subject}/versions/{latest}"))
            .await?
            .ok("GET latest")?;
        ensure!(
            body["version"] == 2 && body["id"] == id2,
            "{latest}: {body}"
        );
    }

    let raw = registry
        .get(&format!("/subjects/{subject}/versions/2/schema"))
        .await?
        .ok("GET version 2 schema")?;
    ensure!(
        raw == serde_json::from_str::<Value>(&v2)?,
        "raw schema {raw}"
    );

    let by_id = registry
        .get(&format!("/schemas/ids/{id1}"))
        .await?
        .ok("GET /schemas/ids")?;
    ensure!(
        same_json(by_id["schema"].as_str().unwrap_or_default(), &v1)?,
        "{by_id}"
    );
    Ok(())
}

#[tokio::test]
async fn the_same_schema_twice_gets_the_same_id_and_no_new_version() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let subject = subject("twice");
    let schema = user(ID);
    let first = registry.register(&subject, &schema).await?;
    let second = registry.register(&subject, &schema).await?;
    ensure!(first == second, "{first} then {second}");
    ensure!(registry.versions(&subject).await? == json!([1]));
    Ok(())
}

#[tokio::test]
async fn whitespace_and_attribute_order_do_not_make_a_new_schema() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let subject = subject("canonical");
    let compact = user(&format!(
        r#"{ID},{{"name":"age","type":"int","default":0}}"#
    ));
    let spaced = r#"
        {
          "namespace" : "test.registry",
          "fields" : [
            { "type" : "string", "name" : "id" },
            { "default" : 0, "type" : "int", "name" : "age" }
          ],
          "type" : "record",
          "name" : "User"
        }"#;
    let id = registry.register(&subject, &compact).await?;
    ensure!(registry.register(&subject, spaced).await? == id);
    ensure!(registry.versions(&subject).await? == json!([1]));

    // A different default is a different schema (it changes what readers do).
    let other_default = user(&format!(
        r#"{ID},{{"name":"age","type":"int","default":1}}"#
    ));
    ensure!(registry.register(&subject, &other_default).await? != id);
    Ok(())
}

#[tokio::test]
async fn one_schema_under_two_subjects_has_one_id() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let schema = user(r#"{"name":"shared","type":"long"}"#);
    let a = registry.register(&subject("shared_a"), &schema).await?;
    let b = registry.register(&subject("shared_b"), &schema).await?;
    ensure!(a == b, "{a} != {b}");
    Ok(())
}

#[tokio::test]
async fn concurrent_registration_of_one_schema_yields_one_id() -> anyhow::Result<()> {
    let registry = std::sync::Arc::new(Registry::from_env());
    let main_subject = subject("concurrent");
    let other_subjects: Vec<String> = (0..4).map(|_| subject("concurrent_other")).collect();
    // A schema no other test or run registers, so its id is decided by this race alone.
    let schema = user(&format!(
        r#"{{"name":"{}","type":"string"}}"#,
        common::unique_name("f")
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..24 {
        let registry = registry.clone();
        let schema = schema.clone();
        let subject = if task % 6 == 5 {
            other_subjects[task / 6].clone()
        } else {
            main_subject.clone()
        };
        tasks.spawn(async move { registry.register(&subject, &schema).await });
    }
    let mut ids = Vec::new();
    while let Some(result) = tasks.join_next().await {
        ids.push(result??);
    }
    ensure!(ids.len() == 24);
    ensure!(ids.iter().all(|id| *id == ids[0]), "ids {ids:?}");
    ensure!(registry.versions(&main_subject).await? == json!([1]));
    for other in &other_subjects {
        ensure!(registry.versions(other).await? == json!([1]));
    }
    Ok(())
}

#[tokio::test]
async fn an_incompatible_schema_is_refused_with_the_reason() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let subject = subject("conflict");
    registry.set_level(&subject, "BACKWARD").await?;
    registry.register(&subject, &user(ID)).await?;
    let without_default = user(&format!(r#"{ID},{{"name":"age","type":"int"}}"#));
    let reply = registry.try_register(&subject, &without_default).await?;
    // Confluent's registry answers 409 with error_code 409 (older) or 40901 (newer).
    let message = reply.error("incompatible", StatusCode::CONFLICT, &[409, 40901])?;
    ensure!(
        message.contains("age"),
        "the reason should name the field: {message}"
    );
    ensure!(registry.versions(&subject).await? == json!([1]));
    Ok(())
}

/// Per level, whether each candidate may follow the history v1, v2 (Confluent's definitions:
/// BACKWARD = the new schema reads data written with the latest, FORWARD = the latest reads
/// data written with the new one, FULL = both, `_TRANSITIVE` = against every version).
#[tokio::test]
async fn each_compatibility_level_accepts_and_refuses_as_documented() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let v1 = user(&format!(r#"{ID},{{"name":"name","type":"string"}}"#));
    let v2 = user(&format!(
        r#"{ID},{{"name":"name","type":"string","default":""}},{{"name":"age","type":"int","default":0}}"#
    ));
    // Adds a field without a default: v2 can read it, it cannot read v2.
    let add_required = user(&format!(
        r#"{ID},{{"name":"name","type":"string","default":""}},{{"name":"age","type":"int","default":0}},{{"name":"email","type":"string"}}"#
    ));
    // Drops `name`: v2 reads it through name's default; v1 has no default for name.
    let drop_name = user(&format!(
        r#"{ID},{{"name":"age","type":"int","default":0}}"#
    ));
    // `age` loses its default: it reads v2 (which has age) but not v1 (which has none).
    let age_required = user(&format!(
        r#"{ID},{{"name":"name","type":"string","default":""}},{{"name":"age","type":"int"}}"#
    ));
    let expectations = [
        ("NONE", [true, true, true]),
        ("BACKWARD", [false, true, true]),
        ("BACKWARD_TRANSITIVE", [false, true, false]),
        ("FORWARD", [true, true, true]),
        ("FORWARD_TRANSITIVE", [true, false, true]),
        ("FULL", [false, true, true]),
        ("FULL_TRANSITIVE", [false, false, false]),
    ];
    let candidates = [
        ("add_required", &add_required),
        ("drop_name", &drop_name),
        ("age_required", &age_required),
    ];
    for (level, expected) in expectations {
        for ((name, candidate), compatible) in candidates.iter().zip(expected) {
            let subject = subject("levels");
            registry.set_level(&subject, "NONE").await?;
            registry.register(&subject, &v1).await?;
            registry.register(&subject, &v2).await?;
            registry.set_level(&subject, level).await?;

            // Without a version the check follows the level: the latest version, or all of
            // them for the _TRANSITIVE levels.
            let check = registry
                .post(
                    &format!("/compatibility/subjects/{subject}/versions"),
                    json!({ "schema": candidate }),
                )
                .await?
                .ok("compatibility check")?;
            ensure!(
                check["is_compatible"] == compatible,
                "{level}, {name}: check said {check}, expected {compatible}"
            );

            let reply = registry.try_register(&subject, candidate).await?;
            if compatible {
                reply.ok(&format!("{level}, {name}: registration"))?;
            } else {
                reply.error(
                    &format!("{level}, {name}: registration"),
                    StatusCode::CONFLICT,
                    &[409, 40901],
                )?;
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_compatibility_endpoint_checks_one_version_or_the_latest() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let subject = subject("check");
    registry.set_level(&subject, "NONE").await?;
    let v1 = user(&format!(r#"{ID},{{"name":"n","type":"int"}}"#));
    let v2 = user(&format!(r#"{ID},{{"name":"n","type":"long"}}"#));
    registry.register(&subject, &v1).await?;
    registry.register(&subject, &v2).await?;
    registry.set_level(&subject, "BACKWARD").await?;
    // Reading `n` as int: fine against v1's int, a narrowing against v2's long.
    let int_reader = json!({ "schema": v1 });
    let against = |version: &str| format!("/compatibility/subjects/{subject}/versions/{version}");

    let on_v1 = registry
        .post(&against("1"), int_reader.clone())
        .await?
        .ok("vs 1")?;
    ensure!(on_v1["is_compatible"] == true, "{on_v1}");
    let on_latest = registry
        .post(
            &format!("{}?verbose=true", against("latest")),
            int_reader.clone(),
        )
        .await?
        .ok("vs latest")?;
    ensure!(on_latest["is_compatible"] == false, "{on_latest}");
    ensure!(
        on_latest["messages"]
            .as_array()
            .is_some_and(|all| !all.is_empty()),
        "verbose should say why: {on_latest}"
    );

    registry
        .post(&against("7"), int_reader.clone())
        .await?
        .error("missing version", StatusCode::NOT_FOUND, &[40402])?;
    registry
        .post(&against("0"), int_reader.clone())
        .await?
        .error(
            "invalid version",
            StatusCode::UNPROCESSABLE_ENTITY,
            &[42202],
        )?;
    registry
        .post(&against("latest"), json!({ "schema": "{\"type\":" }))
        .await?
        .error("invalid schema", StatusCode::UNPROCESSABLE_ENTITY, &[42201])?;

    let unknown = self::subject("check_unknown");
    let fresh = registry
        .post(
            &format!("/compatibility/subjects/{unknown}/versions/latest"),
            int_reader.clone(),
        )
        .await?
        .ok("latest of an empty subject")?;
    ensure!(fresh["is_compatible"] == true, "{fresh}");
    registry
        .post(
            &format!("/compatibility/subjects/{unknown}/versions/1"),
            int_reader,
        )
        .await?
        .error(
            "version of a missing subject",
            StatusCode::NOT_FOUND,
            &[40401],
        )?;
    Ok(())
}

#[tokio::test]
async fn a_numbered_or_latest_check_ignores_transitivity_and_the_plain_check_follows_it(
) -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let subject = subject("transitive");
    registry.set_level(&subject, "NONE").await?;
    registry
        .register(
            &subject,
            &user(&format!(r#"{ID},{{"name":"n","type":"string"}}"#)),
        )
        .await?;
    registry
        .register(
            &subject,
            &user(&format!(r#"{ID},{{"name":"n","type":"long"}}"#)),
        )
        .await?;
    registry.set_level(&subject, "BACKWARD_TRANSITIVE").await?;
    // Reads version 2 (n: long), not version 1 (n: string).
    let candidate = json!({ "schema": user(&format!(
        r#"{ID},{{"name":"n","type":"long"}},{{"name":"m","type":"int","default":0}}"#
    )) });
    for (path, expected) in [
        ("versions/latest", true),
        ("versions/2", true),
        ("versions/1", false),
        ("versions", false),
    ] {
        let check = registry
            .post(
                &format!("/compatibility/subjects/{subject}/{path}"),
                candidate.clone(),
            )
            .await?
            .ok(path)?;
        ensure!(
            check["is_compatible"] == expected,
            "{path} under BACKWARD_TRANSITIVE: {check}, expected {expected}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_schema_id_lists_the_subject_versions_that_use_it() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let (first, second) = (subject("ids_a"), subject("ids_b"));
    let schema = user(&format!(
        r#"{ID},{{"name":"marker","type":"string","default":"{first}"}}"#
    ));
    let id = registry.register(&first, &schema).await?;
    ensure!(registry.register(&second, &schema).await? == id);
    let versions = registry
        .get(&format!("/schemas/ids/{id}/versions"))
        .await?
        .ok("GET /schemas/ids/{id}/versions")?;
    let mut listed: Vec<(String, i64)> = versions
        .as_array()
        .with_context(|| format!("not a list: {versions}"))?
        .iter()
        .map(|entry| {
            Some((
                entry["subject"].as_str()?.to_owned(),
                entry["version"].as_i64()?,
            ))
        })
        .collect::<Option<_>>()
        .with_context(|| format!("entries without subject and version: {versions}"))?;
    listed.sort();
    let mut expected = vec![(first.clone(), 1), (second.clone(), 1)];
    expected.sort();
    ensure!(listed == expected, "{versions}");

    registry
        .get("/schemas/ids/2147483647/versions")
        .await?
        .error("versions of an unknown id", StatusCode::NOT_FOUND, &[40403])?;
    Ok(())
}

#[tokio::test]
async fn referenced_by_mode_and_types_answer_as_confluent_documents() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let subject = subject("refs");
    registry.register(&subject, &user(ID)).await?;
    let referenced_by = registry
        .get(&format!("/subjects/{subject}/versions/1/referencedby"))
        .await?
        .ok("referencedby")?;
    ensure!(referenced_by == json!([]), "{referenced_by}");
    registry
        .get(&format!("/subjects/{subject}/versions/9/referencedby"))
        .await?
        .error(
            "referencedby of a missing version",
            StatusCode::NOT_FOUND,
            &[40402],
        )?;

    let mode = registry.get("/mode").await?.ok("GET /mode")?;
    ensure!(mode["mode"] == "READWRITE", "{mode}");

    let types = registry
        .get("/schemas/types")
        .await?
        .ok("GET /schemas/types")?;
    ensure!(
        types
            .as_array()
            .is_some_and(|all| all.contains(&json!("AVRO"))),
        "{types}"
    );
    Ok(())
}

#[tokio::test]
async fn look_up_finds_the_version_of_a_schema() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let subject = subject("lookup");
    registry.set_level(&subject, "BACKWARD").await?;
    let v1 = user(ID);
    let v2 = user(&format!(
        r#"{ID},{{"name":"age","type":"int","default":0}}"#
    ));
    registry.register(&subject, &v1).await?;
    let id2 = registry.register(&subject, &v2).await?;

    let pretty = serde_json::to_string_pretty(&serde_json::from_str::<Value>(&v2)?)?;
    let found = registry
        .post(&format!("/subjects/{subject}"), json!({ "schema": pretty }))
        .await?
        .ok("look-up")?;
    ensure!(
        found["subject"] == subject && found["version"] == 2 && found["id"] == id2,
        "{found}"
    );
    ensure!(same_json(
        found["schema"].as_str().unwrap_or_default(),
        &v2
    )?);

    let unregistered = user(r#"{"name":"other","type":"boolean"}"#);
    registry
        .post(
            &format!("/subjects/{subject}"),
            json!({ "schema": unregistered }),
        )
        .await?
        .error("unregistered schema", StatusCode::NOT_FOUND, &[40403])?;
    registry
        .post(
            &format!("/subjects/{}", self::subject("lookup_unknown")),
            json!({ "schema": v1 }),
        )
        .await?
        .error("unknown subject", StatusCode::NOT_FOUND, &[40401])?;
    registry
        .post(
            &format!("/subjects/{subject}"),
            json!({ "schema": "{\"type\":\"record\",\"name\":\"NoFields\"}" }),
        )
        .await?
        .error("invalid schema", StatusCode::UNPROCESSABLE_ENTITY, &[42201])?;
    Ok(())
}

#[tokio::test]
async fn soft_deletes_hide_versions_but_keep_ids() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let subject = subject("delete");
    registry.set_level(&subject, "BACKWARD").await?;
    let v1 = user(ID);
    let v2 = user(&format!(
        r#"{ID},{{"name":"age","type":"int","default":0}}"#
    ));
    let id1 = registry.register(&subject, &v1).await?;
    registry.register(&subject, &v2).await?;
    let version = |v: &str| format!("/subjects/{subject}/versions/{v}");

    let deleted = registry
        .delete(&version("1"))
        .await?
        .ok("delete version 1")?;
    ensure!(deleted == json!(1), "{deleted}");
    ensure!(registry.versions(&subject).await? == json!([2]));
    registry
        .get(&version("1"))
        .await?
        .error("deleted version", StatusCode::NOT_FOUND, &[40402])?;
    let shown = registry
        .get(&format!("{}?deleted=true", version("1")))
        .await?
        .ok("deleted version with ?deleted=true")?;
    ensure!(shown["id"] == id1, "{shown}");
    registry
        .get(&format!("/schemas/ids/{id1}"))
        .await?
        .ok("a deleted version's id still resolves")?;
    registry
        .post(&format!("/subjects/{subject}"), json!({ "schema": v1 }))
        .await?
        .error(
            "look-up of a deleted version",
            StatusCode::NOT_FOUND,
            &[40403],
        )?;
    registry.delete(&version("1")).await?.error(
        "deleting twice",
        StatusCode::NOT_FOUND,
        &[40406],
    )?;
    registry.delete(&version("99")).await?.error(
        "deleting a missing version",
        StatusCode::NOT_FOUND,
        &[40402],
    )?;
    registry.delete(&version("zero")).await?.error(
        "deleting an invalid version",
        StatusCode::UNPROCESSABLE_ENTITY,
        &[42202],
    )?;

    // Re-registering a deleted schema keeps its id and gets the next version number.
    ensure!(registry.register(&subject, &v1).await? == id1);
    ensure!(registry.versions(&subject).await? == json!([2, 3]));

    let gone = registry
        .delete(&format!("/subjects/{subject}"))
        .await?
        .ok("delete subject")?;
    ensure!(gone == json!([2, 3]), "{gone}");
    let subjects = registry.get("/subjects").await?.ok("GET /subjects")?;
    ensure!(
        !subjects
            .as_array()
            .is_some_and(|all| all.contains(&json!(subject))),
        "a deleted subject is still listed: {subjects}"
    );
    registry
        .get(&format!("/subjects/{subject}/versions"))
        .await?
        .error(
            "versions of a deleted subject",
            StatusCode::NOT_FOUND,
            &[40401],
        )?;
    registry.get(&version("latest")).await?.error(
        "latest of a deleted subject",
        StatusCode::NOT_FOUND,
        &[40401],
    )?;
    registry
        .delete(&format!("/subjects/{subject}"))
        .await?
        .error("deleting a subject twice", StatusCode::NOT_FOUND, &[40404])?;
    registry
        .delete(&format!("/subjects/{}", self::subject("never")))
        .await?
        .error(
            "deleting a missing subject",
            StatusCode::NOT_FOUND,
            &[40401],
        )?;

    // A deleted subject can be used again; version numbers are never reused.
    ensure!(registry.register(&subject, &v2).await? != id1);
    ensure!(registry.versions(&subject).await? == json!([4]));
    Ok(())
}

#[tokio::test]
async fn global_config_round_trips_without_changing_the_default() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let levels = [
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ];
    let found = registry.get("/config").await?.ok("GET /config")?;
    let level = found["compatibilityLevel"]
        .as_str()
        .with_context(|| format!("no compatibilityLevel in {found}"))?
        .to_owned();
    ensure!(levels.contains(&level.as_str()), "unknown level {level}");
    // Writing back exactly what was read: a test running alongside sees no change.
    let written = registry
        .put("/config", json!({ "compatibility": level }))
        .await?
        .ok("PUT /config")?;
    ensure!(written["compatibility"] == level.as_str(), "{written}");
    registry
        .put("/config", json!({ "compatibility": "SIDEWAYS" }))
        .await?
        .error(
            "invalid global level",
            StatusCode::UNPROCESSABLE_ENTITY,
            &[42203],
        )?;
    let after = registry.get("/config").await?.ok("GET /config")?;
    ensure!(after["compatibilityLevel"].is_string(), "{after}");
    Ok(())
}

#[tokio::test]
async fn subject_config_is_set_read_and_removed() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let subject = subject("config");
    let path = format!("/config/{subject}");
    registry
        .get(&path)
        .await?
        .error("no subject level", StatusCode::NOT_FOUND, &[40408])?;
    let inherited = registry
        .get(&format!("{path}?defaultToGlobal=true"))
        .await?
        .ok("defaultToGlobal")?;
    ensure!(inherited["compatibilityLevel"].is_string(), "{inherited}");

    for level in ["FULL_TRANSITIVE", "FORWARD", "NONE"] {
        registry.set_level(&subject, level).await?;
        let read = registry.get(&path).await?.ok("GET subject level")?;
        ensure!(read["compatibilityLevel"] == level, "{read}");
    }
    registry
        .put(&path, json!({ "compatibility": "SIDEWAYS" }))
        .await?
        .error(
            "invalid subject level",
            StatusCode::UNPROCESSABLE_ENTITY,
            &[42203],
        )?;

    let removed = registry.delete(&path).await?.ok("DELETE subject level")?;
    ensure!(removed["compatibilityLevel"] == "NONE", "{removed}");
    registry
        .get(&path)
        .await?
        .error("removed subject level", StatusCode::NOT_FOUND, &[40408])?;
    registry
        .delete(&path)
        .await?
        .error("removing twice", StatusCode::NOT_FOUND, &[40401])?;
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_confluents_error_codes() -> anyhow::Result<()> {
    let registry = Registry::from_env();
    let subject = subject("errors");
    let unknown = self::subject("errors_unknown");
    registry.register(&subject, &user(ID)).await?;

    registry
        .try_register(&subject, "{\"type\":\"record\",\"name\":\"R\"}")
        .await?
        .error(
            "record without fields",
            StatusCode::UNPROCESSABLE_ENTITY,
            &[42201],
        )?;
    registry
        .try_register(&subject, "not json at all")
        .await?
        .error(
            "schema that is not JSON",
            StatusCode::UNPROCESSABLE_ENTITY,
            &[42201],
        )?;
    registry
        .post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": user(ID), "schemaType": "XML" }),
        )
        .await?
        .error(
            "unknown schema type",
            StatusCode::UNPROCESSABLE_ENTITY,
            &[42201],
        )?;

    registry
        .get(&format!("/subjects/{unknown}/versions"))
        .await?
        .error(
            "versions of an unknown subject",
            StatusCode::NOT_FOUND,
            &[40401],
        )?;
    registry
        .get(&format!("/subjects/{unknown}/versions/latest"))
        .await?
        .error(
            "latest of an unknown subject",
            StatusCode::NOT_FOUND,
            &[40401],
        )?;
    registry
        .get(&format!("/subjects/{subject}/versions/2"))
        .await?
        .error("missing version", StatusCode::NOT_FOUND, &[40402])?;
    registry
        .get(&format!("/subjects/{subject}/versions/2/schema"))
        .await?
        .error("missing version's schema", StatusCode::NOT_FOUND, &[40402])?;
    for bad in ["0", "-3", "first", "2147483648"] {
        registry
            .get(&format!("/subjects/{subject}/versions/{bad}"))
            .await?
            .error(
                &format!("version {bad}"),
                StatusCode::UNPROCESSABLE_ENTITY,
                &[42202],
            )?;
    }
    registry
        .get(&format!("/schemas/ids/{}", i32::MAX))
        .await?
        .error("unknown id", StatusCode::NOT_FOUND, &[40403])?;
    Ok(())
}

#[tokio::test]
async fn schema_registry_converter_encodes_and_decodes_through_the_registry() -> anyhow::Result<()>
{
    let registry = Registry::from_env();
    let topic = common::unique_name("registry_topic");
    let schema = user(&format!(
        r#"{ID},{{"name":"age","type":"int","default":0}},{{"name":"email","type":["null","string"],"default":null}}"#
    ));
    let settings = SrSettings::new(common::registry_url());
    let encoder = AvroEncoder::new(settings.clone());
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        topic.clone(),
        false,
        SuppliedSchema::new(None, SchemaType::Avro, schema.clone()),
    );
    let fields = vec![
        ("id", AvroValue::String("u-1".to_owned())),
        ("age", AvroValue::Int(42)),
        (
            "email",
            AvroValue::Union(1, Box::new(AvroValue::String("a@example.org".to_owned()))),
        ),
    ];
    let bytes = encoder
        .encode(fields.clone(), strategy)
        .await
        .map_err(|error| anyhow::anyhow!("encoding: {error:?}"))?;

    let latest = registry
        .get(&format!("/subjects/{topic}-value/versions/latest"))
        .await?
        .ok("the encoder's subject")?;
    let id = latest["id"].as_i64().context("no id")?;
    ensure!(bytes.len() > 5, "{bytes:?}");
    ensure!(bytes[0] == 0, "magic byte {}", bytes[0]);
    let wire_id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    ensure!(
        i64::from(wire_id) == id,
        "wire id {wire_id}, registered {id}"
    );

    let decoded = AvroDecoder::new(settings)
        .decode(Some(&bytes))
        .await
        .map_err(|error| anyhow::anyhow!("decoding: {error:?}"))?;
    let expected = AvroValue::Record(
        fields
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
    );
    ensure!(decoded.value == expected, "decoded {:?}", decoded.value);
    Ok(())
}

/// A `userstream registry` running in this process on a database of its own.
struct InProcess {
    registry: Registry,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), userstream::registry::Error>>,
}

impl InProcess {
    async fn start(database_url: &str) -> anyhow::Result<Self> {
        let postgres = userstream::config::PostgresArgs {
            pg_url: userstream::config::Secret::new(database_url.to_owned()),
        };
        let pool = userstream::registry::pool(&postgres, 4, Duration::from_secs(10))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(userstream::registry::serve(
            listener,
            pool,
            shutdown.clone(),
        ));
        let registry = Registry::at(base);
        common::eventually(
            "the in-process registry answers",
            common::DEFAULT_DEADLINE,
            || async {
                if task.is_finished() {
                    bail!("the registry stopped during start-up");
                }
                Ok(registry.get("/subjects").await.ok().map(|_| ()))
            },
        )
        .await?;
        Ok(Self {
            registry,
            shutdown,
            task,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await??;
        Ok(())
    }
}

#[tokio::test]
async fn userstream_registry_keeps_ids_across_a_restart() -> anyhow::Result<()> {
    let database = TestDatabase::create("registry_restart").await?;
    let a = user(ID);
    let b = user(&format!(
        r#"{ID},{{"name":"age","type":"int","default":0}}"#
    ));

    let first = InProcess::start(&database.url).await?;
    let id_a = first.registry.register("restart-value", &a).await?;
    let id_b = first.registry.register("restart-value", &b).await?;
    let metrics = first
        .registry
        .http
        .get(format!("{}/metrics", first.registry.base))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        metrics.lines().any(
            |line| line.starts_with("userstream_registry_requests_total")
                && line.contains(r#"route="/subjects/{subject}/versions""#)
                && line.contains(r#"status="2xx""#)
                && line.contains(r#"method="POST""#)
        ),
        "no request counter by route template in:\n{metrics}"
    );
    first.stop().await?;

    // The second start applies the registry's SQL again over the existing tables.
    let second = InProcess::start(&database.url).await?;
    let by_id = second
        .registry
        .get(&format!("/schemas/ids/{id_a}"))
        .await?
        .ok("id after restart")?;
    ensure!(same_json(by_id["schema"].as_str().unwrap_or_default(), &a)?);
    ensure!(second.registry.register("restart-value", &a).await? == id_a);
    ensure!(second.registry.register("restart-value", &b).await? == id_b);
    ensure!(second.registry.versions("restart-value").await? == json!([1, 2]));
    let c = user(&format!(
        r#"{ID},{{"name":"age","type":"int","default":0}},{{"name":"tag","type":"string","default":""}}"#
    ));
    let id_c = second.registry.register("restart-value", &c).await?;
    ensure!(
        id_c != id_a && id_c != id_b,
        "a new schema reused an id: {id_c}"
    );
    second.stop().await?;
    Ok(())
}
