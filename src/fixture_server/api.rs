//! The `/api/` query: parameters, the seed's record order, and the response body.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::fixtures::Record;

/// The most records one request may ask for, as on randomuser.me.
pub const MAX_RESULTS: usize = 5000;

/// What `info.version` says. The records themselves keep whatever version they were captured in.
pub const API_VERSION: &str = "1.4";

/// A query parameter the server cannot honour.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("results must be a whole number from 1 to {MAX_RESULTS}, got {0:?}")]
    Results(String),
    #[error("page must be a whole number from 1 up, got {0:?}")]
    Page(String),
    #[error("the query string is malformed")]
    Malformed(#[source] axum::extract::rejection::QueryRejection),
}

/// A parsed `/api/` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiQuery {
    pub results: usize,
    pub page: u64,
    /// `None` when the client sent none (or an empty one): the server then picks one.
    pub seed: Option<String>,
    /// Upper-cased nationalities; `None` means no filter.
    pub nat: Option<Vec<String>>,
    pub inc: Option<Vec<String>>,
    pub exc: Option<Vec<String>>,
    pub noinfo: bool,
}

impl ApiQuery {
    /// Reads the parameters the server understands; others (`format`, `gender`, …) are ignored,
    /// and a repeated parameter counts by its last value. Empty values count as absent.
    pub fn parse(params: &[(String, String)]) -> Result<Self, QueryError> {
        let last = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.trim())
        };
        let given = |name: &str| last(name).filter(|value| !value.is_empty());
        let results = match given("results") {
            None => 1,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_RESULTS).contains(n))
                .ok_or_else(|| QueryError::Results(text.to_owned()))?,
        };
        let page = match given("page") {
            None => 1,
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|&page| page >= 1)
                .ok_or_else(|| QueryError::Page(text.to_owned()))?,
        };
        let list = |name: &str| {
            let items: Vec<String> = given(name)?
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_ascii_uppercase)
                .collect();
            (!items.is_empty()).then_some(items)
        };
        Ok(Self {
            results,
            page,
            seed: given("seed").map(str::to_owned),
            nat: list("nat"),
            inc: list("inc"),
            exc: list("exc"),
            noinfo: last("noinfo").is_some(),
        })
    }
}

/// A seed for a client that sent none: 16 hex digits, like the API's own.
pub fn random_seed() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The seed's permutation of `records`, as indices: records sorted by a hash of seed and id.
///
/// Hashing each record's stable id (rather than shuffling with a seeded generator) keeps the
/// order independent of the `rand` version and of records added to or removed from the folder.
pub fn seed_order(seed: &str, records: &[Record]) -> Vec<usize> {
    let mut prefix = Sha256::new();
    // The length first, so that no (seed, id) pair can hash like another.
    prefix.update((seed.len() as u64).to_le_bytes());
    prefix.update(seed);
    let mut keyed: Vec<([u8; 32], usize)> = records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            (
                prefix.clone().chain_update(&record.id).finalize().into(),
                index,
            )
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, index)| index).collect()
}

/// The response body for `query` under `seed`: exactly the API's JSON shape, records verbatim.
pub fn render(records: &[Record], query: &ApiQuery, seed: &str) -> String {
    let offset = usize::try_from(query.page - 1)
        .unwrap_or(usize::MAX)
        .saturating_mul(query.results);
    let page: Vec<&Record> = seed_order(seed, records)
        .into_iter()
        .filter_map(|index| records.get(index))
        .filter(|record| match &query.nat {
            None => true,
            Some(nats) => record.nat.as_ref().is_some_and(|nat| nats.contains(nat)),
        })
        .skip(offset)
        .take(query.results)
        .collect();
    let listed = |list: &Option<Vec<String>>, key: &str| {
        list.as_ref()
            .is_some_and(|names| names.iter().any(|name| name.eq_ignore_ascii_case(key)))
    };
    let mut body = String::from("{\"results\":[");
    for (position, record) in page.iter().enumerate() {
        if position > 0 {
            body.push(',');
        }
        if query.inc.is_none() && query.exc.is_none() {
            body.push_str(&record.raw);
        } else {
            body.push_str(&record.filtered(|key| {
                (query.inc.is_none() || listed(&query.inc, key)) && !listed(&query.exc, key)
            }));
        }
    }
    body.push(']');
    if !query.noinfo {
        let _ = write!(
            body,
            ",\"info\":{{\"seed\":{},\"results\":{},\"page\":{},\"version\":\"{API_VERSION}\"}}",
            serde_json::Value::from(seed),
            page.len(),
            query.page,
        );
    }
    body.push('}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) => (key.to_owned(), value.to_owned()),
                None => (pair.to_owned(), String::new()),
            })
            .collect()
    }

    fn records(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record::for_test(&format!("f.json#{i}"), &format!("{{\"i\":{i}}}")))
            .collect()
    }

    #[test]
    fn defaults_match_the_api() {
        let query = ApiQuery::parse(&params("")).unwrap();
        assert_eq!(
            query,
            ApiQuery {
                results: 1,
                page: 1,
                seed: None,
                nat: None,
                inc: None,
                exc: None,
                noinfo: false,
            }
        );
    }

    #[test]
    fn reads_lists_case_insensitively_and_noinfo_without_value() {
        let query = ApiQuery::parse(&params(
            "results=10&page=3&seed=abc&nat=us, gb,&inc=Name&noinfo",
        ))
        .unwrap();
        assert_eq!(query.results, 10);
        assert_eq!(query.page, 3);
        assert_eq!(query.seed.as_deref(), Some("abc"));
        assert_eq!(query.nat, Some(vec!["US".to_owned(), "GB".to_owned()]));
        assert_eq!(query.inc, Some(vec!["NAME".to_owned()]));
        assert!(query.noinfo);
    }

    #[test]
    fn refuses_bad_numbers_naming_the_parameter() {
        for (query, expected) in [
            ("results=5001", "results must be"),
            ("results=0", "results must be"),
            ("results=-1", "results must be"),
            ("results=ten", "results must be"),
            ("results=99999999999999999999999", "results must be"),
            ("page=0", "page must be"),
            ("page=1.5", "page must be"),
        ] {
            let error = ApiQuery::parse(&params(query)).unwrap_err().to_string();
            assert!(error.contains(expected), "{query}: {error}");
        }
        assert!(ApiQuery::parse(&params("results=5000")).is_ok());
    }

    #[test]
    fn a_page_far_past_the_end_is_empty() {
        let records = records(3);
        let query = ApiQuery::parse(&params(&format!("page={}&results=5000", u64::MAX))).unwrap();
        let body: serde_json::Value = serde_json::from_str(&render(&records, &query, "s")).unwrap();
        assert_eq!(body["results"], serde_json::json!([]));
        assert_eq!(body["info"]["results"], 0);
    }

    proptest! {
        #[test]
        fn every_seed_gives_a_permutation(seed in ".{0,20}", n in 0usize..200) {
            let records = records(n);
            let mut order = seed_order(&seed, &records);
            prop_assert_eq!(&order, &seed_order(&seed, &records));
            order.sort_unstable();
            prop_assert_eq!(order, (0..n).collect::<Vec<_>>());
        }

        #[test]
        fn pages_partition_the_records(seed in "[a-z0-9]{1,8}", per_page in 1usize..40) {
            let records = records(97);
            let mut seen = Vec::new();
            for page in 1.. {
                let query = ApiQuery::parse(&params(
                    &format!("seed={seed}&results={per_page}&page={page}"),
                ))
                .unwrap();
                let body: serde_json::Value =
                    serde_json::from_str(&render(&records, &query, &seed)).unwrap();
                let results = body["results"].as_array().unwrap().clone();
                if results.is_empty() {
                    break;
                }
                seen.extend(results.iter().map(|r| r["i"].as_u64().unwrap()));
            }
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..97).collect::<Vec<u64>>());
        }
    }

    #[test]
    fn different_seeds_give_different_orders() {
        let records = records(50);
        assert_ne!(seed_order("a", &records), seed_order("b", &records));
        assert_ne!(seed_order("ab", &records), seed_order("a", &records));
    }
}
