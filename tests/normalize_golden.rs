//! The golden file of normalized output (`tests/golden/normalized.txt`), and the check that every
//! example in `docs/normalization.md` is what the code produces.
//!
//! The golden covers, for each fixture file, its first three records plus the first two records
//! of every nationality (or country, where `nat` is absent) of each API version, plus the
//! records with the quirks listed in [`QUIRKS`]. It was checked by hand against the rules of
//! `docs/normalization.md`. After a deliberate change to the rules, regenerate it with
//! `USERSTREAM_UPDATE_GOLDEN=1 cargo test --test normalize_golden`, and read the diff.

#[path = "golden/support.rs"]
mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use support::{fixture_files, lines, records, render};
use userstream::normalize::normalize;

/// Records picked for a quirk the rule-based selection may miss.
const QUIRKS: &[(&str, usize)] = &[
    // CA phones with letters.
    ("v1.4-results100-noinfo-compact-21nat--undescoreF.json", 21),
    // UA name and e-mail with an apostrophe, phone with a letter.
    ("v1.4-results100-noinfo-compact-21nat--undescoreF.json", 0),
    // RS street with a Cyrillic Ј and a trailing space.
    ("v1.4-results100-noinfo-compact-21nat--undescoreF.json", 46),
    // AU postcodes sent as 3-digit numbers.
    (
        "v1.3-results50-seed-abc-page1-exc-registered--drawers.json",
        29,
    ),
    ("v1.4-results5-mixed--Manyan06.json", 2),
    // "Mar?a Elena" as sent.
    ("v1.4-results20-mixed-15nat--maksimtest.json", 4),
    // City "Kongens  Lyngby" with a double space.
    ("v1.4-results111-mixed-21nat--codeacademyuz.json", 109),
    // Dutch "'t", particles, double names.
    ("v1.3-results100-inc-8fields-no-nat--raxden.json", 30),
    ("v1.3-results500-mixed-17nat--smanuk.json", 246),
    ("v1.3-results500-mixed-17nat--smanuk.json", 95),
    ("v1.3-results500-mixed-17nat--smanuk.json", 71),
    ("v1.1-results20-mixed-11nat--kirian.json", 11),
    ("v1.1-results20-mixed-11nat--kirian.json", 15),
    ("v1.3-results100-inc-8fields-no-nat--raxden.json", 40),
    ("v1.4-results111-mixed-21nat--codeacademyuz.json", 78),
    ("v1.4-results20-mixed-15nat--maksimtest.json", 19),
    ("v1.3-results50-mixed-16nat--alexpaul.json", 32),
    (
        "v1.3-results50-seed-abc-page1-exc-registered--drawers.json",
        37,
    ),
    // Accents and a dotless ı in e-mails; lower-case Turkish names.
    (
        "v1.0-results20-array-undefined-salt-hash-bug--Alexander-Welsh.json",
        1,
    ),
    (
        "v1.0-results20-array-undefined-salt-hash-bug--Alexander-Welsh.json",
        2,
    ),
    ("v1.2-results10-mixed-7nat--Balaji-Gopal.json", 0),
    ("v1.1-results20-mixed-11nat--kirian.json", 8),
    ("v1.1-results20-mixed-11nat--kirian.json", 10),
    // A 14-digit GB phone.
    (
        "v1.3-results50-seed-abc-page3-exc-registered--drawers.json",
        7,
    ),
    // Pre-1.2 CH and NL phones in the US layout.
    (
        "v1.0-results20-array-undefined-salt-hash-bug--Alexander-Welsh.json",
        5,
    ),
    (
        "v1.0-results20-array-undefined-salt-hash-bug--Alexander-Welsh.json",
        8,
    ),
    // FI/FR national ids with "NaN"/"undefined".
    ("v1.2-results10-mixed-7nat--Balaji-Gopal.json", 5),
    ("v1.3-results20-mixed-10nat--manuvikn.json", 5),
];

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/normalized.txt")
}

fn docs_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/normalization.md")
}

/// The API version a fixture file name starts with ("v1.3", "legacy", "noinfo").
fn version_of(file: &str) -> &str {
    file.split('-').next().unwrap_or(file)
}

/// (file, index) of every golden record, in file order.
fn selection() -> Vec<(String, usize)> {
    let mut seen: HashMap<(String, Option<String>), usize> = HashMap::new();
    let mut picked = BTreeSet::new();
    for file in fixture_files() {
        for (index, (record, _)) in records(&file).iter().enumerate() {
            let origin = record.nat.clone().or_else(|| record.country.clone());
            let count = seen
                .entry((version_of(&file).to_owned(), origin))
                .or_default();
            if index < 3 || *count < 2 {
                picked.insert((file.clone(), index));
            }
            *count += 1;
        }
    }
    for &(file, index) in QUIRKS {
        picked.insert((file.to_owned(), index));
    }
    picked.into_iter().collect()
}

fn golden_text() -> String {
    let mut cache: HashMap<String, Vec<_>> = HashMap::new();
    let mut out = String::new();
    for (file, index) in selection() {
        let records = cache.entry(file.clone()).or_insert_with(|| records(&file));
        let (record, id_source) = &records[index];
        out.push_str(&render(&file, index, record, *id_source));
        out.push('\n');
    }
    out
}

#[test]
fn golden_spans_every_version_and_nationality() {
    let selection = selection();
    assert!(selection.len() >= 200, "{} records", selection.len());
    let versions: BTreeSet<&str> = selection.iter().map(|(f, _)| version_of(f)).collect();
    let all_versions: BTreeSet<String> = fixture_files()
        .iter()
        .map(|f| version_of(f).to_owned())
        .collect();
    assert_eq!(
        versions,
        all_versions
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
    );
    let mut nats = BTreeSet::new();
    for (file, index) in &selection {
        if let Some(nat) = records(file)[*index].0.nat.clone() {
            nats.insert(nat);
        }
    }
    assert_eq!(nats.len(), 21, "{nats:?}");
}

#[test]
fn normalized_output_matches_the_golden_file() {
    let actual = golden_text();
    if std::env::var_os("USERSTREAM_UPDATE_GOLDEN").is_some() {
        std::fs::write(golden_path(), &actual).expect("write the golden file");
        return;
    }
    let expected = std::fs::read_to_string(golden_path()).expect("tests/golden/normalized.txt");
    if actual != expected {
        let first_difference = actual
            .lines()
            .zip(expected.lines())
            .enumerate()
            .find(|(_, (a, e))| a != e);
        match first_difference {
            Some((line, (a, e))) => panic!(
                "golden differs at line {}:\n  expected: {e}\n  actual:   {a}",
                line + 1
            ),
            None => panic!(
                "golden differs in length: expected {} lines, actual {}",
                expected.lines().count(),
                actual.lines().count()
            ),
        }
    }
}

/// An example row of the docs: `| column | file#index | sent | normalized |`.
struct Example {
    line: usize,
    column: String,
    file: String,
    index: usize,
    sent: String,
    normalized: String,
}

fn examples(markdown: &str) -> Vec<Example> {
    let mut out = Vec::new();
    for (number, line) in markdown.lines().enumerate() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split(" | ")
            .map(|cell| cell.trim().trim_matches('`'))
            .collect();
        let [column, reference, sent, normalized] = cells.as_slice() else {
            continue;
        };
        let Some((file, index)) = reference.split_once(".json#") else {
            continue;
        };
        let Ok(index) = index.parse() else { continue };
        out.push(Example {
            line: number + 1,
            column: column.to_string(),
            file: format!("{file}.json"),
            index,
            sent: sent.to_string(),
            normalized: normalized.to_string(),
        });
    }
    out
}

#[test]
fn every_example_in_the_docs_is_what_the_code_produces() {
    let markdown = std::fs::read_to_string(docs_path()).expect("docs/normalization.md");
    let examples = examples(&markdown);
    assert!(
        examples.len() >= 30,
        "only {} examples found",
        examples.len()
    );
    let mut failures = Vec::new();
    let mut columns = BTreeSet::new();
    for example in &examples {
        let (record, _) = &records(&example.file)[example.index];
        let normalized = match normalize(record) {
            Ok(normalized) => normalized,
            Err(error) => {
                failures.push(format!("line {}: {error}", example.line));
                continue;
            }
        };
        let lines = lines(record, &normalized.user, normalized.country_source);
        match lines.iter().find(|l| l.column == example.column) {
            Some(l) if l.sent == example.sent && l.normalized == example.normalized => {
                columns.insert(l.column);
            }
            Some(l) => failures.push(format!(
                "line {}: {} is {} → {}, the docs say {} → {}",
                example.line, l.column, l.sent, l.normalized, example.sent, example.normalized
            )),
            None => failures.push(format!(
                "line {}: no column {} in that record",
                example.line, example.column
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    let documented = [
        "country_code",
        "nat",
        "gender",
        "title",
        "first_name",
        "last_name",
        "email",
        "date_of_birth",
        "registered_at",
        "phone_e164",
        "cell_e164",
        "street_number",
        "street_name",
        "postcode",
        "latitude",
        "longitude",
        "timezone_offset_minutes",
        "national_id_value",
    ];
    for column in documented {
        assert!(columns.contains(column), "no example for {column}");
    }
}
