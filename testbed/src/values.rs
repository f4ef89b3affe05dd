//! Turning CQL terms (literals, bind markers, collection literals, the few built-in functions)
//! into serialized values of a target type.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::bigint::BigInt;
use crate::cql::{Literal, Term};
use crate::error::CqlError;
use crate::frame::BoundValue;
use crate::types::{encode_collection, CqlType};

/// A term's value once bound: a value, null, or "unset" (leave the column untouched).
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Value(Bytes),
    Null,
    Unset,
}

fn invalid_constant(kind: &str, text: &str, column: &str, ty: &CqlType) -> CqlError {
    CqlError::invalid(format!(
        "Invalid {kind} constant ({text}) for \"{column}\" of type {}",
        ty.cql_name()
    ))
}

fn literal_kind(lit: &Literal) -> (&'static str, String) {
    match lit {
        Literal::Str(s) => ("STRING", s.clone()),
        Literal::Int(s) => ("INTEGER", s.clone()),
        Literal::Float(s) => ("FLOAT", s.clone()),
        Literal::Bool(b) => ("BOOLEAN", b.to_string()),
        Literal::Uuid(s) => ("UUID", s.clone()),
        Literal::Blob(b) => (
            "HEX",
            format!(
                "0x{}",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            ),
        ),
        Literal::NaN => ("FLOAT", "NaN".into()),
        Literal::Infinity(neg) => ("FLOAT", if *neg { "-Infinity" } else { "Infinity" }.into()),
    }
}

/// Resolves `term` as a value of type `ty` for the column (or bind position) named `column`.
pub fn resolve(
    term: &Term,
    ty: &CqlType,
    column: &str,
    binds: &[BoundValue],
) -> Result<Resolved, CqlError> {
    match term {
        Term::Null => Ok(Resolved::Null),
        Term::Bind(i) => match binds.get(*i) {
            None => Err(CqlError::invalid(format!(
                "no value was bound for bind marker {} (column {column})",
                i + 1
            ))),
            Some(BoundValue::Null) => Ok(Resolved::Null),
            Some(BoundValue::Unset) => Ok(Resolved::Unset),
            Some(BoundValue::Set(v)) => ty.validate(v).map(Resolved::Value).map_err(|e| {
                CqlError::invalid(format!(
                    "Invalid value bound for \"{column}\" of type {}: {e}",
                    ty.cql_name()
                ))
            }),
        },
        Term::Literal(lit) => literal(lit, ty, column).map(Resolved::Value),
        Term::List(items) => match ty {
            CqlType::List { element, .. } => collection(
                items.iter().map(|t| vec![(t, &**element)]),
                ty,
                column,
                binds,
            ),
            _ => Err(CqlError::invalid(format!(
                "Invalid list literal for {column} of type {}",
                ty.cql_name()
            ))),
        },
        Term::Set(items) => match ty {
            CqlType::Set { element, .. } => collection(
                items.iter().map(|t| vec![(t, &**element)]),
                ty,
                column,
                binds,
            ),
            _ => Err(CqlError::invalid(format!(
                "Invalid set literal for {column} of type {}",
                ty.cql_name()
            ))),
        },
        Term::Map(entries) => match ty {
            CqlType::Map { key, value, .. } => collection(
                entries
                    .iter()
                    .map(|(k, v)| vec![(k, &**key), (v, &**value)]),
                ty,
                column,
                binds,
            ),
            CqlType::Set { .. } if entries.is_empty() => {
                Ok(Resolved::Value(encode_collection(std::iter::empty())))
            }
            _ => Err(CqlError::invalid(format!(
                "Invalid map literal for {column} of type {}",
                ty.cql_name()
            ))),
        },
        Term::Function(name, args) => function(name, args, ty, column),
    }
}

fn collection<'a>(
    items: impl Iterator<Item = Vec<(&'a Term, &'a CqlType)>>,
    ty: &CqlType,
    column: &str,
    binds: &[BoundValue],
) -> Result<Resolved, CqlError> {
    let mut encoded = Vec::new();
    for parts in items {
        let mut item = Vec::with_capacity(parts.len());
        for (term, part_ty) in parts {
            match resolve(term, part_ty, column, binds)? {
                Resolved::Value(v) => item.push(v),
                Resolved::Null => {
                    return Err(CqlError::invalid(format!(
                        "null is not supported inside collections (column {column})"
                    )))
                }
                Resolved::Unset => {
                    return Err(CqlError::invalid(format!(
                        "unset value is not supported inside collections (column {column})"
                    )))
                }
            }
        }
        encoded.push(item);
    }
    let raw = encode_collection(encoded.into_iter());
    ty.validate(&raw)
        .map(Resolved::Value)
        .map_err(|e| CqlError::invalid(format!("Invalid collection literal for {column}: {e}")))
}

fn function(name: &str, args: &[Term], ty: &CqlType, column: &str) -> Result<Resolved, CqlError> {
    let (produced, value) = match (name, args.len()) {
        ("now", 0) | ("currenttimeuuid", 0) => {
            (CqlType::Timeuuid, Bytes::copy_from_slice(&timeuuid_now()))
        }
        ("uuid", 0) => (CqlType::Uuid, Bytes::copy_from_slice(&random_uuid())),
        ("currenttimestamp", 0) => (
            CqlType::Timestamp,
            Bytes::copy_from_slice(&(now_micros() / 1000).to_be_bytes()),
        ),
        ("currentdate", 0) => {
            let days = (now_micros() / 1000 / 86_400_000) as i32;
            let raw = (days as i64 + (1i64 << 31)) as u32;
            (CqlType::Date, Bytes::copy_from_slice(&raw.to_be_bytes()))
        }
        _ => {
            return Err(CqlError::invalid(format!(
                "function {name}() with {} argument(s) is not supported by the CQL testbed",
                args.len()
            )))
        }
    };
    if &produced != ty {
        return Err(CqlError::invalid(format!(
            "Type error: cannot assign result of function {name} (type {}) to {column} (type {})",
            produced.cql_name(),
            ty.cql_name()
        )));
    }
    Ok(Resolved::Value(value))
}

fn literal(lit: &Literal, ty: &CqlType, column: &str) -> Result<Bytes, CqlError> {
    let (kind, text) = literal_kind(lit);
    let bad = || invalid_constant(kind, &text, column, ty);
    let int = |bits: u32| -> Result<i64, CqlError> {
        let Literal::Int(s) = lit else {
            return Err(bad());
        };
        let v: i128 = s.parse().map_err(|_| bad())?;
        let (min, max) = (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
        if v < min || v > max {
            return Err(CqlError::invalid(format!(
                "Invalid {} value {s} for \"{column}\": out of range",
                ty.cql_name()
            )));
        }
        Ok(v as i64)
    };
    let float = || -> Result<f64, CqlError> {
        match lit {
            Literal::Int(s) | Literal::Float(s) => s.parse::<f64>().map_err(|_| bad()),
            Literal::NaN => Ok(f64::NAN),
            Literal::Infinity(neg) => Ok(if *neg {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }),
            _ => Err(bad()),
        }
    };
    let v: Vec<u8> = match ty {
        CqlType::Ascii => match lit {
            Literal::Str(s) if s.is_ascii() => s.as_bytes().to_vec(),
            _ => return Err(bad()),
        },
        CqlType::Text => match lit {
            Literal::Str(s) => s.as_bytes().to_vec(),
            _ => return Err(bad()),
        },
        CqlType::TinyInt => (int(8)? as i8).to_be_bytes().to_vec(),
        CqlType::SmallInt => (int(16)? as i16).to_be_bytes().to_vec(),
        CqlType::Int => (int(32)? as i32).to_be_bytes().to_vec(),
        CqlType::BigInt => int(64)?.to_be_bytes().to_vec(),
        CqlType::Varint => match lit {
            Literal::Int(s) => BigInt::from_decimal(s)
                .ok_or_else(bad)?
                .to_twos_complement(),
            _ => return Err(bad()),
        },
        CqlType::Decimal => match lit {
            Literal::Int(s) | Literal::Float(s) => decimal(s).ok_or_else(bad)?,
            _ => return Err(bad()),
        },
        CqlType::Float => (float()? as f32).to_be_bytes().to_vec(),
        CqlType::Double => float()?.to_be_bytes().to_vec(),
        CqlType::Boolean => match lit {
            Literal::Bool(b) => vec![u8::from(*b)],
            _ => return Err(bad()),
        },
        CqlType::Uuid | CqlType::Timeuuid => match lit {
            Literal::Uuid(s) => {
                let u = parse_uuid(s).ok_or_else(bad)?;
                if matches!(ty, CqlType::Timeuuid) && u[6] >> 4 != 1 {
                    return Err(CqlError::invalid(format!(
                        "Unsupported UUID version for timeuuid {s} (only version 1)"
                    )));
                }
                u.to_vec()
            }
            _ => return Err(bad()),
        },
        CqlType::Blob => match lit {
            Literal::Blob(b) => b.clone(),
            _ => return Err(bad()),
        },
        CqlType::Inet => match lit {
            Literal::Str(s) => match s
                .parse::<IpAddr>()
                .map_err(|_| CqlError::invalid(format!("Unable to make inet address from '{s}'")))?
            {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            },
            _ => return Err(bad()),
        },
        CqlType::Timestamp => match lit {
            Literal::Int(_) => int(64)?.to_be_bytes().to_vec(),
            Literal::Str(s) => parse_timestamp(s)
                .ok_or_else(|| {
                    CqlError::invalid(format!("Unable to coerce '{s}' to a formatted date (long)"))
                })?
                .to_be_bytes()
                .to_vec(),
            _ => return Err(bad()),
        },
        CqlType::Date => match lit {
            Literal::Int(s) => s.parse::<u32>().map_err(|_| bad())?.to_be_bytes().to_vec(),
            Literal::Str(s) => {
                let days = parse_date(s).ok_or_else(|| {
                    CqlError::invalid(format!("Unable to coerce '{s}' to a formatted date"))
                })?;
                ((days + (1i64 << 31)) as u32).to_be_bytes().to_vec()
            }
            _ => return Err(bad()),
        },
        CqlType::Time => match lit {
            Literal::Int(_) => {
                let n = int(64)?;
                if !(0..86_400_000_000_000).contains(&n) {
                    return Err(bad());
                }
                n.to_be_bytes().to_vec()
            }
            Literal::Str(s) => parse_time(s)
                .ok_or_else(|| CqlError::invalid(format!("Unable to coerce '{s}' to a time")))?
                .to_be_bytes()
                .to_vec(),
            _ => return Err(bad()),
        },
        CqlType::List { .. } | CqlType::Set { .. } | CqlType::Map { .. } => return Err(bad()),
    };
    Ok(Bytes::from(v))
}

/// `[-]digits[.digits][e[-]digits]` as scale (int) followed by the unscaled varint.
fn decimal(text: &str) -> Option<Vec<u8>> {
    let lower = text.to_ascii_lowercase();
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i64>().ok()?),
        None => (lower.clone(), 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((&mantissa, ""));
    let digits = format!("{int_part}{frac_part}");
    let unscaled = BigInt::from_decimal(&digits)?;
    let scale = i32::try_from(frac_part.len() as i64 - exponent).ok()?;
    let mut out = scale.to_be_bytes().to_vec();
    out.extend(unscaled.to_twos_complement());
    Some(out)
}

pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_date(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let mut parts = body.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(if neg { -y } else { y }, m, d))
}

/// `hh:mm[:ss[.fffffffff]]` as nanoseconds since midnight.
fn parse_time(s: &str) -> Option<i64> {
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut parts = hms.split(':');
    let h: i64 = parts.next()?.trim().parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec: i64 = match parts.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || m > 59 || sec > 59 || frac.len() > 9 {
        return None;
    }
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        format!("{frac:0<9}").parse().ok()?
    };
    Some(((h * 60 + m) * 60 + sec) * 1_000_000_000 + nanos)
}

/// `yyyy-mm-dd[( |T)hh:mm[:ss[.fff]]][Z|±hh[:]mm]` as milliseconds since the epoch; a missing
/// zone means UTC.
fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], s[i + 1..].trim()),
        None => (s, ""),
    };
    let days = parse_date(date)?;
    let (time, offset_minutes) = if rest.is_empty() {
        ("", 0)
    } else if let Some(t) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
        (t.trim(), 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let zone = rest[i + 1..].replace(':', "");
        if zone.len() != 4 {
            return None;
        }
        let hours: i64 = zone[..2].parse().ok()?;
        let minutes: i64 = zone[2..].parse().ok()?;
        let sign = if &rest[i..=i] == "-" { -1 } else { 1 };
        (rest[..i].trim(), sign * (hours * 60 + minutes))
    } else {
        (rest, 0)
    };
    let nanos = if time.is_empty() {
        0
    } else {
        parse_time(time)?
    };
    Some(days * 86_400_000 + nanos / 1_000_000 - offset_minutes * 60_000)
}

/// The wall clock in microseconds since the epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static STATE: OnceLock<RandomState> = OnceLock::new();
    let mut h = STATE.get_or_init(RandomState::new).build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

pub fn random_uuid() -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&random_u64().to_be_bytes());
    out[8..].copy_from_slice(&random_u64().to_be_bytes());
    out[6] = (out[6] & 0x0f) | 0x40;
    out[8] = (out[8] & 0x3f) | 0x80;
    out
}

/// A version 1 UUID for the current time; strictly increasing within the process.
pub fn timeuuid_now() -> [u8; 16] {
    static LAST: AtomicU64 = AtomicU64::new(0);
    static NODE: OnceLock<u64> = OnceLock::new();
    const GREGORIAN_OFFSET: u64 = 0x01B2_1DD2_1381_4000;
    let now = (now_micros() as u64) * 10 + GREGORIAN_OFFSET;
    let mut prev = LAST.load(Ordering::Relaxed);
    let ts = loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(actual) => prev = actual,
        }
    };
    let node = *NODE.get_or_init(random_u64);
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&(ts as u32).to_be_bytes());
    out[4..6].copy_from_slice(&((ts >> 32) as u16).to_be_bytes());
    out[6..8].copy_from_slice(&((((ts >> 48) as u16) & 0x0fff) | 0x1000).to_be_bytes());
    out[8..].copy_from_slice(&node.to_be_bytes());
    out[8] = (out[8] & 0x3f) | 0x80;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_timestamps_in_cql_formats() {
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(
            parse_timestamp("2011-02-03 04:05:00+0000"),
            Some(1_296_705_900_000)
        );
        assert_eq!(
            parse_timestamp("2011-02-03T04:05:00.123Z"),
            Some(1_296_705_900_123)
        );
        assert_eq!(
            parse_timestamp("2011-02-03 05:05+01:00"),
            Some(1_296_705_900_000)
        );
        assert_eq!(parse_timestamp("not a date"), None);
    }

    #[test]
    fn encodes_decimals_as_scale_and_unscaled() {
        assert_eq!(decimal("1.25"), Some(vec![0, 0, 0, 2, 0x7d]));
        assert_eq!(decimal("-1"), Some(vec![0, 0, 0, 0, 0xff]));
        assert_eq!(decimal("1e3"), Some(vec![0xff, 0xff, 0xff, 0xfd, 0x01]));
    }
}
