//! Every captured randomuser.me response, parsed and normalized: each file's exact counts of
//! records accepted by the parser, rejected by it (with the field and reason), and of accepted
//! records that normalization refuses (with the reason). Together they account for every one
//! of the 2,848 fixture records.

use std::collections::BTreeMap;
use std::path::PathBuf;

use userstream::normalize::normalize;
use userstream::randomuser::{parse_response, RecordOutcome};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/randomuser")
}

/// What became of one file's records.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    /// Parsed and normalized: written to Cassandra.
    written: usize,
    /// Rejected by the parser, as "field: reason".
    parse_rejected: BTreeMap<String, usize>,
    /// Parsed (so stored in PostgreSQL) but refused by normalization, as "field: reason".
    invalid: BTreeMap<String, usize>,
}

fn counts_of(body: &[u8]) -> Counts {
    let response = match parse_response(body) {
        Ok(response) => response,
        Err(error) => panic!("the whole body was refused: {error}"),
    };
    let mut counts = Counts::default();
    for outcome in &response.records {
        match outcome {
            RecordOutcome::Accepted(parsed) => match normalize(&parsed.record) {
                Ok(_) => counts.written += 1,
                Err(error) => {
                    *counts
                        .invalid
                        .entry(format!("{}: {}", error.field, error.reason.as_str()))
                        .or_default() += 1
                }
            },
            RecordOutcome::Rejected(rejection) => {
                *counts
                    .parse_rejected
                    .entry(format!(
                        "{}: {}",
                        rejection.field,
                        rejection.reason.as_str()
                    ))
                    .or_default() += 1
            }
        }
    }
    counts
}

/// (file, records written, parser rejections, normalization refusals)
type Expected = (
    &'static str,
    usize,
    &'static [(&'static str, usize)],
    &'static [(&'static str, usize)],
);

const NO_COUNTRY: &str = "country_code: no_country";

/// The expected outcome of every fixture file.
#[rustfmt::skip]
const EXPECTED: &[Expected] = &[
    ("legacy-2013-results1-unsalted-md5-hash-keys--lnplnp.json", 1, &[], &[]),
    ("legacy-2013-results5-unsalted-md5-hash-keys--lnplnp.json", 5, &[], &[]),
    ("noinfo-results5-inc-name-email-picture--cristianarroyave.json", 0, &[], &[(NO_COUNTRY, 5)]),
    ("noinfo-v1.3shape-results1-CH--sergiomarmu.json", 1, &[], &[]),
    ("v0.3.2-results10-legacy-per-record-seed--levitanong.json", 10, &[], &[]),
    ("v0.8-results1-legacy-crlf--ArifShaikh123890.json", 1, &[], &[]),
    ("v0.8-results1000-legacy-user-wrapper-US--hitanshu12.json", 1000, &[], &[]),
    ("v1.0-results20-array-undefined-salt-hash-bug--Alexander-Welsh.json", 20, &[], &[]),
    ("v1.0-results50-inc-6fields--PropellerBeanie.json", 0, &[], &[(NO_COUNTRY, 50)]),
    ("v1.1-results1-NL--carbaj03.json", 1, &[], &[]),
    ("v1.1-results20-mixed-11nat--kirian.json", 20, &[], &[]),
    ("v1.2-results10-mixed-7nat--Balaji-Gopal.json", 10, &[], &[]),
    ("v1.3-label-docs-sample-brad-gibson-1.2-shape--grokify.json", 1, &[], &[]),
    ("v1.3-results1-BR-compact-id-null--0x0012.json", 1, &[], &[]),
    ("v1.3-results1-GB-compact--bhubr.json", 1, &[], &[]),
    ("v1.3-results10-array-inc-7fields--kevsaj.json", 10, &[], &[]),
    ("v1.3-results10-array-only-no-info--BlackPPoint.json", 10, &[], &[]),
    ("v1.3-results10-mixed-7nat--qkipa00.json", 10, &[], &[]),
    ("v1.3-results100-inc-8fields-no-nat--raxden.json", 100, &[], &[]),
    ("v1.3-results20-mixed-10nat--manuvikn.json", 20, &[], &[]),
    ("v1.3-results200-nat-US--macksm3.json", 200, &[], &[]),
    ("v1.3-results200-nat-US-compact--jennifoo.json", 200, &[], &[]),
    ("v1.3-results40-mixed-16nat--mandaleo.json", 40, &[], &[]),
    ("v1.3-results50-mixed-16nat--TiffanyObi.json", 50, &[], &[]),
    ("v1.3-results50-mixed-16nat--alexpaul.json", 50, &[], &[]),
    ("v1.3-results50-mixed-17nat--oscarvictoria.json", 50, &[], &[]),
    ("v1.3-results50-seed-abc-page1-exc-registered--drawers.json", 50, &[], &[]),
    ("v1.3-results50-seed-abc-page2-exc-registered--drawers.json", 50, &[], &[]),
    ("v1.3-results50-seed-abc-page3-exc-registered--drawers.json", 50, &[], &[]),
    ("v1.3-results50-seed-abc-page4-exc-registered--drawers.json", 50, &[], &[]),
    ("v1.3-results500-mixed-17nat--smanuk.json", 500, &[], &[]),
    ("v1.4-results1-BR-crlf--fmaver.json", 1, &[], &[]),
    ("v1.4-results1-DE-compact--mscimath.json", 1, &[], &[]),
    ("v1.4-results1-NL-string-postcode--nadiageet.json", 1, &[], &[]),
    ("v1.4-results1-US--Xmaxkambek.json", 1, &[], &[]),
    ("v1.4-results1-inc-no-location-picture-nat--daynamariejpembie.json", 0, &[], &[(NO_COUNTRY, 1)]),
    ("v1.4-results100-noinfo-compact-21nat--undescoreF.json", 100, &[], &[]),
    ("v1.4-results111-mixed-21nat--codeacademyuz.json", 111, &[], &[]),
    ("v1.4-results20-mixed-15nat--maksimtest.json", 20, &[], &[]),
    ("v1.4-results40-mixed-18nat--daynamariejpembie.json", 40, &[], &[]),
    ("v1.4-results5-mixed--Manyan06.json", 5, &[], &[]),
];

#[test]
fn every_fixture_record_is_accounted_for() {
    let mut files: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures directory")
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let listed: Vec<&str> = EXPECTED.iter().map(|(file, ..)| *file).collect();
    let mut failures = Vec::new();
    let mut total = 0;
    for file in &files {
        let body = std::fs::read(fixtures_dir().join(file)).expect("fixture file");
        let actual = counts_of(&body);
        total += actual.written
            + actual.parse_rejected.values().sum::<usize>()
            + actual.invalid.values().sum::<usize>();
        let Some((_, written, rejected, invalid)) = EXPECTED.iter().find(|(f, ..)| f == file)
        else {
            failures.push(format!("{file}: not in the table; actual {actual:?}"));
            continue;
        };
        let expected = Counts {
            written: *written,
            parse_rejected: rejected.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            invalid: invalid.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        if actual != expected {
            failures.push(format!("{file}: expected {expected:?}, actual {actual:?}"));
        }
    }
    for file in &listed {
        if !files.iter().any(|f| f == file) {
            failures.push(format!("{file}: in the table but not in the fixtures"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(total, 2848, "SOURCES.md counts 2,848 records");
    assert_eq!(files.len(), 41, "SOURCES.md lists 41 files");
}
