//! Compatibility levels and the check a new schema must pass before it becomes a version.
//!
//! "Can `reader` read data written with `writer`" is apache-avro's
//! [`SchemaCompatibility::can_read`]. Its `Partial` answer (only some of the writer's values
//! resolve: a union branch or an enum symbol the reader lacks) counts as incompatible, as it
//! does in Avro's Java checker that Confluent's registry uses: a consumer must be able to read
//! every value the producer may write.

use std::error::Error as _;
use std::fmt;
use std::str::FromStr;

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;

/// A subject's compatibility level, with Confluent's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    pub const ALL: [Level; 7] = [
        Level::None,
        Level::Backward,
        Level::BackwardTransitive,
        Level::Forward,
        Level::ForwardTransitive,
        Level::Full,
        Level::FullTransitive,
    ];

    /// The level of a registry (or subject) nobody configured.
    pub const DEFAULT: Level = Level::Backward;

    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn is_transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    /// Whether the new schema must read data written with the old ones.
    fn checks_backward(self) -> bool {
        matches!(
            self,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    /// Whether the old schemas must read data written with the new one.
    fn checks_forward(self) -> bool {
        matches!(
            self,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        )
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the seven levels.
#[derive(Debug, thiserror::Error)]
#[error("invalid compatibility level {0:?}: valid levels are NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL and FULL_TRANSITIVE")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    /// Case-insensitive, as Confluent's registry accepts it.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| UnknownLevel(raw.to_owned()))
    }
}

/// An existing version the new schema is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Existing<'a> {
    pub version: i32,
    pub schema: &'a Schema,
}

/// Checks `new` against `existing` (oldest first) at `level`: against the newest only, or
/// against every one for the `_TRANSITIVE` levels. Returns one message per failed direction;
/// empty means compatible.
pub fn check(level: Level, new: &Schema, existing: &[Existing<'_>]) -> Vec<String> {
    let against: &[Existing<'_>] = if level.is_transitive() {
        existing
    } else {
        match existing.split_last() {
            Some((latest, _)) => std::slice::from_ref(latest),
            None => &[],
        }
    };
    let mut messages = Vec::new();
    for old in against.iter().rev() {
        if level.checks_backward() {
            if let Err(reason) = can_read(old.schema, new) {
                messages.push(format!(
                    "{level}: the new schema cannot read data written with version {}: {reason}",
                    old.version
                ));
            }
        }
        if level.checks_forward() {
            if let Err(reason) = can_read(new, old.schema) {
                messages.push(format!(
                    "{level}: version {} cannot read data written with the new schema: {reason}",
                    old.version
                ));
            }
        }
    }
    messages
}

/// Whether every value written with `writer` can be read with `reader`; the reason when not.
pub fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    // Third-party code on request input: a panic must become a refusal, not a dropped request.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        SchemaCompatibility::can_read(writer, reader)
    }));
    match outcome {
        Ok(Ok(Compatibility::Full)) => Ok(()),
        Ok(Ok(Compatibility::Partial)) => Err(
            "only some of the writer's values can be read: the reader lacks a union branch or an \
             enum symbol the writer may write (and has no enum default)"
                .to_owned(),
        ),
        Ok(Err(error)) => {
            let mut reason = error.to_string();
            let mut source = error.source();
            while let Some(cause) = source {
                reason.push_str(": ");
                reason.push_str(&cause.to_string());
                source = cause.source();
            }
            Err(reason)
        }
        Err(_) => Err("the compatibility checker failed on these schemas".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    //! The Avro resolution rules (specification, "Schema Resolution") on the cases the pipeline's
    //! schema evolution relies on, checked against apache-avro's checker.

    use super::*;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"User","namespace":"t","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    const ID: &str = r#"{"name":"id","type":"string"}"#;

    #[test]
    fn adding_a_field_needs_a_default_for_the_new_reader() {
        let old = record(ID);
        let with_default = record(&format!(
            r#"{ID},{{"name":"age","type":"int","default":0}}"#
        ));
        let without_default = record(&format!(r#"{ID},{{"name":"age","type":"int"}}"#));
        assert_eq!(can_read(&old, &with_default), Ok(()));
        let reason = can_read(&old, &without_default).unwrap_err();
        assert!(reason.contains("age"), "{reason}");
        // The old reader ignores the writer's extra field either way.
        assert_eq!(can_read(&with_default, &old), Ok(()));
        assert_eq!(can_read(&without_default, &old), Ok(()));
    }

    #[test]
    fn removing_a_field_needs_a_default_for_the_old_reader() {
        let old_with_default = record(&format!(
            r#"{ID},{{"name":"age","type":"int","default":0}}"#
        ));
        let old_without_default = record(&format!(r#"{ID},{{"name":"age","type":"int"}}"#));
        let new = record(ID);
        // The new reader ignores the old writer's field.
        assert_eq!(can_read(&old_without_default, &new), Ok(()));
        // The old reader needs the default for the field the new writer no longer writes.
        assert_eq!(can_read(&new, &old_with_default), Ok(()));
        assert!(can_read(&new, &old_without_default).is_err());
    }

    #[test]
    fn int_widens_to_long_but_long_does_not_narrow_to_int() {
        let int = record(r#"{"name":"n","type":"int"}"#);
        let long = record(r#"{"name":"n","type":"long"}"#);
        assert_eq!(can_read(&int, &long), Ok(()));
        let reason = can_read(&long, &int).unwrap_err();
        assert!(reason.contains('n'), "{reason}");
    }

    #[test]
    fn a_renamed_field_resolves_through_the_readers_alias() {
        let old = record(r#"{"name":"surname","type":"string"}"#);
        let renamed = record(r#"{"name":"last_name","type":"string","aliases":["surname"]}"#);
        let renamed_without_alias = record(r#"{"name":"last_name","type":"string"}"#);
        assert_eq!(can_read(&old, &renamed), Ok(()));
        assert!(can_read(&old, &renamed_without_alias).is_err());
    }

    #[test]
    fn an_added_enum_symbol_is_backward_but_not_forward_compatible() {
        let field = |symbols: &str| {
            record(&format!(
                r#"{{"name":"g","type":{{"type":"enum","name":"Gender","symbols":[{symbols}]}}}}"#
            ))
        };
        let old = field(r#""female","male""#);
        let new = field(r#""female","male","other""#);
        assert_eq!(can_read(&old, &new), Ok(()));
        assert!(can_read(&new, &old).is_err());
    }

    #[test]
    fn levels_pick_directions_and_versions() {
        let v1 = record(ID);
        let v2 = record(&format!(r#"{ID},{{"name":"age","type":"int"}}"#));
        let v3 = record(&format!(
            r#"{ID},{{"name":"age","type":"int","default":0}}"#
        ));
        let existing = [
            Existing {
                version: 1,
                schema: &v1,
            },
            Existing {
                version: 2,
                schema: &v2,
            },
        ];
        // v3 reads v2's data (age present) and v1's (age defaults).
        assert!(check(Level::Backward, &v3, &existing).is_empty());
        assert!(check(Level::BackwardTransitive, &v3, &existing).is_empty());
        // v1 as a new schema: reads v2 (ignores age); v2 cannot read v1 (age has no default).
        assert!(check(Level::Backward, &v1, &existing).is_empty());
        let forward = check(Level::Forward, &v1, &existing);
        assert_eq!(forward.len(), 1, "{forward:?}");
        assert!(forward[0].contains("version 2"), "{forward:?}");
        // v2 as a new schema against v1 alone: cannot read v1 data (no default for age).
        let transitive = check(Level::FullTransitive, &v2, &existing[..1]);
        assert_eq!(transitive.len(), 1, "{transitive:?}");
        assert!(check(Level::None, &v2, &existing[..1]).is_empty());
        assert!(check(Level::Full, &v3, &[]).is_empty());
    }

    #[test]
    fn level_names_parse_case_insensitively() {
        assert_eq!(
            "full_transitive".parse::<Level>().unwrap(),
            Level::FullTransitive
        );
        for level in Level::ALL {
            assert_eq!(level.as_str().parse::<Level>().unwrap(), level);
        }
        assert!("SIDEWAYS".parse::<Level>().is_err());
    }
}
