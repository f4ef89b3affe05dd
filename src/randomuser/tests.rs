//! Each response shape and quirk, on a real record from `fixtures/randomuser/`; the failure
//! modes of whole bodies and of single records; and property tests that the parser is total.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::error::Retryable;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/randomuser/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn parse(name: &str) -> Response {
    parse_response(&fixture(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// The accepted records of a fixture, asserting that none was rejected.
fn users(name: &str) -> Vec<ParsedUser> {
    let response = parse(name);
    assert_eq!(response.rejected().count(), 0, "{name}");
    response.accepted().cloned().collect()
}

fn at(text: &str) -> Option<DateTime<Utc>> {
    Some(
        DateTime::parse_from_rfc3339(text)
            .expect("test timestamp")
            .with_timezone(&Utc),
    )
}

fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}

#[test]
fn legacy_2013_user_wrapper_with_spaced_hash_keys() {
    let users = users("legacy-2013-results1-unsalted-md5-hash-keys--lnplnp.json");
    let user = &users[0];
    let r = &user.record;
    assert_eq!(r.first_name, s("nevaeh"));
    assert_eq!(r.street_name, s("5912 karen dr"));
    assert_eq!(r.street_number, None);
    assert_eq!(r.postcode, s("84972"), "location.zip as a string");
    assert_eq!(r.national_id_name, s("SSN"));
    assert_eq!(r.national_id_value, s("778-66-2572"));
    assert_eq!(
        r.picture_large,
        s("http://randomuser.me/g/portraits/women/16.jpg"),
        "a picture string is the large picture; \\/ unescaped"
    );
    assert_eq!((r.username.as_deref(), r.date_of_birth), (None, None));
    assert_eq!(r.nat, None);
    // Neither username, registration nor birth date: the id hashes the person's fields.
    assert_eq!(user.id_source, IdSource::Content);
    assert_eq!(r.id, "213bf1db-85fb-5087-88fe-529993d375e7");
    // The raw JSON keeps the wrapper and the seed.
    assert_eq!(user.raw["seed"], json!("4acde725ee16eac3"));
    assert_eq!(
        user.raw["user"]["md5 hash"],
        json!("b8e7be5dfa2ce0714d21dcfc7d72382c")
    );
}

#[test]
fn legacy_0_3_2_dates_are_unix_seconds_in_strings() {
    let users = users("v0.3.2-results10-legacy-per-record-seed--levitanong.json");
    let r = &users[0].record;
    // "registered":"1254799332","dob":"312527930"
    assert_eq!(r.registered_at, at("2009-10-06T03:22:12Z"));
    assert_eq!(r.date_of_birth, at("1979-11-27T05:18:50Z"));
    assert_eq!(r.username, s("whitebird514"), "the flat legacy username");
    assert_eq!(r.postcode, s("11691"));
    assert_eq!(users[0].id_source, IdSource::UsernameRegistered);
    assert_eq!(users[0].raw["version"], json!("0.3.2"));
}

#[test]
fn legacy_0_8_envelope_and_numeric_zip() {
    let response = parse("v0.8-results1000-legacy-user-wrapper-US--hitanshu12.json");
    assert_eq!(response.records.len(), 1000);
    let info = response.info.as_ref().expect("legacy metadata");
    assert_eq!(info.version.as_deref(), Some("0.8"));
    assert_eq!(info.nationality.as_deref(), Some("US"));
    assert_eq!(info.seed.as_deref(), Some("df9431287d46cf0e0d"));
    assert_eq!(info.results, None);
    let first = response.accepted().next().expect("a record");
    assert_eq!(
        first.record.postcode,
        s("40732"),
        "zip sent as the number 40732"
    );
    assert_eq!(
        first.record.nat, None,
        "the envelope's nationality is not copied into records"
    );
}

#[test]
fn legacy_0_8_with_crlf_line_ends() {
    let users = users("v0.8-results1-legacy-crlf--ArifShaikh123890.json");
    let r = &users[0].record;
    assert_eq!(r.first_name, s("terrance"));
    assert_eq!(r.postcode, s("25559"));
    assert_eq!(r.registered_at, DateTime::from_timestamp(1_073_445_793, 0));
    assert_eq!(r.date_of_birth, DateTime::from_timestamp(1_298_464_893, 0));
}

#[test]
fn v1_0_bare_array_with_unix_dates_and_null_id_value() {
    let response = parse("v1.0-results20-array-undefined-salt-hash-bug--Alexander-Welsh.json");
    assert_eq!(response.info, None);
    let second = response.accepted().nth(1).expect("record 1");
    let r = &second.record;
    assert_eq!(r.email, s("vincent.lévesque@example.com"));
    assert_eq!(r.date_of_birth, DateTime::from_timestamp(748_963_407, 0));
    assert_eq!(r.national_id_name, s(""));
    assert_eq!(r.national_id_value, None, "id.value null");
    assert_eq!(r.postcode, s("19070"));
    assert_eq!(second.id_source, IdSource::UsernameRegistered);
}

#[test]
fn v1_1_dates_without_a_zone_are_utc() {
    let users = users("v1.1-results1-NL--carbaj03.json");
    let r = &users[0].record;
    // "dob": "1983-07-14 07:29:45", "registered": "2010-09-24 02:10:42"
    assert_eq!(r.date_of_birth, at("1983-07-14T07:29:45Z"));
    assert_eq!(r.registered_at, at("2010-09-24T02:10:42Z"));
    assert_eq!(r.national_id_value, s("04242023"), "leading zero kept");
    assert_eq!((r.latitude, r.timezone_offset.as_deref()), (None, None));
}

#[test]
fn v1_2_street_string_coordinates_and_second_precision_dates() {
    let users = users("v1.2-results10-mixed-7nat--Balaji-Gopal.json");
    let r = &users[0].record;
    assert_eq!(r.street_name, s("6381 mevlana cd"));
    assert_eq!(r.country, None, "1.2 has no location.country");
    assert_eq!((r.latitude, r.longitude), (Some(78.3707), Some(-32.1916)));
    assert_eq!(r.timezone_offset, s("-9:00"));
    assert_eq!(r.date_of_birth, at("1944-11-04T04:08:11Z"));
    assert_eq!(r.email, s("okan.ilıcalı@example.com"));
    assert_eq!(r.id, "d71aefe5-3961-4f1f-9293-408b50eebb9c");
}

#[test]
fn docs_sample_labelled_1_3_in_the_1_2_shape() {
    let response = parse("v1.3-label-docs-sample-brad-gibson-1.2-shape--grokify.json");
    assert_eq!(
        response.info.as_ref().and_then(|i| i.version.as_deref()),
        Some("1.3")
    );
    let r = &response.accepted().next().expect("brad").record;
    assert_eq!(r.street_name, s("9278 new road"));
    assert_eq!(r.postcode, s("93027"), "a string postcode");
    assert_eq!(r.date_of_birth, at("1993-07-20T09:44:18.674Z"));
}

#[test]
fn v1_3_street_object_and_string_postcode() {
    let users = users("v1.3-results1-GB-compact--bhubr.json");
    let r = &users[0].record;
    assert_eq!(r.street_number, s("4992"), "street.number sent as a number");
    assert_eq!(r.street_name, s("King Street"));
    assert_eq!(r.postcode, s("K47 1GX"));
    assert_eq!(r.country, s("United Kingdom"));
}

#[test]
fn v1_3_id_null() {
    let users = users("v1.3-results1-BR-compact-id-null--0x0012.json");
    let r = &users[0].record;
    assert_eq!(
        (
            r.national_id_name.as_deref(),
            r.national_id_value.as_deref()
        ),
        (Some(""), None)
    );
}

#[test]
fn v1_4_escaped_unicode_and_string_postcodes() {
    let users = users("v1.4-results5-mixed--Manyan06.json");
    // Written as "Y\u0131lmazer" and "Hakk\u00e2ri" by Python's json.dump.
    assert_eq!(users[4].record.last_name, s("Yılmazer"));
    assert_eq!(users[4].record.city, s("Hakkâri"));
    assert_eq!(users[1].record.postcode, s("5217 US"));
    assert_eq!(
        users[2].record.postcode,
        s("816"),
        "the number 816, as sent"
    );
}

#[test]
fn v1_4_crlf_and_tabs() {
    let users = users("v1.4-results1-BR-crlf--fmaver.json");
    assert_eq!(users[0].record.first_name, s("Tanise"));
    assert_eq!(users[0].record.phone, s("(01) 5401-0397"));
}

#[test]
fn inc_subset_without_login_uses_email_and_birth() {
    let users = users("v1.3-results10-array-inc-7fields--kevsaj.json");
    let user = &users[1];
    assert_eq!(user.record.username, None);
    assert_eq!(user.record.gender, None);
    assert_eq!(user.record.nat, None);
    assert_eq!(user.record.country, s("Canada"));
    assert_eq!(user.id_source, IdSource::EmailDob);
}

#[test]
fn inc_subset_without_location() {
    let users = users("v1.4-results1-inc-no-location-picture-nat--daynamariejpembie.json");
    let r = &users[0].record;
    assert_eq!(r.id, "bf32d95b-17fc-4c23-8124-ce49a810a0f2");
    assert_eq!(
        (r.city.as_deref(), r.picture_large.as_deref()),
        (None, None)
    );
    assert_eq!(r.phone, s("60060919"));
}

#[test]
fn noinfo_body() {
    let response = parse("noinfo-v1.3shape-results1-CH--sergiomarmu.json");
    assert_eq!(response.info, None);
    assert_eq!(response.accepted().count(), 1);
}

#[test]
fn credentials_never_reach_the_record_but_stay_in_raw() {
    for name in [
        "v1.4-results111-mixed-21nat--codeacademyuz.json",
        "v0.8-results1-legacy-crlf--ArifShaikh123890.json",
        "legacy-2013-results5-unsalted-md5-hash-keys--lnplnp.json",
        "v0.3.2-results10-legacy-per-record-seed--levitanong.json",
    ] {
        for user in users(name) {
            let user_object = user.raw.get("user").unwrap_or(&user.raw);
            let login = user_object.get("login").unwrap_or(user_object);
            let record = serde_json::to_string(&user.record).expect("record serializes");
            let mut secrets = 0;
            for key in [
                "password",
                "salt",
                "md5",
                "sha1",
                "sha256",
                "md5 hash",
                "sha1 hash",
            ] {
                if let Some(Value::String(secret)) = login.get(key) {
                    secrets += 1;
                    assert!(
                        !record.contains(&format!("\"{secret}\"")),
                        "{name}: {key} leaked"
                    );
                }
            }
            assert!(secrets >= 2, "{name}: the raw JSON keeps the credentials");
        }
    }
}

#[test]
fn ids_are_deterministic_and_ignore_mutable_fields() {
    let name = "v1.1-results20-mixed-11nat--kirian.json";
    let first = users(name);
    let again = users(name);
    assert_eq!(
        first.iter().map(|u| &u.record.id).collect::<Vec<_>>(),
        again.iter().map(|u| &u.record.id).collect::<Vec<_>>()
    );
    // The same person after moving and changing phone keeps the id.
    let mut raw = first[0].raw.clone();
    raw["phone"] = json!("071-000-0000");
    raw["location"]["city"] = json!("dublin");
    let body = serde_json::to_vec(&json!([raw])).expect("body");
    let moved = parse_response(&body).expect("parses");
    let moved = moved.accepted().next().expect("accepted");
    assert_eq!(moved.record.id, first[0].record.id);
    assert_eq!(moved.id_source, IdSource::UsernameRegistered);
    // Distinct people get distinct ids.
    let mut ids: Vec<_> = first.iter().map(|u| u.record.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), first.len());
}

#[test]
fn derived_ids_are_pinned() {
    // Changing the derivation would re-key every stored legacy user; this makes it visible.
    let namespace = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        b"https://randomuser.me/#userstream-user-id",
    );
    assert_eq!(ID_NAMESPACE, namespace);
    let users = users("v0.8-results1-legacy-crlf--ArifShaikh123890.json");
    let name = br#"["username_registered","purplefrog560","2004-01-07T03:23:13Z"]"#;
    assert_eq!(
        users[0].record.id,
        uuid::Uuid::new_v5(&ID_NAMESPACE, name).to_string()
    );
}

#[test]
fn login_uuid_is_canonicalized() {
    let body = br#"[{"login": {"uuid": " D71AEFE5-3961-4F1F-9293-408B50EEBB9C "}}]"#;
    let response = parse_response(body).expect("parses");
    let user = response.accepted().next().expect("accepted");
    assert_eq!(user.record.id, "d71aefe5-3961-4f1f-9293-408b50eebb9c");
    assert_eq!(user.id_source, IdSource::LoginUuid);
}

#[test]
fn one_bad_record_never_costs_its_page() {
    let good = serde_json::from_slice::<Value>(&fixture("v1.4-results1-US--Xmaxkambek.json"))
        .expect("fixture")["results"][0]
        .clone();
    let with = |path: &[&str], value: Value| {
        let mut record = good.clone();
        let mut target = &mut record;
        for key in &path[..path.len() - 1] {
            target = &mut target[*key];
        }
        target[path[path.len() - 1]] = value;
        record
    };
    let results = vec![
        good.clone(),
        json!(42),
        with(&["dob", "date"], json!("yesterday")),
        with(&["login", "uuid"], json!("not-a-uuid")),
        with(&["name"], json!("Maureen Reid")),
        with(&["location", "coordinates", "latitude"], json!("north")),
        with(&["location", "street"], json!(12)),
        with(&["location", "postcode"], json!(["37886"])),
        with(&["registered"], json!(true)),
        json!({"user": "legacy"}),
        good.clone(),
    ];
    let body = serde_json::to_vec(&json!({ "results": results })).expect("body");
    let response = parse_response(&body).expect("the page as a whole is fine");
    assert_eq!(response.records.len(), 11);
    assert_eq!(response.accepted().count(), 2);
    let rejected: Vec<(usize, &str, RejectReason)> = response
        .rejected()
        .map(|r| (r.index, r.field, r.reason))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (1, "record", RejectReason::NotAnObject),
            (2, "dob.date", RejectReason::InvalidDate),
            (3, "login.uuid", RejectReason::InvalidUuid),
            (4, "name", RejectReason::WrongType),
            (
                5,
                "location.coordinates.latitude",
                RejectReason::InvalidNumber
            ),
            (6, "location.street", RejectReason::WrongType),
            (7, "location.postcode", RejectReason::WrongType),
            (8, "registered", RejectReason::WrongType),
            (9, "user", RejectReason::NotAnObject),
        ]
    );
    let report = response.rejected().nth(1).expect("dob").to_string();
    assert!(
        report.contains("dob.date") && report.contains("yesterday"),
        "{report}"
    );
}

#[test]
fn unusable_bodies_are_told_apart() {
    let full = fixture("v1.4-results1-US--Xmaxkambek.json");
    let cases: Vec<(&[u8], &str, bool)> = vec![
        (b"", "empty", true),
        (b" \r\n\t", "empty", true),
        (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "html", true),
        (&full[..full.len() / 2], "truncated", true),
        (b"Service Unavailable", "not_json", true),
        (
            br#"{"error":"Uh oh, something has gone wrong. Please tweet us @randomapi about the issue. Thank you."}"#,
            "api_error",
            true,
        ),
        (br#"{"results": {"gender": "male"}}"#, "shape", false),
        (br#"{"info": {"seed": "x"}}"#, "shape", false),
        (b"42", "shape", false),
    ];
    for (body, kind, retryable) in cases {
        let error = parse_response(body).expect_err(kind);
        assert_eq!(error.kind(), kind, "{error}");
        assert_eq!(error.is_retryable(), retryable, "{kind}");
    }
    match parse_response(br#"{"error": "Uh oh"}"#) {
        Err(ResponseError::Api { message }) => assert_eq!(message, "Uh oh"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_byte_order_mark_is_tolerated() {
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend(fixture("v1.4-results1-DE-compact--mscimath.json"));
    assert_eq!(parse_response(&body).expect("parses").accepted().count(), 1);
}

#[test]
fn every_strict_prefix_of_a_fixture_is_truncated() {
    let body = fixture("v1.4-results1-NL-string-postcode--nadiageet.json");
    let end = body
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .expect("content");
    for cut in 1..=end {
        let error = parse_response(&body[..cut]).expect_err("a strict prefix");
        assert_eq!(error.kind(), "truncated", "cut at {cut}");
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".*".prop_map(Value::from),
        Just(json!("1983-07-14 07:29:45")),
        Just(json!("+5:30")),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        let key = prop_oneof![
            Just("user".to_owned()),
            Just("results".to_owned()),
            Just("login".to_owned()),
            Just("uuid".to_owned()),
            Just("dob".to_owned()),
            Just("date".to_owned()),
            Just("location".to_owned()),
            Just("street".to_owned()),
            Just("postcode".to_owned()),
            Just("coordinates".to_owned()),
            Just("picture".to_owned()),
            Just("id".to_owned()),
            Just("error".to_owned()),
            "[a-z]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_response(&body);
    }

    #[test]
    fn accounts_for_every_element_of_arbitrary_json(results in prop::collection::vec(arbitrary_json(), 0..8)) {
        let count = results.len();
        let body = serde_json::to_vec(&json!({ "results": results })).expect("body");
        let response = parse_response(&body).expect("a results array is a valid page");
        prop_assert_eq!(response.records.len(), count);
        for (index, outcome) in response.records.iter().enumerate() {
            if let RecordOutcome::Rejected(rejection) = outcome {
                prop_assert_eq!(rejection.index, index);
            }
        }
    }

    #[test]
    fn never_panics_on_arbitrary_json(value in arbitrary_json()) {
        let body = serde_json::to_vec(&value).expect("body");
        let _ = parse_response(&body);
    }
}
