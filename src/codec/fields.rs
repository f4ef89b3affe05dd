//! The one place that knows how each [`UserRecord`] field maps to an Avro field: its name, its
//! Rust-side kind, and the conversions both ways. Adding a field to `UserRecord` fails to compile
//! here until it is mapped: the struct is destructured and built exhaustively, and each field's
//! conversion is picked by its declared type, which must match the struct's.

use apache_avro::types::Value;
use chrono::{DateTime, Utc};

use crate::model::UserRecord;

/// The Rust-side type of a field, which fixes the Avro type the newest schema must give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `string`.
    RequiredString,
    /// `["null", "string"]`.
    OptionalString,
    /// `["null", "long"]`.
    OptionalLong,
    /// `["null", "double"]`.
    OptionalDouble,
    /// `["null", {"type": "long", "logicalType": "timestamp-micros"}]`.
    OptionalTimestampMicros,
}

macro_rules! user_fields {
    ($($variant:ident => $field:ident : $ty:ty),+ $(,)?) => {
        /// A field of [`UserRecord`], named as in the Avro schema.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Field {
            $($variant),+
        }

        impl Field {
            /// Every field, in `UserRecord`'s declaration order.
            #[cfg(test)]
            pub(crate) const ALL: &[Field] = &[$(Field::$variant),+];

            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Field::$variant => stringify!($field)),+
                }
            }

            pub(crate) fn kind(self) -> Kind {
                match self {
                    $(Field::$variant => <$ty as AvroField>::KIND),+
                }
            }

            pub(crate) fn from_name(name: &str) -> Option<Field> {
                match name {
                    $(stringify!($field) => Some(Field::$variant),)+
                    _ => None,
                }
            }

            /// This field's value in `record`, borrowed.
            #[inline]
            pub(crate) fn value_of(self, record: &UserRecord) -> FieldRef<'_> {
                match self {
                    $(Field::$variant => AvroField::field_ref(&record.$field)),+
                }
            }
        }

        /// The record as `(field name, value)` pairs ready for the writer schema.
        pub(crate) fn to_avro_fields(record: &UserRecord) -> Vec<(String, Value)> {
            let UserRecord { $($field),+ } = record;
            vec![$((stringify!($field).to_owned(), AvroField::to_avro($field))),+]
        }

        /// Sets one field of `record` from its typed value.
        pub(crate) fn assign(record: &mut UserRecord, field: Field, value: Typed) -> Result<(), ValueProblem> {
            match field {
                $(Field::$variant => record.$field = <$ty as AvroField>::from_typed(value)?),+
            }
            Ok(())
        }

        /// The `Option<String>` field of `record` that `field` names; `None` for a field of
        /// another type.
        #[inline]
        pub(crate) fn optional_text(record: &mut UserRecord, field: Field) -> Option<&mut Option<String>> {
            match field {
                $(Field::$variant => AvroField::as_optional_text(&mut record.$field)),+
            }
        }

        /// A record with every field empty, filled by [`assign`]. The struct literal names every
        /// field so a new `UserRecord` field cannot be forgotten here.
        pub(crate) fn empty_record() -> UserRecord {
            UserRecord { $($field: <$ty>::default()),+ }
        }
    };
}

user_fields! {
    Id => id: String,
    Gender => gender: Option<String>,
    Title => title: Option<String>,
    FirstName => first_name: Option<String>,
    LastName => last_name: Option<String>,
    Email => email: Option<String>,
    Username => username: Option<String>,
    DateOfBirth => date_of_birth: Option<DateTime<Utc>>,
    RegisteredAt => registered_at: Option<DateTime<Utc>>,
    Phone => phone: Option<String>,
    Cell => cell: Option<String>,
    StreetNumber => street_number: Option<String>,
    StreetName => street_name: Option<String>,
    City => city: Option<String>,
    State => state: Option<String>,
    Country => country: Option<String>,
    Postcode => postcode: Option<String>,
    Latitude => latitude: Option<f64>,
    Longitude => longitude: Option<f64>,
    TimezoneOffset => timezone_offset: Option<String>,
    TimezoneDescription => timezone_description: Option<String>,
    NationalIdName => national_id_name: Option<String>,
    NationalIdValue => national_id_value: Option<String>,
    PictureLarge => picture_large: Option<String>,
    PictureMedium => picture_medium: Option<String>,
    PictureThumbnail => picture_thumbnail: Option<String>,
    Nat => nat: Option<String>,
    SourceApiVersion => source_api_version: Option<String>,
    Age => age: Option<i64>,
    IdSource => id_source: Option<String>,
}

/// A field value after Avro promotion, before it lands in the struct.
#[derive(Debug, Clone)]
pub(crate) enum Typed {
    Null,
    String(String),
    Long(i64),
    Double(f64),
    TimestampMicros(i64),
}

/// Why a (well-formed) Avro value cannot become the field it is meant for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueProblem {
    #[error("required field is null")]
    RequiredNull,
    #[error("expected {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    #[error("bytes are not valid UTF-8 text")]
    NotUtf8,
    #[error("timestamp of {micros} µs since the epoch is outside the representable range")]
    TimestampOutOfRange { micros: i64 },
    #[error("UserRecord has no such field")]
    UnknownField,
}

/// The Avro value types a field may hold after the writer→reader promotions the Avro
/// specification allows (int/long/float → double, int → long, bytes → string).
pub(crate) fn promote(field: Field, value: Value) -> Result<Typed, ValueProblem> {
    let wrong = |found: &Value| ValueProblem::WrongType {
        expected: expected_name(field.kind()),
        found: value_name(found),
    };
    match (field.kind(), value) {
        (_, Value::Null) => Ok(Typed::Null),
        (Kind::RequiredString | Kind::OptionalString, Value::String(text)) => {
            Ok(Typed::String(text))
        }
        (Kind::RequiredString | Kind::OptionalString, Value::Bytes(bytes)) => {
            String::from_utf8(bytes)
                .map(Typed::String)
                .map_err(|_| ValueProblem::NotUtf8)
        }
        (Kind::OptionalLong, Value::Long(x)) => Ok(Typed::Long(x)),
        (Kind::OptionalLong, Value::Int(x)) => Ok(Typed::Long(i64::from(x))),
        (Kind::OptionalDouble, Value::Double(x)) => Ok(Typed::Double(x)),
        (Kind::OptionalDouble, Value::Float(x)) => Ok(Typed::Double(f64::from(x))),
        // Avro's int/long → double promotion is lossy for large longs by definition.
        (Kind::OptionalDouble, Value::Long(x)) => Ok(Typed::Double(x as f64)),
        (Kind::OptionalDouble, Value::Int(x)) => Ok(Typed::Double(f64::from(x))),
        (Kind::OptionalTimestampMicros, Value::TimestampMicros(us) | Value::Long(us)) => {
            Ok(Typed::TimestampMicros(us))
        }
        (Kind::OptionalTimestampMicros, Value::Int(us)) => {
            Ok(Typed::TimestampMicros(i64::from(us)))
        }
        (_, other) => Err(wrong(&other)),
    }
}

/// An `apache_avro` record value, resolved to the newest schema (the generic path, e.g.
/// `from_avro_datum` with the newest schema as the reader) → a `UserRecord`. Fields are matched
/// by name; the codec's own [`Decoder`](super::Decoder) does not take this path.
pub fn record_from_value(value: Value) -> Result<UserRecord, InvalidField> {
    let Value::Record(fields) = value else {
        return Err(InvalidField {
            field: String::new(),
            problem: ValueProblem::WrongType {
                expected: "record",
                found: value_name(&value),
            },
        });
    };
    let mut record = empty_record();
    let mut has_id = false;
    for (name, value) in fields {
        let Some(field) = Field::from_name(&name) else {
            return Err(InvalidField {
                field: name,
                problem: ValueProblem::UnknownField,
            });
        };
        let value = match value {
            Value::Union(_, inner) => *inner,
            value => value,
        };
        has_id |= field == Field::Id;
        promote(field, value)
            .and_then(|typed| assign(&mut record, field, typed))
            .map_err(|problem| InvalidField {
                field: name,
                problem,
            })?;
    }
    if !has_id {
        return Err(InvalidField {
            field: Field::Id.name().to_owned(),
            problem: ValueProblem::RequiredNull,
        });
    }
    Ok(record)
}

/// A field of an `apache_avro` value that is not the `UserRecord` field of its name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid value of field `{field}`")]
pub struct InvalidField {
    pub field: String,
    #[source]
    pub problem: ValueProblem,
}

/// The Avro schema a field of this kind has, as written in an `.avsc` file.
pub(crate) fn schema_for_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::RequiredString => r#""string""#,
        Kind::OptionalString => r#"["null", "string"]"#,
        Kind::OptionalLong => r#"["null", "long"]"#,
        Kind::OptionalDouble => r#"["null", "double"]"#,
        Kind::OptionalTimestampMicros => {
            r#"["null", {"type": "long", "logicalType": "timestamp-micros"}]"#
        }
    }
}

pub(crate) fn expected_name(kind: Kind) -> &'static str {
    match kind {
        Kind::RequiredString | Kind::OptionalString => "string",
        Kind::OptionalLong => "long",
        Kind::OptionalDouble => "double",
        Kind::OptionalTimestampMicros => "timestamp-micros long",
    }
}

fn value_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int(_) => "int",
        Value::Long(_) => "long",
        Value::Float(_) => "float",
        Value::Double(_) => "double",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "string",
        Value::Fixed(..) => "fixed",
        Value::Enum(..) => "enum",
        Value::Union(..) => "union",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Record(_) => "record",
        Value::TimestampMicros(_) => "timestamp-micros",
        Value::TimestampMillis(_) => "timestamp-millis",
        Value::TimestampNanos(_) => "timestamp-nanos",
        Value::LocalTimestampMillis(_)
        | Value::LocalTimestampMicros(_)
        | Value::LocalTimestampNanos(_) => "local-timestamp",
        Value::Date(_) => "date",
        Value::TimeMillis(_) | Value::TimeMicros(_) => "time",
        Value::Uuid(_) => "uuid",
        Value::Decimal(_) | Value::BigDecimal(_) => "decimal",
        Value::Duration(_) => "duration",
    }
}

/// A field's value, borrowed from the record, by kind.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldRef<'a> {
    String(&'a str),
    OptionalString(Option<&'a str>),
    OptionalLong(Option<i64>),
    OptionalDouble(Option<f64>),
    OptionalTimestamp(Option<DateTime<Utc>>),
}

/// How a Rust field type travels as Avro; one impl per type `UserRecord` uses.
pub(crate) trait AvroField: Sized {
    const KIND: Kind;
    fn to_avro(&self) -> Value;
    fn field_ref(&self) -> FieldRef<'_>;
    fn from_typed(value: Typed) -> Result<Self, ValueProblem>;

    fn as_optional_text(&mut self) -> Option<&mut Option<String>> {
        None
    }
}

impl AvroField for String {
    const KIND: Kind = Kind::RequiredString;

    fn to_avro(&self) -> Value {
        Value::String(self.clone())
    }

    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::String(self)
    }

    fn from_typed(value: Typed) -> Result<Self, ValueProblem> {
        match value {
            Typed::String(text) => Ok(text),
            Typed::Null => Err(ValueProblem::RequiredNull),
            other => Err(mismatch(Self::KIND, &other)),
        }
    }
}

impl AvroField for Option<String> {
    const KIND: Kind = Kind::OptionalString;

    fn to_avro(&self) -> Value {
        optional(self.as_ref().map(|text| Value::String(text.clone())))
    }

    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::OptionalString(self.as_deref())
    }

    fn from_typed(value: Typed) -> Result<Self, ValueProblem> {
        match value {
            Typed::Null => Ok(None),
            Typed::String(text) => Ok(Some(text)),
            other => Err(mismatch(Self::KIND, &other)),
        }
    }

    fn as_optional_text(&mut self) -> Option<&mut Option<String>> {
        Some(self)
    }
}

impl AvroField for Option<i64> {
    const KIND: Kind = Kind::OptionalLong;

    fn to_avro(&self) -> Value {
        optional(self.map(Value::Long))
    }

    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::OptionalLong(*self)
    }

    fn from_typed(value: Typed) -> Result<Self, ValueProblem> {
        match value {
            Typed::Null => Ok(None),
            Typed::Long(x) => Ok(Some(x)),
            other => Err(mismatch(Self::KIND, &other)),
        }
    }
}

impl AvroField for Option<f64> {
    const KIND: Kind = Kind::OptionalDouble;

    fn to_avro(&self) -> Value {
        optional(self.map(Value::Double))
    }

    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::OptionalDouble(*self)
    }

    fn from_typed(value: Typed) -> Result<Self, ValueProblem> {
        match value {
            Typed::Null => Ok(None),
            Typed::Double(x) => Ok(Some(x)),
            other => Err(mismatch(Self::KIND, &other)),
        }
    }
}

impl AvroField for Option<DateTime<Utc>> {
    const KIND: Kind = Kind::OptionalTimestampMicros;

    fn to_avro(&self) -> Value {
        // Every chrono `DateTime` fits in i64 microseconds (±262,000 years < ±292,000).
        optional(self.map(|at| Value::TimestampMicros(at.timestamp_micros())))
    }

    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::OptionalTimestamp(*self)
    }

    fn from_typed(value: Typed) -> Result<Self, ValueProblem> {
        match value {
            Typed::Null => Ok(None),
            Typed::TimestampMicros(micros) => DateTime::from_timestamp_micros(micros)
                .map(Some)
                .ok_or(ValueProblem::TimestampOutOfRange { micros }),
            other => Err(mismatch(Self::KIND, &other)),
        }
    }
}

/// The value of a `["null", T]` union: branch 0 is null, branch 1 the value.
fn optional(value: Option<Value>) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(value) => Value::Union(1, Box::new(value)),
    }
}

fn mismatch(kind: Kind, found: &Typed) -> ValueProblem {
    ValueProblem::WrongType {
        expected: expected_name(kind),
        found: match found {
            Typed::Null => "null",
            Typed::String(_) => "string",
            Typed::Long(_) => "long",
            Typed::Double(_) => "double",
            Typed::TimestampMicros(_) => "timestamp-micros",
        },
    }
}
