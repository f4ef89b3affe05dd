//! CQL data types: their names, protocol option ids, value validation and ordering.

use std::cmp::Ordering;

use bytes::{BufMut, Bytes, BytesMut};

use crate::bigint::BigInt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CqlType {
    Ascii,
    BigInt,
    Blob,
    Boolean,
    Decimal,
    Double,
    Float,
    Int,
    Timestamp,
    Uuid,
    Text,
    Varint,
    Timeuuid,
    Inet,
    Date,
    Time,
    SmallInt,
    TinyInt,
    List {
        element: Box<CqlType>,
        frozen: bool,
    },
    Set {
        element: Box<CqlType>,
        frozen: bool,
    },
    Map {
        key: Box<CqlType>,
        value: Box<CqlType>,
        frozen: bool,
    },
}

impl CqlType {
    /// Resolves a native type name; collection types are built by the parser.
    pub fn native(name: &str) -> Option<CqlType> {
        Some(match name {
            "ascii" => CqlType::Ascii,
            "bigint" => CqlType::BigInt,
            "blob" => CqlType::Blob,
            "boolean" => CqlType::Boolean,
            "decimal" => CqlType::Decimal,
            "double" => CqlType::Double,
            "float" => CqlType::Float,
            "int" => CqlType::Int,
            "timestamp" => CqlType::Timestamp,
            "uuid" => CqlType::Uuid,
            "text" | "varchar" => CqlType::Text,
            "varint" => CqlType::Varint,
            "timeuuid" => CqlType::Timeuuid,
            "inet" => CqlType::Inet,
            "date" => CqlType::Date,
            "time" => CqlType::Time,
            "smallint" => CqlType::SmallInt,
            "tinyint" => CqlType::TinyInt,
            _ => return None,
        })
    }

    pub fn list(element: CqlType) -> CqlType {
        CqlType::List {
            element: Box::new(element),
            frozen: true,
        }
    }

    pub fn set(element: CqlType) -> CqlType {
        CqlType::Set {
            element: Box::new(element),
            frozen: true,
        }
    }

    pub fn map(key: CqlType, value: CqlType) -> CqlType {
        CqlType::Map {
            key: Box::new(key),
            value: Box::new(value),
            frozen: true,
        }
    }

    /// A non-frozen collection: stored element by element, each with its own timestamp.
    pub fn is_multi_cell(&self) -> bool {
        matches!(
            self,
            CqlType::List { frozen: false, .. }
                | CqlType::Set { frozen: false, .. }
                | CqlType::Map { frozen: false, .. }
        )
    }

    pub fn is_collection(&self) -> bool {
        matches!(
            self,
            CqlType::List { .. } | CqlType::Set { .. } | CqlType::Map { .. }
        )
    }

    pub fn with_frozen(self, frozen: bool) -> CqlType {
        match self {
            CqlType::List { element, .. } => CqlType::List { element, frozen },
            CqlType::Set { element, .. } => CqlType::Set { element, frozen },
            CqlType::Map { key, value, .. } => CqlType::Map { key, value, frozen },
            other => other,
        }
    }

    /// The type as CQL spells it (`system_schema.columns.type`, error messages).
    pub fn cql_name(&self) -> String {
        let inner = match self {
            CqlType::Ascii => return "ascii".into(),
            CqlType::BigInt => return "bigint".into(),
            CqlType::Blob => return "blob".into(),
            CqlType::Boolean => return "boolean".into(),
            CqlType::Decimal => return "decimal".into(),
            CqlType::Double => return "double".into(),
            CqlType::Float => return "float".into(),
            CqlType::Int => return "int".into(),
            CqlType::Timestamp => return "timestamp".into(),
            CqlType::Uuid => return "uuid".into(),
            CqlType::Text => return "text".into(),
            CqlType::Varint => return "varint".into(),
            CqlType::Timeuuid => return "timeuuid".into(),
            CqlType::Inet => return "inet".into(),
            CqlType::Date => return "date".into(),
            CqlType::Time => return "time".into(),
            CqlType::SmallInt => return "smallint".into(),
            CqlType::TinyInt => return "tinyint".into(),
            CqlType::List { element, .. } => format!("list<{}>", element.cql_name()),
            CqlType::Set { element, .. } => format!("set<{}>", element.cql_name()),
            CqlType::Map { key, value, .. } => {
                format!("map<{}, {}>", key.cql_name(), value.cql_name())
            }
        };
        match self {
            CqlType::List { frozen: true, .. }
            | CqlType::Set { frozen: true, .. }
            | CqlType::Map { frozen: true, .. } => format!("frozen<{inner}>"),
            _ => inner,
        }
    }

    /// Writes the type as an `[option]` (spec section 4.2.5.2).
    pub fn encode_option(&self, buf: &mut BytesMut) {
        let id: u16 = match self {
            CqlType::Ascii => 0x0001,
            CqlType::BigInt => 0x0002,
            CqlType::Blob => 0x0003,
            CqlType::Boolean => 0x0004,
            CqlType::Decimal => 0x0006,
            CqlType::Double => 0x0007,
            CqlType::Float => 0x0008,
            CqlType::Int => 0x0009,
            CqlType::Timestamp => 0x000B,
            CqlType::Uuid => 0x000C,
            CqlType::Text => 0x000D,
            CqlType::Varint => 0x000E,
            CqlType::Timeuuid => 0x000F,
            CqlType::Inet => 0x0010,
            CqlType::Date => 0x0011,
            CqlType::Time => 0x0012,
            CqlType::SmallInt => 0x0013,
            CqlType::TinyInt => 0x0014,
            CqlType::List { .. } => 0x0020,
            CqlType::Map { .. } => 0x0021,
            CqlType::Set { .. } => 0x0022,
        };
        buf.put_u16(id);
        match self {
            CqlType::List { element, .. } | CqlType::Set { element, .. } => {
                element.encode_option(buf)
            }
            CqlType::Map { key, value, .. } => {
                key.encode_option(buf);
                value.encode_option(buf);
            }
            _ => {}
        }
    }

    /// Validates a serialized value and returns it in canonical form: set elements and map
    /// keys sorted and de-duplicated, as Cassandra stores them.
    pub fn validate(&self, value: &Bytes) -> Result<Bytes, String> {
        let fixed = |len: usize, allow_empty: bool| {
            if value.len() == len || (allow_empty && value.is_empty()) {
                Ok(value.clone())
            } else {
                Err(format!(
                    "expected {len} bytes for a {} value, got {}",
                    self.cql_name(),
                    value.len()
                ))
            }
        };
        match self {
            CqlType::Ascii => {
                if value.is_ascii() {
                    Ok(value.clone())
                } else {
                    Err("invalid byte for ascii: value is not US-ASCII".into())
                }
            }
            CqlType::Text => std::str::from_utf8(value)
                .map(|_| value.clone())
                .map_err(|_| "string didn't validate as UTF-8".into()),
            CqlType::Blob => Ok(value.clone()),
            CqlType::BigInt | CqlType::Timestamp | CqlType::Double => fixed(8, true),
            CqlType::Time => {
                fixed(8, true)?;
                if value.len() == 8 {
                    let nanos = i64::from_be_bytes(to_array(value));
                    if !(0..86_400_000_000_000).contains(&nanos) {
                        return Err(format!("time value {nanos} is outside of one day"));
                    }
                }
                Ok(value.clone())
            }
            CqlType::Int | CqlType::Float | CqlType::Date => fixed(4, true),
            CqlType::SmallInt => fixed(2, false),
            CqlType::TinyInt => fixed(1, false),
            CqlType::Boolean => fixed(1, true),
            CqlType::Uuid => fixed(16, true),
            CqlType::Timeuuid => {
                fixed(16, true)?;
                if value.len() == 16 && value[6] >> 4 != 1 {
                    return Err("unsupported UUID version for a timeuuid (only version 1)".into());
                }
                Ok(value.clone())
            }
            CqlType::Inet => {
                if matches!(value.len(), 0 | 4 | 16) {
                    Ok(value.clone())
                } else {
                    Err(format!("invalid inet value length {}", value.len()))
                }
            }
            CqlType::Varint => Ok(value.clone()),
            CqlType::Decimal => {
                if value.is_empty() || value.len() >= 4 {
                    Ok(value.clone())
                } else {
                    Err("a decimal value needs at least 4 bytes".into())
                }
            }
            CqlType::List { element, .. } => {
                let items = decode_elements(value, 1)?;
                let items = items
                    .into_iter()
                    .map(|i| element.validate(&i[0]))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(encode_collection(items.iter().map(|i| vec![i.clone()])))
            }
            CqlType::Set { element, .. } => {
                let mut items = decode_elements(value, 1)?
                    .into_iter()
                    .map(|i| element.validate(&i[0]))
                    .collect::<Result<Vec<_>, _>>()?;
                items.sort_by(|a, b| element.compare(a, b));
                items.dedup_by(|a, b| element.compare(a, b) == Ordering::Equal);
                Ok(encode_collection(items.into_iter().map(|i| vec![i])))
            }
            CqlType::Map { key, value: vt, .. } => {
                let mut entries = decode_elements(value, 2)?
                    .into_iter()
                    .map(|e| Ok(vec![key.validate(&e[0])?, vt.validate(&e[1])?]))
                    .collect::<Result<Vec<_>, String>>()?;
                // Stable sort then keep the last of equal keys: a literal's later entry wins.
                entries.sort_by(|a, b| key.compare(&a[0], &b[0]));
                let mut out: Vec<Vec<Bytes>> = Vec::with_capacity(entries.len());
                for e in entries {
                    match out.last_mut() {
                        Some(last) if key.compare(&last[0], &e[0]) == Ordering::Equal => *last = e,
                        _ => out.push(e),
                    }
                }
                Ok(encode_collection(out.into_iter()))
            }
        }
    }

    /// Orders two valid values the way Cassandra's comparator for the type does.
    pub fn compare(&self, a: &[u8], b: &[u8]) -> Ordering {
        let (mut ka, mut kb) = (Vec::new(), Vec::new());
        self.sort_key(a, &mut ka);
        self.sort_key(b, &mut kb);
        ka.cmp(&kb)
    }

    /// Appends a byte string whose lexicographic order is the type's order. Every key is
    /// prefix-free, so keys concatenate (compound clustering keys) and invert (DESC) safely.
    pub fn sort_key(&self, v: &[u8], out: &mut Vec<u8>) {
        if v.is_empty() && !self.is_collection() {
            out.push(0);
            return;
        }
        out.push(1);
        match self {
            CqlType::Ascii | CqlType::Text | CqlType::Blob | CqlType::Inet => escaped(v, out),
            CqlType::BigInt
            | CqlType::Timestamp
            | CqlType::Time
            | CqlType::Int
            | CqlType::SmallInt
            | CqlType::TinyInt => {
                out.push(v[0] ^ 0x80);
                out.extend_from_slice(&v[1..]);
            }
            CqlType::Date => out.extend_from_slice(v),
            CqlType::Boolean => out.push(u8::from(v[0] != 0)),
            CqlType::Float | CqlType::Double => {
                if v[0] & 0x80 != 0 {
                    out.extend(v.iter().map(|b| !b));
                } else {
                    out.push(v[0] | 0x80);
                    out.extend_from_slice(&v[1..]);
                }
            }
            CqlType::Timeuuid => {
                out.extend_from_slice(&uuid_time(v).to_be_bytes());
                out.extend_from_slice(v);
            }
            CqlType::Uuid => {
                let version = v.get(6).map_or(0, |b| b >> 4);
                out.push(version);
                if version == 1 {
                    out.extend_from_slice(&uuid_time(v).to_be_bytes());
                }
                out.extend_from_slice(v);
            }
            CqlType::Varint => varint_key(v, out),
            CqlType::Decimal => decimal_key(v, out),
            CqlType::List { element, .. } | CqlType::Set { element, .. } => {
                for item in decode_elements(v, 1).unwrap_or_default() {
                    out.push(1);
                    element.sort_key(&item[0], out);
                }
                out.push(0);
            }
            CqlType::Map { key, value, .. } => {
                for entry in decode_elements(v, 2).unwrap_or_default() {
                    out.push(1);
                    key.sort_key(&entry[0], out);
                    value.sort_key(&entry[1], out);
                }
                out.push(0);
            }
        }
    }
}

fn to_array<const N: usize>(v: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    let n = v.len().min(N);
    a[..n].copy_from_slice(&v[..n]);
    a
}

/// The 60-bit timestamp of a version 1 UUID.
pub fn uuid_time(v: &[u8]) -> u64 {
    let b: [u8; 16] = to_array(v);
    let low = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let mid = u64::from(u16::from_be_bytes([b[4], b[5]]));
    let high = u64::from(u16::from_be_bytes([b[6], b[7]]) & 0x0fff);
    (high << 48) | (mid << 32) | low
}

fn escaped(v: &[u8], out: &mut Vec<u8>) {
    for &b in v {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

fn varint_key(v: &[u8], out: &mut Vec<u8>) {
    let v = BigInt::minimal_twos_complement(v);
    let negative = v.first().is_some_and(|b| b & 0x80 != 0);
    let len = v.len() as u32;
    if negative {
        out.push(0);
        out.extend_from_slice(&(u32::MAX - len).to_be_bytes());
    } else {
        out.push(1);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(v);
}

fn decimal_key(v: &[u8], out: &mut Vec<u8>) {
    let scale = i32::from_be_bytes(to_array(v));
    let unscaled = BigInt::from_twos_complement(&v[4.min(v.len())..]);
    let digits = unscaled.magnitude_decimal();
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        out.push(1);
        return;
    }
    // value = 0.d1d2..dn * 10^exponent
    let total_digits = unscaled.magnitude_decimal().len() as i64;
    let exponent = total_digits - i64::from(scale);
    let mut body = Vec::with_capacity(digits.len() + 9);
    body.extend_from_slice(&((exponent as u64) ^ (1 << 63)).to_be_bytes());
    body.extend_from_slice(digits.as_bytes());
    body.push(0);
    if unscaled.is_negative() {
        out.push(0);
        out.extend(body.iter().map(|b| !b));
    } else {
        out.push(2);
        out.extend_from_slice(&body);
    }
}

/// Serializes a collection: `[int n]` then, per element, its `[bytes]` components (one for list
/// and set elements, two for map entries).
pub fn encode_collection(items: impl Iterator<Item = Vec<Bytes>>) -> Bytes {
    let items: Vec<Vec<Bytes>> = items.collect();
    let mut buf = BytesMut::new();
    buf.put_i32(items.len() as i32);
    for item in &items {
        for part in item {
            buf.put_i32(part.len() as i32);
            buf.put_slice(part);
        }
    }
    buf.freeze()
}

/// Splits a serialized collection into its elements, `arity` components each.
pub fn decode_elements(v: &[u8], arity: usize) -> Result<Vec<Vec<Bytes>>, String> {
    let bad = || "invalid collection value: truncated or malformed".to_string();
    if v.len() < 4 {
        return Err(bad());
    }
    let n = i32::from_be_bytes(to_array(v));
    if n < 0 {
        return Err(bad());
    }
    let mut pos = 4usize;
    let mut out = Vec::with_capacity((n as usize).min(1024));
    for _ in 0..n {
        let mut item = Vec::with_capacity(arity);
        for _ in 0..arity {
            let len = v.get(pos..pos + 4).ok_or_else(bad)?;
            let len = i32::from_be_bytes(to_array(len));
            pos += 4;
            if len < 0 {
                return Err("null is not supported inside collections".into());
            }
            let part = v.get(pos..pos + len as usize).ok_or_else(bad)?;
            item.push(Bytes::copy_from_slice(part));
            pos += len as usize;
        }
        out.push(item);
    }
    if pos != v.len() {
        return Err(bad());
    }
    Ok(out)
}
