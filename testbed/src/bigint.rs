//! Just enough arbitrary-precision integer arithmetic for `varint` and `decimal` literals and
//! ordering: conversion between decimal digits and two's complement bytes.

/// A sign and a magnitude in base 2^32, least significant limb first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigInt {
    negative: bool,
    limbs: Vec<u32>,
}

impl BigInt {
    fn zero() -> Self {
        BigInt {
            negative: false,
            limbs: Vec::new(),
        }
    }

    pub fn is_negative(&self) -> bool {
        self.negative && !self.is_zero()
    }

    fn is_zero(&self) -> bool {
        self.limbs.iter().all(|l| *l == 0)
    }

    fn trim(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    fn mul_add_small(&mut self, mul: u32, add: u32) {
        let mut carry = u64::from(add);
        for limb in &mut self.limbs {
            let v = u64::from(*limb) * u64::from(mul) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.limbs.push(carry as u32);
        }
    }

    fn div_small(&mut self, div: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.limbs.iter_mut().rev() {
            let v = (rem << 32) | u64::from(*limb);
            *limb = (v / u64::from(div)) as u32;
            rem = v % u64::from(div);
        }
        self.trim();
        rem as u32
    }

    /// Parses an optionally signed string of decimal digits.
    pub fn from_decimal(text: &str) -> Option<Self> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut n = BigInt::zero();
        for b in digits.bytes() {
            n.mul_add_small(10, u32::from(b - b'0'));
        }
        n.negative = negative;
        n.trim();
        Some(n)
    }

    /// The decimal digits of the magnitude ("0" for zero).
    pub fn magnitude_decimal(&self) -> String {
        let mut n = self.clone();
        n.trim();
        if n.limbs.is_empty() {
            return "0".into();
        }
        let mut digits = Vec::new();
        while !n.limbs.is_empty() {
            digits.push(b'0' + n.div_small(10) as u8);
        }
        digits.reverse();
        String::from_utf8(digits).unwrap_or_default()
    }

    pub fn from_twos_complement(bytes: &[u8]) -> Self {
        let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
        let magnitude: Vec<u8> = if negative {
            // Negate: invert and add one.
            let mut m: Vec<u8> = bytes.iter().map(|b| !b).collect();
            for b in m.iter_mut().rev() {
                let (v, overflow) = b.overflowing_add(1);
                *b = v;
                if !overflow {
                    break;
                }
            }
            m
        } else {
            bytes.to_vec()
        };
        let mut limbs = Vec::with_capacity(magnitude.len() / 4 + 1);
        for chunk in magnitude.rchunks(4) {
            let mut a = [0u8; 4];
            a[4 - chunk.len()..].copy_from_slice(chunk);
            limbs.push(u32::from_be_bytes(a));
        }
        let mut n = BigInt { negative, limbs };
        n.trim();
        n
    }

    /// The shortest two's complement big-endian encoding.
    pub fn to_twos_complement(&self) -> Vec<u8> {
        let mut mag: Vec<u8> = self
            .limbs
            .iter()
            .rev()
            .flat_map(|l| l.to_be_bytes())
            .collect();
        let first = mag.iter().position(|b| *b != 0).unwrap_or(mag.len());
        mag.drain(..first);
        mag.insert(0, 0);
        if self.is_negative() {
            for b in mag.iter_mut() {
                *b = !*b;
            }
            for b in mag.iter_mut().rev() {
                let (v, overflow) = b.overflowing_add(1);
                *b = v;
                if !overflow {
                    break;
                }
            }
        }
        Self::minimal_twos_complement(&mag).to_vec()
    }

    /// Drops redundant leading sign bytes.
    pub fn minimal_twos_complement(mut v: &[u8]) -> &[u8] {
        while v.len() > 1 && ((v[0] == 0 && v[1] & 0x80 == 0) || (v[0] == 0xff && v[1] & 0x80 != 0))
        {
            v = &v[1..];
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::BigInt;

    #[test]
    fn encodes_the_spec_examples() {
        for (value, encoding) in [
            ("0", vec![0x00]),
            ("1", vec![0x01]),
            ("127", vec![0x7f]),
            ("128", vec![0x00, 0x80]),
            ("129", vec![0x00, 0x81]),
            ("-1", vec![0xff]),
            ("-128", vec![0x80]),
            ("-129", vec![0xff, 0x7f]),
        ] {
            let n = BigInt::from_decimal(value).unwrap();
            assert_eq!(n.to_twos_complement(), encoding, "{value}");
            let back = BigInt::from_twos_complement(&encoding);
            let sign = if back.is_negative() { "-" } else { "" };
            assert_eq!(format!("{sign}{}", back.magnitude_decimal()), value);
        }
    }

    #[test]
    fn round_trips_large_values() {
        let text = "-123456789012345678901234567890";
        let n = BigInt::from_decimal(text).unwrap();
        let back = BigInt::from_twos_complement(&n.to_twos_complement());
        assert_eq!(format!("-{}", back.magnitude_decimal()), text);
    }
}
