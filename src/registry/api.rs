//! The HTTP API: Confluent Schema Registry's routes, request and response shapes, and error codes.
//!
//! Request bodies are read as JSON whatever their content type says (Confluent's clients send
//! `application/vnd.schemaregistry.v1+json`, others `application/json` or nothing), and unknown
//! request fields (`metadata`, `ruleSet`, …) are ignored as Confluent ignores what it does not
//! use. Responses carry `application/vnd.schemaregistry.v1+json`.

use std::collections::HashMap;
use std::error::Error as _;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, RawPathParams, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::compatibility::{Level, UnknownLevel};
use super::schema::{self, InvalidSchema, ParsedSchema};
use super::store::{
    Registration, Store, StoreError, SubjectDeletion, SubjectVersion, VersionDeletion, VersionSpec,
};
use crate::error::Retryable;

/// The content type of every response, as Confluent's registry prefers it.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Name of the request counter; labels: `method`, `route` (the route template), `status` (class).
pub const REQUESTS_METRIC: &str = "userstream_registry_requests_total";

/// The longest subject accepted, in bytes (after percent-decoding). Confluent documents no limit;
/// a Kafka topic name has at most 249 characters, so TopicNameStrategy's `<topic>-value` fits,
/// and Google's Confluent-compatible managed registry has the same limit. Without one, a subject
/// too long for a PostgreSQL b-tree entry (about 2.7 kB) fails in the store as a 50001, which
/// clients take for a server fault and retry.
pub const MAX_SUBJECT_BYTES: usize = 255;

/// A request the registry refuses, with Confluent's error code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// Only the length is echoed: the subject itself is what is too long.
    #[error("The specified subject is not valid: it is {0} bytes long, and this registry accepts at most {MAX_SUBJECT_BYTES}")]
    SubjectTooLong(usize),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    #[error("Schema not found")]
    SchemaNotFoundUnderSubject,
    #[error("Subject '{0}' was soft deleted (this registry has no permanent delete)")]
    SubjectSoftDeleted(String),
    #[error("Subject '{subject}' version {version} was soft deleted (this registry has no permanent delete)")]
    VersionSoftDeleted { subject: String, version: String },
    #[error("No compatibility level is set for subject '{0}' itself (?defaultToGlobal=true gives the level in force)")]
    SubjectLevelNotConfigured(String),
    #[error("Invalid schema")]
    InvalidSchema(#[source] InvalidSchema),
    #[error("Invalid version '{0}': a version is a number from 1 to 2^31-1, or \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level")]
    InvalidLevel(#[source] UnknownLevel),
    #[error("{0}")]
    NotPermitted(&'static str),
    #[error("The schema is incompatible with subject \"{subject}\" at compatibility level {level}: {}", messages.join("; "))]
    Incompatible {
        subject: String,
        level: Level,
        messages: Vec<String>,
    },
    #[error("The request body is not valid JSON")]
    MalformedBody(#[source] serde_json::Error),
    #[error("The request body does not have the expected fields")]
    UnexpectedBody(#[source] serde_json::Error),
    #[error("HTTP 404 Not Found")]
    NoSuchRoute,
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    #[error("Error in the backend data store")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// Confluent's `error_code`; its first three digits are the HTTP status.
    pub fn code(&self) -> u32 {
        match self {
            ApiError::SubjectNotFound(_) => 40401,
            ApiError::VersionNotFound(_) => 40402,
            ApiError::SchemaNotFound(_) | ApiError::SchemaNotFoundUnderSubject => 40403,
            ApiError::SubjectSoftDeleted(_) => 40404,
            ApiError::VersionSoftDeleted { .. } => 40406,
            ApiError::SubjectLevelNotConfigured(_) => 40408,
            ApiError::InvalidSchema(_) => 42201,
            ApiError::InvalidVersion(_) => 42202,
            ApiError::InvalidLevel(_) => 42203,
            ApiError::NotPermitted(_) => 42205,
            ApiError::SubjectTooLong(_) => 42208,
            ApiError::Incompatible { .. } => 409,
            ApiError::MalformedBody(_) => 400,
            ApiError::UnexpectedBody(_) => 422,
            ApiError::NoSuchRoute => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::Store(_) => 50001,
        }
    }

    pub fn status(&self) -> StatusCode {
        let code = self.code();
        let http = if code >= 10_000 { code / 100 } else { code };
        u16::try_from(http)
            .ok()
            .and_then(|http| StatusCode::from_u16(http).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The error and every cause, for the response's `message`.
    fn message(&self) -> String {
        let mut message = self.to_string();
        let mut source = self.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    }
}

impl Retryable for ApiError {
    fn is_retryable(&self) -> bool {
        match self {
            ApiError::Store(error) => error.is_retryable(),
            _ => false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.message();
        if status.is_server_error() {
            tracing::error!(code = self.code(), %message, "registry request failed");
        } else {
            tracing::debug!(code = self.code(), %message, "registry request refused");
        }
        reply(
            status,
            &json!({ "error_code": self.code(), "message": message }),
        )
    }
}

fn reply<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            bytes,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot serialize a registry response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn ok<T: Serialize>(body: &T) -> Response {
    reply(StatusCode::OK, body)
}

type ApiResult = Result<Response, ApiError>;

/// The registry's routes over `store`, counting every request in [`REQUESTS_METRIC`].
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(get_schema_by_id))
        .route("/schemas/ids/{id}/schema", get(get_raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(get_versions_of_schema))
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(get_referenced_by),
        )
        .route("/mode", get(get_mode))
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_against_required_versions),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_against_version),
        )
        .route_layer(middleware::from_fn(refuse_invalid_subject))
        // Outermost, so refused subjects are counted too.
        .route_layer(middleware::from_fn(count_request))
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(store)
}

/// Checks the `{subject}` of every route that has one before its handler runs, so that no route,
/// present or future, hands the store a subject it cannot hold.
async fn refuse_invalid_subject(params: RawPathParams, request: Request, next: Next) -> Response {
    let checked = params
        .iter()
        .filter(|(name, _)| *name == "subject")
        .try_for_each(|(_, subject)| check_subject(subject));
    match checked {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

fn check_subject(subject: &str) -> Result<(), ApiError> {
    if subject.len() > MAX_SUBJECT_BYTES {
        return Err(ApiError::SubjectTooLong(subject.len()));
    }
    Ok(())
}

async fn count_request(matched: MatchedPath, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = matched.as_str().to_owned();
    let response = next.run(request).await;
    record(method, route, response.status());
    response
}

async fn no_such_route(method: Method) -> Response {
    unmatched(&method, ApiError::NoSuchRoute)
}

async fn method_not_allowed(method: Method) -> Response {
    unmatched(&method, ApiError::MethodNotAllowed)
}

/// Requests no route handles, counted under one `route` label.
fn unmatched(method: &Method, error: ApiError) -> Response {
    let response = error.into_response();
    record(
        method_label(method),
        "unmatched".to_owned(),
        response.status(),
    );
    response
}

fn record(method: &'static str, route: String, status: StatusCode) {
    let class = match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    tracing::debug!(method, route, status = status.as_u16(), "registry request");
    metrics::counter!(REQUESTS_METRIC, "method" => method, "route" => route, "status" => class)
        .increment(1);
}

/// Methods as a closed set, so a client inventing methods cannot grow the label space.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// Query flags such as `?deleted=true`; anything but a case-insensitive `true` is false.
fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query
        .get(name)
        .is_some_and(|value| value.eq_ignore_ascii_case("true"))
}

fn parse_version(raw: &str) -> Result<VersionSpec, ApiError> {
    let trimmed = raw.trim();
    if trimmed.eq_ignore_ascii_case("latest") {
        return Ok(VersionSpec::Latest);
    }
    match trimmed.parse::<i32>() {
        // Confluent's clients use -1 for "latest".
        Ok(-1) => Ok(VersionSpec::Latest),
        Ok(version) if version >= 1 => Ok(VersionSpec::Number(version)),
        _ => Err(ApiError::InvalidVersion(raw.to_owned())),
    }
}

/// The body of a register, look-up or compatibility request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: Option<String>,
    schema_type: Option<String>,
    references: Option<Vec<serde_json::Value>>,
}

fn json_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ApiError::UnexpectedBody(error),
        _ => ApiError::MalformedBody(error),
    })
}

fn parse_schema_request(body: &Bytes) -> Result<ParsedSchema, ApiError> {
    let request: SchemaRequest = json_body(body)?;
    if request
        .references
        .is_some_and(|references| !references.is_empty())
    {
        return Err(ApiError::InvalidSchema(InvalidSchema::References));
    }
    schema::parse(
        request.schema.as_deref().unwrap_or_default(),
        request.schema_type.as_deref(),
    )
    .map_err(ApiError::InvalidSchema)
}

#[derive(Serialize)]
struct VersionBody<'a> {
    subject: &'a str,
    version: i32,
    id: i32,
    schema: &'a str,
}

impl<'a> From<&'a SubjectVersion> for VersionBody<'a> {
    fn from(found: &'a SubjectVersion) -> Self {
        VersionBody {
            subject: &found.subject,
            version: found.version,
            id: found.id,
            schema: &found.schema,
        }
    }
}

async fn root() -> Response {
    ok(&json!({}))
}

async fn schema_types() -> Response {
    ok(&[schema::AVRO])
}

async fn list_subjects(
    State(store): State<Store>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    Ok(ok(&store.subjects(flag(&query, "deleted")).await?))
}

async fn list_versions(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let versions = store.versions(&subject, flag(&query, "deleted")).await?;
    if versions.is_empty() {
        return Err(ApiError::SubjectNotFound(subject));
    }
    Ok(ok(&versions))
}

async fn register(
    State(store): State<Store>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let schema = parse_schema_request(&body)?;
    match store.register(&subject, &schema).await? {
        Registration::Existing { id } => Ok(ok(&json!({ "id": id }))),
        Registration::Added { id, version } => {
            tracing::info!(subject, id, version, "registered a schema version");
            Ok(ok(&json!({ "id": id })))
        }
        Registration::Incompatible { level, messages } => Err(ApiError::Incompatible {
            subject,
            level,
            messages,
        }),
    }
}

async fn lookup(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let include_deleted = flag(&query, "deleted");
    let schema = parse_schema_request(&body)?;
    if store.versions(&subject, include_deleted).await?.is_empty() {
        return Err(ApiError::SubjectNotFound(subject));
    }
    match store.find(&subject, &schema, include_deleted).await? {
        Some(found) => Ok(ok(&VersionBody::from(&found))),
        None => Err(ApiError::SchemaNotFoundUnderSubject),
    }
}

async fn find_version(
    store: &Store,
    subject: String,
    raw_version: &str,
    include_deleted: bool,
) -> Result<SubjectVersion, ApiError> {
    let spec = parse_version(raw_version)?;
    if let Some(found) = store.version(&subject, spec, include_deleted).await? {
        return Ok(found);
    }
    if store.versions(&subject, include_deleted).await?.is_empty() {
        Err(ApiError::SubjectNotFound(subject))
    } else {
        Err(ApiError::VersionNotFound(raw_version.to_owned()))
    }
}

async fn get_version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let found = find_version(&store, subject, &version, flag(&query, "deleted")).await?;
    Ok(ok(&VersionBody::from(&found)))
}

async fn get_version_schema(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let found = find_version(&store, subject, &version, flag(&query, "deleted")).await?;
    Ok(raw_schema(found.schema))
}

/// A schema's own JSON as the body, unescaped, as Confluent's `/schema` routes return it.
fn raw_schema(schema: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        schema,
    )
        .into_response()
}

async fn schema_for_id(store: &Store, raw_id: &str) -> Result<String, ApiError> {
    let id: i32 = raw_id
        .trim()
        .parse()
        .map_err(|_| ApiError::SchemaNotFound(raw_id.to_owned()))?;
    store
        .schema_by_id(id)
        .await?
        .ok_or_else(|| ApiError::SchemaNotFound(raw_id.to_owned()))
}

async fn get_schema_by_id(State(store): State<Store>, Path(id): Path<String>) -> ApiResult {
    let schema = schema_for_id(&store, &id).await?;
    Ok(ok(&json!({ "schema": schema })))
}

async fn get_raw_schema_by_id(State(store): State<Store>, Path(id): Path<String>) -> ApiResult {
    Ok(raw_schema(schema_for_id(&store, &id).await?))
}

async fn delete_subject(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    refuse_permanent(&query)?;
    match store.delete_subject(&subject).await? {
        SubjectDeletion::Deleted(versions) => {
            tracing::info!(subject, ?versions, "soft-deleted a subject");
            Ok(ok(&versions))
        }
        SubjectDeletion::NotFound => Err(ApiError::SubjectNotFound(subject)),
        SubjectDeletion::AlreadyDeleted => Err(ApiError::SubjectSoftDeleted(subject)),
    }
}

async fn delete_version(
    State(store): State<Store>,
    Path((subject, raw_version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let spec = parse_version(&raw_version)?;
    refuse_permanent(&query)?;
    match store.delete_version(&subject, spec).await? {
        VersionDeletion::Deleted(version) => {
            tracing::info!(subject, version, "soft-deleted a schema version");
            Ok(ok(&version))
        }
        VersionDeletion::SubjectNotFound => Err(ApiError::SubjectNotFound(subject)),
        VersionDeletion::VersionNotFound => Err(ApiError::VersionNotFound(raw_version)),
        VersionDeletion::AlreadyDeleted => Err(ApiError::VersionSoftDeleted {
            subject,
            version: raw_version,
        }),
    }
}

/// Ids must stay resolvable for data already in Kafka, so this registry only soft-deletes; it
/// says so rather than pretending a permanent delete happened.
fn refuse_permanent(query: &HashMap<String, String>) -> Result<(), ApiError> {
    if flag(query, "permanent") {
        Err(ApiError::NotPermitted(
            "Permanent deletion is not supported by this registry; only soft deletes are",
        ))
    } else {
        Ok(())
    }
}

/// `PUT /config` bodies: `{"compatibility": "FULL"}`.
#[derive(Debug, Deserialize)]
struct ConfigRequest {
    compatibility: Option<String>,
}

fn parse_config(body: &Bytes) -> Result<Level, ApiError> {
    let request: ConfigRequest = json_body(body)?;
    let raw = request.compatibility.unwrap_or_default();
    raw.parse().map_err(ApiError::InvalidLevel)
}

async fn get_global_config(State(store): State<Store>) -> ApiResult {
    let level = store.global_level().await?;
    Ok(ok(&json!({ "compatibilityLevel": level.as_str() })))
}

async fn put_global_config(State(store): State<Store>, body: Bytes) -> ApiResult {
    let level = parse_config(&body)?;
    store.set_global_level(level).await?;
    tracing::info!(%level, "set the global compatibility level");
    Ok(ok(&json!({ "compatibility": level.as_str() })))
}

async fn get_subject_config(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let level = match store.subject_level(&subject).await? {
        Some(level) => level,
        None if flag(&query, "defaultToGlobal") => store.global_level().await?,
        None => return Err(ApiError::SubjectLevelNotConfigured(subject)),
    };
    Ok(ok(&json!({ "compatibilityLevel": level.as_str() })))
}

async fn put_subject_config(
    State(store): State<Store>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let level = parse_config(&body)?;
    store.set_subject_level(&subject, level).await?;
    tracing::info!(subject, %level, "set a subject's compatibility level");
    Ok(ok(&json!({ "compatibility": level.as_str() })))
}

async fn delete_subject_config(
    State(store): State<Store>,
    Path(subject): Path<String>,
) -> ApiResult {
    match store.delete_subject_level(&subject).await? {
        Some(level) => Ok(ok(&json!({ "compatibilityLevel": level.as_str() }))),
        None => Err(ApiError::SubjectNotFound(subject)),
    }
}

async fn check_against_required_versions(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    check_compatibility(
        &store,
        subject,
        CheckAgainst::RequiredVersions,
        &query,
        &body,
    )
    .await
}

async fn check_against_version(
    State(store): State<Store>,
    Path((subject, raw_version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let spec = parse_version(&raw_version)?;
    check_compatibility(&store, subject, CheckAgainst::One(spec), &query, &body).await
}

/// Which versions a compatibility check compares the candidate with.
enum CheckAgainst {
    /// Those a registration would: the newest, or every one for the `_TRANSITIVE` levels. An
    /// empty subject accepts anything.
    RequiredVersions,
    /// That version alone, whatever the level's transitivity (as Confluent's registry does for
    /// `/versions/{version}`). A numbered version must exist; `latest` of an empty subject
    /// accepts anything.
    One(VersionSpec),
}

async fn check_compatibility(
    store: &Store,
    subject: String,
    against: CheckAgainst,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> ApiResult {
    let schema = parse_schema_request(body)?;
    let mut live = store.live_versions(&subject).await?;
    match against {
        CheckAgainst::RequiredVersions => {}
        CheckAgainst::One(VersionSpec::Latest) => {
            let latest = live.versions.pop();
            live.versions = latest.into_iter().collect();
        }
        CheckAgainst::One(VersionSpec::Number(wanted)) => {
            if live.versions.is_empty() {
                return Err(ApiError::SubjectNotFound(subject));
            }
            live.versions.retain(|(version, _)| *version == wanted);
            if live.versions.is_empty() {
                return Err(ApiError::VersionNotFound(wanted.to_string()));
            }
        }
    }
    let messages = live.check(&schema.schema);
    let mut response = json!({ "is_compatible": messages.is_empty() });
    if flag(query, "verbose") {
        response["messages"] = json!(messages);
    }
    Ok(ok(&response))
}

async fn get_versions_of_schema(
    State(store): State<Store>,
    Path(raw_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let id: i32 = raw_id
        .trim()
        .parse()
        .map_err(|_| ApiError::SchemaNotFound(raw_id.clone()))?;
    let versions = store
        .versions_of_schema(id, flag(&query, "deleted"))
        .await?
        .ok_or(ApiError::SchemaNotFound(raw_id))?;
    let body: Vec<_> = versions
        .into_iter()
        .map(|(subject, version)| json!({ "subject": subject, "version": version }))
        .collect();
    Ok(ok(&body))
}

/// Schema references are not supported, so no schema ever refers to another; the version itself
/// must exist, as in Confluent's registry.
async fn get_referenced_by(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    find_version(&store, subject, &version, false).await?;
    Ok(ok(&Vec::<i32>::new()))
}

/// The registry always accepts writes (no IMPORT or READONLY mode).
async fn get_mode() -> Response {
    ok(&json!({ "mode": "READWRITE" }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{PostgresArgs, Secret};

    #[test]
    fn subjects_longer_than_the_limit_are_invalid() {
        assert!(check_subject(&"s".repeat(MAX_SUBJECT_BYTES)).is_ok());
        // The longest TopicNameStrategy subject: a 249-character topic and "-value".
        assert!(check_subject(&format!("{}-value", "t".repeat(249))).is_ok());
        // Bytes count, not characters: 128 of them are 256 bytes here.
        let error = check_subject(&"é".repeat(128)).unwrap_err();
        assert_eq!(error.code(), 42208);
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(error.message().contains("256 bytes"), "{}", error.message());
    }

    #[tokio::test]
    async fn every_subject_route_refuses_an_over_long_subject() {
        // A store whose database refuses connections: only what the check lets through gets
        // that far, and fails there with 50001.
        let postgres = PostgresArgs {
            pg_url: Secret::new("postgres://u@127.0.0.1:1/none".to_owned()),
        };
        let pool = crate::registry::pool(&postgres, 1, Duration::from_millis(500)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = router(Store::new(pool));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        let call = |method: reqwest::Method, path: String| {
            http.request(method, format!("{base}{path}"))
                .body(r#"{"schema":"\"string\"","compatibility":"NONE"}"#)
                .send()
        };

        let too_long = "s".repeat(MAX_SUBJECT_BYTES + 1);
        let routes = [
            (reqwest::Method::POST, "/subjects/{}"),
            (reqwest::Method::DELETE, "/subjects/{}"),
            (reqwest::Method::GET, "/subjects/{}/versions"),
            (reqwest::Method::POST, "/subjects/{}/versions"),
            (reqwest::Method::GET, "/subjects/{}/versions/1"),
            (reqwest::Method::DELETE, "/subjects/{}/versions/1"),
            (reqwest::Method::GET, "/subjects/{}/versions/1/schema"),
            (reqwest::Method::GET, "/subjects/{}/versions/1/referencedby"),
            (reqwest::Method::GET, "/config/{}"),
            (reqwest::Method::PUT, "/config/{}"),
            (reqwest::Method::DELETE, "/config/{}"),
            (reqwest::Method::POST, "/compatibility/subjects/{}/versions"),
            (
                reqwest::Method::POST,
                "/compatibility/subjects/{}/versions/1",
            ),
        ];
        for (method, route) in routes {
            let response = call(method.clone(), route.replace("{}", &too_long))
                .await
                .unwrap();
            assert_eq!(response.status(), 422, "{method} {route}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error_code"], 42208, "{method} {route}: {body}");
            assert!(body["message"].is_string(), "{method} {route}: {body}");
        }

        let longest = "s".repeat(MAX_SUBJECT_BYTES);
        let response = call(
            reqwest::Method::GET,
            format!("/subjects/{longest}/versions"),
        )
        .await
        .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error_code"], 50001, "{body}");
        server.abort();
    }

    #[test]
    fn versions_parse_like_confluents() {
        assert_eq!(parse_version("latest").unwrap(), VersionSpec::Latest);
        assert_eq!(parse_version("LATEST").unwrap(), VersionSpec::Latest);
        assert_eq!(parse_version("-1").unwrap(), VersionSpec::Latest);
        assert_eq!(parse_version("7").unwrap(), VersionSpec::Number(7));
        for bad in ["0", "-2", "abc", "", "99999999999"] {
            assert!(
                matches!(parse_version(bad), Err(ApiError::InvalidVersion(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_codes_map_to_http_statuses() {
        assert_eq!(
            ApiError::SubjectNotFound("s".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::InvalidVersion("x".into()).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let incompatible = ApiError::Incompatible {
            subject: "s".into(),
            level: Level::Backward,
            messages: vec!["why".into()],
        };
        assert_eq!(incompatible.status(), StatusCode::CONFLICT);
        assert!(incompatible.message().contains("why"));
        assert!(!incompatible.is_retryable());
    }

    #[test]
    fn invalid_schema_message_carries_the_parser_reason() {
        let error = parse_schema_request(&Bytes::from_static(
            br#"{"schema":"{\"type\":\"record\",\"name\":\"R\"}"}"#,
        ))
        .unwrap_err();
        assert_eq!(error.code(), 42201);
        assert!(
            error.message().len() > "Invalid schema".len(),
            "{}",
            error.message()
        );
    }
}
