//! The randomuser.me API's response bodies, from every era of the API, read into
//! [`crate::model::UserRecord`]s.
//!
//! Pure: bytes in, records out, no I/O. The fetcher calls [`parse_response`] on each page.
//!
//! # Response shapes
//!
//! * API 1.x: `{"results": [...], "info": {"seed", "results", "page", "version"}}`.
//! * `noinfo`: `{"results": [...]}`; captured fixtures also hold a bare `[...]` array.
//! * Legacy 0.x: `{"results": [{"user": {...}, "seed": ..., "version": ...}], "nationality": ...,
//!   "seed": ..., "version": ...}`: each record wrapped in `user`, the response metadata at the
//!   top level instead of in `info`.
//! * `{"error": "..."}`: the API's own failure body.
//!
//! A body that is unusable as a whole (not JSON, truncated, HTML, the error body, or JSON of
//! another shape) is a [`ResponseError`]. Otherwise every element of `results` becomes one
//! [`RecordOutcome`]: accepted, or rejected with the field at fault, so one bad record never
//! costs the rest of its page. How each field of each version is read is documented on
//! [`record`]; how a record without `login.uuid` gets its id, on [`id`].

mod id;
mod record;

use serde_json::{Map, Value};

use crate::error::Retryable;
use crate::model::UserRecord;

pub use id::{IdSource, ID_NAMESPACE};
pub use record::{RejectReason, Rejection};

/// One parsed response page.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The response's metadata: `info`, or the legacy top-level members; `None` for `noinfo`
    /// bodies and bare arrays.
    pub info: Option<Info>,
    /// One outcome per element of `results`, in order.
    pub records: Vec<RecordOutcome>,
}

impl Response {
    /// The accepted records, in order.
    pub fn accepted(&self) -> impl Iterator<Item = &ParsedUser> {
        self.records.iter().filter_map(|outcome| match outcome {
            RecordOutcome::Accepted(user) => Some(&**user),
            RecordOutcome::Rejected(_) => None,
        })
    }

    /// The rejected records, in order.
    pub fn rejected(&self) -> impl Iterator<Item = &Rejection> {
        self.records.iter().filter_map(|outcome| match outcome {
            RecordOutcome::Accepted(_) => None,
            RecordOutcome::Rejected(rejection) => Some(rejection),
        })
    }
}

/// A response's metadata. Every member is optional: old versions send fewer, and a member of
/// an unexpected type is left out rather than failing a page whose records are fine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    pub seed: Option<String>,
    /// The number of records the API says it sent.
    pub results: Option<u64>,
    pub page: Option<u64>,
    pub version: Option<String>,
    /// Legacy 0.x only: the requested nationality ("US"). It is deliberately not copied into the
    /// records' `nat`: the same record served without its envelope (a mirror, the fixture
    /// server) must map to the same values.
    pub nationality: Option<String>,
}

/// What became of one element of `results`.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    /// Boxed: an accepted record is far larger than a rejection.
    Accepted(Box<ParsedUser>),
    Rejected(Rejection),
}

/// An accepted record.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedUser {
    /// The typed fields, credentials left out.
    pub record: UserRecord,
    /// The element exactly as received (legacy `user` wrapper and credentials included); it is
    /// stored in PostgreSQL's `raw` column and nowhere else.
    pub raw: Value,
    /// Where `record.id` came from.
    pub id_source: IdSource,
}

/// Why a whole body was unusable. The fetcher retries the retryable ones with backoff and never
/// writes any part of such a page.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("response body is empty")]
    Empty,
    #[error("response body is HTML, not JSON (a proxy or error page?)")]
    Html,
    #[error("response body is truncated JSON")]
    Truncated(#[source] serde_json::Error),
    #[error("response body is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("the API answered with an error: {message}")]
    Api { message: String },
    #[error("response JSON has an unknown shape: {what}")]
    Shape { what: &'static str },
}

impl ResponseError {
    /// A short, fixed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ResponseError::Empty => "empty",
            ResponseError::Html => "html",
            ResponseError::Truncated(_) => "truncated",
            ResponseError::NotJson(_) => "not_json",
            ResponseError::Api { .. } => "api_error",
            ResponseError::Shape { .. } => "shape",
        }
    }
}

impl Retryable for ResponseError {
    /// Everything but a well-formed JSON body of a foreign shape is what an overloaded API, a
    /// proxy or a dropped connection produces, and goes away by itself.
    fn is_retryable(&self) -> bool {
        !matches!(self, ResponseError::Shape { .. })
    }
}

/// Parses one response body.
pub fn parse_response(body: &[u8]) -> Result<Response, ResponseError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Err(ResponseError::Empty);
    };
    if body[first] == b'<' {
        return Err(ResponseError::Html);
    }
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        if error.classify() == serde_json::error::Category::Eof {
            ResponseError::Truncated(error)
        } else {
            ResponseError::NotJson(error)
        }
    })?;
    let (info, results) = match value {
        Value::Array(results) => (None, results),
        Value::Object(mut top) => {
            let results = match top.remove("results") {
                Some(Value::Array(results)) => results,
                Some(_) => {
                    return Err(ResponseError::Shape {
                        what: "`results` is not an array",
                    })
                }
                None => return Err(no_results(&top)),
            };
            (info(&top), results)
        }
        _ => {
            return Err(ResponseError::Shape {
                what: "neither an object nor an array",
            })
        }
    };
    let version = info.as_ref().and_then(|info| info.version.as_deref());
    let records = results
        .into_iter()
        .enumerate()
        .map(|(index, raw)| match record::map(index, &raw) {
            Ok((mut record, id_source)) => {
                if record.source_api_version.is_none() {
                    record.source_api_version = version.map(str::to_owned);
                }
                RecordOutcome::Accepted(Box::new(ParsedUser {
                    record,
                    raw,
                    id_source,
                }))
            }
            Err(rejection) => RecordOutcome::Rejected(rejection),
        })
        .collect();
    Ok(Response { info, records })
}

/// An object without `results`: the API's error body, or something else entirely.
fn no_results(top: &Map<String, Value>) -> ResponseError {
    match top.get("error") {
        Some(Value::String(message)) => ResponseError::Api {
            message: message.clone(),
        },
        Some(other) => ResponseError::Api {
            message: other.to_string(),
        },
        None => ResponseError::Shape {
            what: "an object without `results`",
        },
    }
}

/// `info`, or for legacy bodies the same members at the top level.
fn info(top: &Map<String, Value>) -> Option<Info> {
    let source = match top.get("info") {
        Some(Value::Object(info)) => info,
        _ => top,
    };
    let text = |key: &str| source.get(key).and_then(Value::as_str).map(str::to_owned);
    let number = |key: &str| source.get(key).and_then(Value::as_u64);
    let info = Info {
        seed: text("seed"),
        results: number("results"),
        page: number("page"),
        version: text("version"),
        nationality: text("nationality"),
    };
    (info != Info::default()).then_some(info)
}

#[cfg(test)]
mod tests;
