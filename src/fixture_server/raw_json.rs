//! Byte spans of the values inside a JSON text, so captured records can be served byte for byte.
//!
//! Re-serialising a parsed `serde_json::Value` would sort keys, drop `\uXXXX` escapes and
//! normalise whitespace and line ends — exactly the quirks the fetcher must be tested against.
//! So the server only locates each record (and each of its fields) in the file's text and copies
//! those bytes. Callers validate the whole text with `serde_json` first; these functions still
//! never index out of bounds and answer `None` on anything they do not understand.

use std::ops::Range;

/// A byte range of a JSON text.
pub(super) type Span = Range<usize>;

/// One `"key": value` member of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Member {
    /// The key, unescaped.
    pub key: String,
    /// From the key's opening quote to the end of its value: the member as it is written.
    pub whole: Span,
    /// The value alone.
    pub value: Span,
}

/// The span of the single value that makes up `text`, leading and trailing whitespace excluded.
pub(super) fn document(text: &str) -> Option<Span> {
    let bytes = text.as_bytes();
    let start = skip_whitespace(bytes, 0);
    let end = value_end(bytes, start)?;
    (skip_whitespace(bytes, end) == bytes.len()).then_some(start..end)
}

/// The elements of the array at `array`.
pub(super) fn array_elements(text: &str, array: &Span) -> Option<Vec<Span>> {
    let bytes = text.as_bytes();
    if bytes.get(array.start) != Some(&b'[') {
        return None;
    }
    let mut elements = Vec::new();
    let mut at = skip_whitespace(bytes, array.start + 1);
    if bytes.get(at) == Some(&b']') {
        return Some(elements);
    }
    loop {
        let end = value_end(bytes, at)?;
        elements.push(at..end);
        at = skip_whitespace(bytes, end);
        match bytes.get(at)? {
            b',' => at = skip_whitespace(bytes, at + 1),
            b']' if at + 1 == array.end => return Some(elements),
            _ => return None,
        }
    }
}

/// The members of the object at `object`, in the order they are written.
pub(super) fn object_members(text: &str, object: &Span) -> Option<Vec<Member>> {
    let bytes = text.as_bytes();
    if bytes.get(object.start) != Some(&b'{') {
        return None;
    }
    let mut members = Vec::new();
    let mut at = skip_whitespace(bytes, object.start + 1);
    if bytes.get(at) == Some(&b'}') {
        return Some(members);
    }
    loop {
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(bytes, at)?;
        let key = serde_json::from_str(text.get(at..key_end)?).ok()?;
        let colon = skip_whitespace(bytes, key_end);
        if bytes.get(colon) != Some(&b':') {
            return None;
        }
        let value_start = skip_whitespace(bytes, colon + 1);
        let end = value_end(bytes, value_start)?;
        members.push(Member {
            key,
            whole: at..end,
            value: value_start..end,
        });
        at = skip_whitespace(bytes, end);
        match bytes.get(at)? {
            b',' => at = skip_whitespace(bytes, at + 1),
            b'}' if at + 1 == object.end => return Some(members),
            _ => return None,
        }
    }
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// One past the last byte of the value starting at `start`.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    match bytes.get(start)? {
        b'"' => string_end(bytes, start),
        b'{' | b'[' => container_end(bytes, start),
        _ => {
            let mut at = start;
            while let Some(byte) = bytes.get(at) {
                if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                at += 1;
            }
            (at > start).then_some(at)
        }
    }
}

fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        match bytes.get(at)? {
            b'\\' => at += 2,
            b'"' => return Some(at + 1),
            _ => at += 1,
        }
    }
}

/// Brackets inside strings do not count, so strings are skipped whole.
fn container_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = start;
    loop {
        match bytes.get(at)? {
            b'"' => {
                at = string_end(bytes, at)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn splits_an_array_keeping_each_element_verbatim() {
        let text = "[\r\n\t{\"a\": \"x]}\\\"\" , \"b\":[1, {}]} ,\n 2.5e3,\"\\u00e9\" ,null]";
        let whole = document(text).unwrap();
        let parts: Vec<&str> = array_elements(text, &whole)
            .unwrap()
            .into_iter()
            .map(|span| &text[span])
            .collect();
        assert_eq!(
            parts,
            [
                "{\"a\": \"x]}\\\"\" , \"b\":[1, {}]}",
                "2.5e3",
                "\"\\u00e9\"",
                "null"
            ]
        );
    }

    #[test]
    fn lists_object_members_with_unescaped_keys() {
        let text = "{ \"na\\u006de\" : {\"first\":\"a\"}, \"nat\":\"US\" }";
        let members = object_members(text, &document(text).unwrap()).unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].key, "name");
        assert_eq!(
            &text[members[0].whole.clone()],
            "\"na\\u006de\" : {\"first\":\"a\"}"
        );
        assert_eq!(&text[members[0].value.clone()], "{\"first\":\"a\"}");
        assert_eq!(members[1].key, "nat");
        assert_eq!(&text[members[1].value.clone()], "\"US\"");
    }

    #[test]
    fn empty_containers_have_no_parts() {
        assert_eq!(array_elements(" [ ] ", &(1..4)), Some(vec![]));
        assert_eq!(object_members("{\n}", &(0..3)), Some(vec![]));
    }

    #[test]
    fn malformed_text_gives_none_instead_of_panicking() {
        for text in [
            "[1,", "{\"a\"", "{\"a\":}", "[\"open", "]", "", "[1 2]", "{} x", "{1:2}",
        ] {
            let split = document(text).and_then(|span| {
                if text.starts_with('[') {
                    array_elements(text, &span).map(drop)
                } else {
                    object_members(text, &span).map(drop)
                }
            });
            assert!(split.is_none(), "{text:?} was split");
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[ -~\\p{Cyrillic}\\\\\"{}\\[\\],:]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\"\\\\ ]{0,6}", inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn elements_and_members_reparse_to_what_serde_json_sees(
            generated in prop::collection::vec(json_value(), 0..6),
            pretty in any::<bool>(),
        ) {
            let array = Value::Array(generated);
            let text = if pretty {
                serde_json::to_string_pretty(&array).unwrap().replace('\n', "\r\n")
            } else {
                serde_json::to_string(&array).unwrap()
            };
            // Compared with serde_json's reading of the same text: floats need not round-trip.
            let Value::Array(items) = parse(&text) else { unreachable!() };
            let spans = array_elements(&text, &document(&text).unwrap()).unwrap();
            prop_assert_eq!(spans.len(), items.len());
            for (span, item) in spans.iter().zip(&items) {
                prop_assert_eq!(&parse(&text[span.clone()]), item);
                if let Value::Object(map) = item {
                    let members = object_members(&text, span).unwrap();
                    prop_assert_eq!(members.len(), map.len());
                    for member in members {
                        prop_assert_eq!(&parse(&text[member.value.clone()]), &map[&member.key]);
                    }
                }
            }
        }
    }
}
