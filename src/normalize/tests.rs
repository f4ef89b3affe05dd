//! Each rule on real fixture values, the idempotence of every fixture record, and property tests
//! that normalization is total, idempotent and keeps the id.

use chrono::{DateTime, NaiveDate, Utc};
use proptest::prelude::*;

use super::*;
use crate::randomuser::{parse_response, RecordOutcome};

fn fixture_records(name: &str) -> Vec<UserRecord> {
    let path = format!("{}/fixtures/randomuser/{name}", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    parse_response(&body)
        .unwrap_or_else(|error| panic!("{name}: {error}"))
        .records
        .into_iter()
        .map(|outcome| match outcome {
            RecordOutcome::Accepted(parsed) => parsed.record,
            RecordOutcome::Rejected(rejection) => panic!("{name}: {rejection}"),
        })
        .collect()
}

fn all_fixture_records() -> Vec<UserRecord> {
    let dir = format!("{}/fixtures/randomuser", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names.iter().flat_map(|n| fixture_records(n)).collect()
}

/// A record with only an id and a nationality, plus what `edit` sets.
fn record(edit: impl FnOnce(&mut UserRecord)) -> UserRecord {
    let mut record = UserRecord {
        nat: Some("US".to_owned()),
        ..UserRecord::with_id("63e557de-96c6-4547-823a-44569defa2ca")
    };
    edit(&mut record);
    record
}

fn ok(record: &UserRecord) -> Normalized {
    normalize(record).unwrap_or_else(|error| panic!("{error}"))
}

fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}

fn warning(field: &'static str, reason: WarningReason) -> Warning {
    Warning { field, reason }
}

fn repair(field: &'static str, reason: RepairReason) -> Repair {
    Repair { field, reason }
}

#[test]
fn names_from_lower_case_versions_are_title_cased() {
    // v1.1 kirian #11: "çiğdem" "de munck".
    let records = fixture_records("v1.1-results20-mixed-11nat--kirian.json");
    let n = ok(&records[11]);
    assert_eq!(n.user.title, s("Miss"));
    assert_eq!(n.user.first_name, s("Çiğdem"));
    assert_eq!(n.user.last_name, s("De Munck"));
    assert!(n.repairs.contains(&repair("last_name", RepairReason::Case)));
}

#[test]
fn persian_names_are_kept() {
    let records =
        fixture_records("v1.0-results20-array-undefined-salt-hash-bug--Alexander-Welsh.json");
    let n = ok(&records[6]);
    assert_eq!(n.user.first_name, s("ایلیا"));
    assert_eq!(n.user.last_name, s("جعفری"));
    assert!(!n
        .repairs
        .iter()
        .any(|r| r.field == "first_name" || r.field == "last_name"));
}

#[test]
fn turkish_casing_follows_the_country() {
    let n = ok(&record(|r| {
        r.nat = s("TR");
        r.first_name = s("irem");
        r.last_name = s("ILICALI");
    }));
    assert_eq!(n.user.first_name, s("İrem"));
    assert_eq!(n.user.last_name, s("Ilıcalı"));
}

#[test]
fn email_is_trimmed_and_lower_cased_accents_kept() {
    let n = ok(&record(|r| r.email = s("  Vincent.Lévesque@Example.com ")));
    assert_eq!(n.user.email, s("vincent.lévesque@example.com"));
    assert_eq!(
        n.repairs,
        vec![
            repair("email", RepairReason::Whitespace),
            repair("email", RepairReason::Case)
        ]
    );
    // The UA apostrophe (undescoreF #0) is a valid local-part character.
    let n = ok(&record(|r| r.email = s("kira.g'oydich@example.com")));
    assert_eq!(n.user.email, s("kira.g'oydich@example.com"));
    assert!(n.repairs.is_empty());
}

#[test]
fn email_needs_exactly_one_at_with_text_on_both_sides() {
    for (email, reason) in [
        ("kira.example.com", WarningReason::EmailNoAt),
        ("kira@@example.com", WarningReason::EmailSeveralAt),
        ("kira@home@example.com", WarningReason::EmailSeveralAt),
        ("@example.com", WarningReason::EmailEmptyPart),
        ("kira@", WarningReason::EmailEmptyPart),
        ("kira g@example.com", WarningReason::EmailWhitespace),
    ] {
        let n = ok(&record(|r| r.email = s(email)));
        assert_eq!(n.user.email, None, "{email}");
        assert_eq!(n.warnings, vec![warning("email", reason)], "{email}");
    }
}

#[test]
fn phones_keep_the_original_and_add_e164() {
    // v1.4 US (Xmaxkambek): "(714) 951-5847".
    let records = fixture_records("v1.4-results1-US--Xmaxkambek.json");
    let n = ok(&records[0]);
    assert_eq!(n.user.phone, s("(714) 951-5847"));
    assert_eq!(n.user.phone_e164, s("+17149515847"));
    assert_eq!(n.user.cell_e164, s("+16075965307"));
}

#[test]
fn ua_phones_with_letters_get_a_warning() {
    // undescoreF #0: "(098) X96-1760", "(098) L23-6409".
    let records = fixture_records("v1.4-results100-noinfo-compact-21nat--undescoreF.json");
    let n = ok(&records[0]);
    assert_eq!(n.user.phone, s("(098) X96-1760"));
    assert_eq!(
        (n.user.phone_e164.as_deref(), n.user.cell_e164.as_deref()),
        (None, None)
    );
    assert_eq!(
        n.warnings,
        vec![
            warning("phone_e164", WarningReason::PhoneLetters),
            warning("cell_e164", WarningReason::PhoneLetters)
        ]
    );
}

#[test]
fn postcode_is_text_padded_only_where_a_number_lost_zeros() {
    // drawers page 1 #29: AU postcode sent as the number 648.
    let records = fixture_records("v1.3-results50-seed-abc-page1-exc-registered--drawers.json");
    let n = ok(&records[29]);
    assert_eq!(n.user.postcode, s("0648"));
    assert!(n
        .repairs
        .contains(&repair("postcode", RepairReason::ZeroPadded)));
    // DK is absent from the padding table: the API's 5 digits are not the real 4.
    let n = ok(&record(|r| {
        r.nat = s("DK");
        r.postcode = s("123");
    }));
    assert_eq!(n.user.postcode, s("123"));
    let n = ok(&record(|r| {
        r.nat = s("GB");
        r.postcode = s("K47 1GX");
    }));
    assert_eq!(n.user.postcode, s("K47 1GX"));
}

#[test]
fn dates() {
    let n = ok(&record(|r| {
        r.date_of_birth = DateTime::parse_from_rfc3339("1944-11-04T23:59:59Z")
            .ok()
            .map(|d| d.with_timezone(&Utc));
        r.registered_at = DateTime::parse_from_rfc3339("2010-06-09T16:02:24.123456Z")
            .ok()
            .map(|d| d.with_timezone(&Utc));
    }));
    assert_eq!(n.user.date_of_birth, NaiveDate::from_ymd_opt(1944, 11, 4));
    assert_eq!(
        n.user.registered_at.map(|d| d.timestamp_micros()),
        Some(1_276_099_344_123_000)
    );
    assert_eq!(
        n.repairs,
        vec![repair("registered_at", RepairReason::SubMillisecond)]
    );
}

#[test]
fn coordinates_are_range_checked_as_a_pair() {
    let n = ok(&record(|r| {
        r.latitude = Some(-89.8778);
        r.longitude = Some(179.8553);
    }));
    assert_eq!(
        (n.user.latitude, n.user.longitude),
        (Some(-89.8778), Some(179.8553))
    );
    for (lat, lon, field, reason) in [
        (90.5, 10.0, "latitude", WarningReason::OutOfRange),
        (10.0, -180.5, "longitude", WarningReason::OutOfRange),
        (f64::NAN, 10.0, "latitude", WarningReason::NotFinite),
        (10.0, f64::INFINITY, "longitude", WarningReason::NotFinite),
    ] {
        let n = ok(&record(|r| {
            r.latitude = Some(lat);
            r.longitude = Some(lon);
        }));
        assert_eq!((n.user.latitude, n.user.longitude), (None, None));
        assert_eq!(n.warnings, vec![warning(field, reason)]);
    }
}

#[test]
fn timezone_offsets_become_minutes() {
    for (text, minutes) in [
        ("+5:30", 330),
        ("-3:30", -210),
        ("0:00", 0),
        ("+5:45", 345),
        ("-12:00", -720),
        ("+14:00", 840),
        ("+05:30", 330),
    ] {
        assert_eq!(parse_offset(text), Some(minutes), "{text}");
        let n = ok(&record(|r| r.timezone_offset = s(text)));
        assert_eq!(n.user.timezone_offset_minutes, Some(minutes));
    }
    for (text, reason) in [
        ("+15:00", WarningReason::OutOfRange),
        ("5.5", WarningReason::Unparseable),
        ("+5:3", WarningReason::Unparseable),
        ("+5:60", WarningReason::Unparseable),
        ("UTC", WarningReason::Unparseable),
    ] {
        let n = ok(&record(|r| r.timezone_offset = s(text)));
        assert_eq!(n.user.timezone_offset_minutes, None, "{text}");
        assert_eq!(n.warnings, vec![warning("timezone_offset_minutes", reason)]);
    }
    for minutes in -720..=840 {
        assert_eq!(parse_offset(&format_offset(minutes)), Some(minutes));
    }
    assert_eq!(format_offset(330), "+5:30");
    assert_eq!(format_offset(-210), "-3:30");
    assert_eq!(format_offset(0), "0:00");
}

#[test]
fn street_strings_of_old_versions_are_split() {
    // The docs sample: "9278 new road".
    let records = fixture_records("v1.3-label-docs-sample-brad-gibson-1.2-shape--grokify.json");
    let n = ok(&records[0]);
    assert_eq!(n.user.street_number, s("9278"));
    assert_eq!(n.user.street_name, s("new road"));
    // No leading number: nothing to split.
    let n = ok(&record(|r| r.street_name = s("Place du 8 Février 1962")));
    assert_eq!(
        (n.user.street_number, n.user.street_name),
        (None, s("Place du 8 Février 1962"))
    );
    // A number already sent: the name is kept even if it starts with digits.
    let n = ok(&record(|r| {
        r.street_number = s("12");
        r.street_name = s("5th Avenue");
    }));
    assert_eq!(n.user.street_name, s("5th Avenue"));
}

#[test]
fn whitespace_is_trimmed_and_collapsed() {
    // codeacademyuz #109 "Kongens  Lyngby"; undescoreF #46 "DragolЈuba Jeličića ".
    let records = fixture_records("v1.4-results111-mixed-21nat--codeacademyuz.json");
    let n = ok(&records[109]);
    assert_eq!(n.user.city, s("Kongens Lyngby"));
    let records = fixture_records("v1.4-results100-noinfo-compact-21nat--undescoreF.json");
    let n = ok(&records[46]);
    assert_eq!(n.user.street_name, s("DragolЈuba Jeličića"));
    assert_eq!(
        n.repairs,
        vec![repair("street_name", RepairReason::Whitespace)]
    );
    let n = ok(&record(|r| r.city = s("   ")));
    assert_eq!(n.user.city, None);
    assert_eq!(n.repairs, vec![repair("city", RepairReason::Blank)]);
}

#[test]
fn national_ids_with_generator_artifacts_are_dropped() {
    // manuvikn #8 (FI) "NaNNA603undefined", #5 (FR) "1NNaN89469499 84".
    let records = fixture_records("v1.3-results20-mixed-10nat--manuvikn.json");
    for index in [5, 8] {
        let n = ok(&records[index]);
        assert_eq!(n.user.national_id_value, None);
        assert_eq!(
            n.warnings,
            vec![warning(
                "national_id_value",
                WarningReason::GeneratorArtifact
            )]
        );
    }
}

#[test]
fn country_code_sources() {
    let n = ok(&record(|r| r.nat = s(" gb ")));
    assert_eq!(
        (n.user.nat.as_deref(), n.user.country_code.as_str()),
        (Some("GB"), "GB")
    );
    assert_eq!(n.country_source, CountrySource::Nat);
    let n = ok(&record(|r| r.nat = s("UK")));
    assert_eq!(
        (n.user.nat.as_deref(), n.user.country_code.as_str()),
        (Some("UK"), "GB")
    );
    // raxden (inc without nat): the country name.
    let records = fixture_records("v1.3-results100-inc-8fields-no-nat--raxden.json");
    let n = ok(&records[0]);
    assert_eq!(
        (n.user.nat.as_deref(), n.user.country_code.as_str()),
        (None, "CH")
    );
    assert_eq!(n.country_source, CountrySource::CountryName);
    // Legacy records: only the US SSN says where they are from.
    let records = fixture_records("v0.8-results1-legacy-crlf--ArifShaikh123890.json");
    let n = ok(&records[0]);
    assert_eq!(n.user.country_code, "US");
    assert_eq!(n.country_source, CountrySource::UsSsn);
    // A nationality that is not ISO falls back to the country, with a warning.
    let n = ok(&record(|r| {
        r.nat = s("LEGO");
        r.country = s("Denmark");
    }));
    assert_eq!(
        (n.user.nat.as_deref(), n.user.country_code.as_str()),
        (Some("LEGO"), "DK")
    );
    assert_eq!(n.warnings, vec![warning("nat", WarningReason::NotIso)]);
}

#[test]
fn records_without_a_country_or_id_are_invalid() {
    // PropellerBeanie: inc=gender,name,location,email,phone,picture of 1.0 — GB and US mixed.
    let records = fixture_records("v1.0-results50-inc-6fields--PropellerBeanie.json");
    let error = normalize(&records[0]).expect_err("no country");
    assert_eq!(
        (error.field, error.reason),
        ("country_code", ValidationReason::NoCountry)
    );
    assert!(!crate::error::Retryable::is_retryable(&error));
    let error = normalize(&record(|r| r.id = " ".to_owned())).expect_err("no id");
    assert_eq!(
        (error.field, error.reason),
        ("id", ValidationReason::MissingId)
    );
}

#[test]
fn every_fixture_record_normalizes_idempotently() {
    let mut normalized = 0;
    for record in all_fixture_records() {
        let Ok(first) = normalize(&record) else {
            continue;
        };
        normalized += 1;
        let second = ok(&first.user.to_record());
        assert_eq!(second.user, first.user, "{}", record.id);
        assert_eq!(second.country_source, first.country_source);
        assert!(
            second.repairs.is_empty(),
            "{}: {:?}",
            record.id,
            second.repairs
        );
        assert_eq!(first.user.id, record.id);
    }
    assert_eq!(normalized, 2848 - 56);
}

fn text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        ".*",
        "[ a-zA-Z'’\\-]{0,20}",
        Just("van der berg".to_owned()),
        Just("O'NEIL".to_owned()),
        Just("ǆ ᾈ İ ı ß ǅ".to_owned()),
        Just("  (098) X96-1760 ".to_owned()),
        Just("+5:30".to_owned()),
        Just("9278 new road".to_owned()),
    ])
}

fn instant() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    prop::option::of(
        (
            -8_000_000_000_000i64..8_000_000_000_000,
            0u32..1_000_000_000,
        )
            .prop_filter_map("in range", |(s, ns)| DateTime::from_timestamp(s, ns)),
    )
}

fn coordinate() -> impl Strategy<Value = Option<f64>> {
    prop::option::of(prop_oneof![any::<f64>(), -200.0..200.0f64])
}

fn nat() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("US".to_owned()),
        Just("tr".to_owned()),
        Just("UK".to_owned()),
        Just("LEGO".to_owned()),
        Just("AZ".to_owned()),
        "[A-Z]{2}",
        ".*",
    ])
}

fn user_record() -> impl Strategy<Value = UserRecord> {
    let people = (
        "[0-9a-f-]{1,36}",
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        instant(),
        instant(),
        text(),
        text(),
    );
    let places = (
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        coordinate(),
        coordinate(),
        text(),
        text(),
    );
    let rest = (
        text(),
        text(),
        text(),
        text(),
        text(),
        nat(),
        text(),
        prop::option::of(prop_oneof![any::<i64>(), 0..120i64]),
        text(),
    );
    (people, places, rest).prop_map(
        |(
            (id, gender, title, first, last, email, username, dob, registered, phone, cell),
            (number, street, city, state, country, postcode, lat, lon, offset, tz),
            (id_name, id_value, large, medium, thumbnail, nat, api_version, age, id_source),
        )| UserRecord {
            id,
            gender,
            title,
            first_name: first,
            last_name: last,
            email,
            username,
            date_of_birth: dob,
            registered_at: registered,
            phone,
            cell,
            street_number: number,
            street_name: street,
            city,
            state,
            country,
            postcode,
            latitude: lat,
            longitude: lon,
            timezone_offset: offset,
            timezone_description: tz,
            national_id_name: id_name,
            national_id_value: id_value,
            picture_large: large,
            picture_medium: medium,
            picture_thumbnail: thumbnail,
            nat,
            source_api_version: api_version,
            age,
            id_source,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn normalization_is_total_idempotent_and_keeps_the_id(record in user_record()) {
        // Never panics: a result either way.
        let Ok(first) = normalize(&record) else { return Ok(()) };
        prop_assert_eq!(&first.user.id, &record.id);
        let second = normalize(&first.user.to_record());
        prop_assert!(second.is_ok(), "a normalized user stays valid: {:?}", second);
        let second = second.expect("checked");
        prop_assert_eq!(&second.user, &first.user);
        prop_assert!(second.repairs.is_empty(), "{:?}", second.repairs);
    }

    #[test]
    fn title_case_is_idempotent(name in ".*", turkic in any::<bool>()) {
        let casing = Casing { turkic };
        let clean = name.split_whitespace().collect::<Vec<_>>().join(" ");
        let once = title_case(&clean, casing);
        prop_assert_eq!(title_case(&once, casing), once);
    }

    #[test]
    fn e164_output_is_well_formed(number in "[+]?[0-9 ()./-]{0,20}", country in prop_oneof![
        Just("US"), Just("GB"), Just("DE"), Just("FI"), Just("NZ"), Just("DK")
    ]) {
        if let Ok(e164) = to_e164(&number, country) {
            prop_assert!(e164.starts_with('+'));
            prop_assert!(e164[1..].bytes().all(|b| b.is_ascii_digit()));
            prop_assert!((8..=16).contains(&e164.len()), "{}", e164);
            prop_assert_eq!(to_e164(&e164, country), Ok(e164.clone()));
        }
    }
}
