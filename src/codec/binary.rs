//! The Avro binary encoding's primitives, read from a byte slice and written to a `Vec`.
//!
//! Every length and count read from the input is checked against the bytes that remain before
//! anything is allocated or looped over, so a bogus length is an error, not an allocation.

/// Why a body is not a datum of the writer schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyProblem {
    #[error("variable-length integer longer than 10 bytes")]
    VarintTooLong,
    #[error("int value {0} outside the 32-bit range")]
    IntOutOfRange(i64),
    #[error("negative length {0}")]
    NegativeLength(i64),
    #[error("string is not valid UTF-8")]
    NotUtf8,
    #[error("boolean byte 0x{0:02x} is neither 0 nor 1")]
    NotBoolean(u8),
    #[error("union branch {index} of a union with {branches} branch(es)")]
    UnionBranch { index: i64, branches: usize },
    #[error("enum symbol {index} of an enum with {symbols} symbol(s)")]
    EnumSymbol { index: i64, symbols: usize },
    #[error("block count {0} is invalid")]
    BlockCount(i64),
    #[error("values nested deeper than {0} levels")]
    TooDeep(usize),
}

/// A failed read: the input ended early, or its bytes cannot be this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadError {
    Truncated,
    Invalid(BodyProblem),
}

impl From<BodyProblem> for ReadError {
    fn from(problem: BodyProblem) -> Self {
        Self::Invalid(problem)
    }
}

pub(crate) type ReadResult<T> = Result<T, ReadError>;

/// The unread rest of an Avro body.
pub(crate) struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(body: &'a [u8]) -> Self {
        Self { rest: body }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn take(&mut self, count: usize) -> ReadResult<&'a [u8]> {
        if count > self.rest.len() {
            return Err(ReadError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(count);
        self.rest = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> ReadResult<u8> {
        let (&byte, rest) = self.rest.split_first().ok_or(ReadError::Truncated)?;
        self.rest = rest;
        Ok(byte)
    }

    /// A zig-zag varint `long`.
    #[inline]
    pub(crate) fn long(&mut self) -> ReadResult<i64> {
        // One-byte values (small lengths, union indexes, null flags) are the common case.
        if let Some((&first, rest)) = self.rest.split_first() {
            if first < 0x80 {
                self.rest = rest;
                return Ok(unzigzag(u64::from(first)));
            }
        }
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(unzigzag(value));
            }
        }
        Err(BodyProblem::VarintTooLong.into())
    }

    pub(crate) fn int(&mut self) -> ReadResult<i32> {
        let value = self.long()?;
        i32::try_from(value).map_err(|_| BodyProblem::IntOutOfRange(value).into())
    }

    /// A length (of bytes, a string or a fixed-size run of items), checked against the input.
    #[inline(always)]
    fn length(&mut self) -> ReadResult<usize> {
        let length = self.long()?;
        let length = usize::try_from(length).map_err(|_| BodyProblem::NegativeLength(length))?;
        if length > self.rest.len() {
            return Err(ReadError::Truncated);
        }
        Ok(length)
    }

    #[inline(always)]
    pub(crate) fn bytes(&mut self) -> ReadResult<&'a [u8]> {
        let length = self.length()?;
        self.take(length)
    }

    #[inline(always)]
    pub(crate) fn str(&mut self) -> ReadResult<&'a str> {
        let bytes = self.bytes()?;
        // Nearly every string is short and ASCII: one OR over its bytes (which the compiler
        // vectorizes) settles that, where `from_utf8` costs several times as much per byte (a
        // fifth of decoding a record).
        if bytes.iter().fold(0, |high, &b| high | b) < 0x80 {
            // SAFETY: every byte is below 0x80, and ASCII is valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        std::str::from_utf8(bytes).map_err(|_| BodyProblem::NotUtf8.into())
    }

    pub(crate) fn boolean(&mut self) -> ReadResult<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(BodyProblem::NotBoolean(other).into()),
        }
    }

    fn array<const N: usize>(&mut self) -> ReadResult<[u8; N]> {
        let (bytes, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(ReadError::Truncated)?;
        self.rest = rest;
        Ok(*bytes)
    }

    pub(crate) fn float(&mut self) -> ReadResult<f32> {
        self.array().map(f32::from_le_bytes)
    }

    #[inline]
    pub(crate) fn double(&mut self) -> ReadResult<f64> {
        self.array().map(f64::from_le_bytes)
    }

    /// A union's branch index, checked against the number of branches.
    #[inline(always)]
    pub(crate) fn branch(&mut self, branches: usize) -> ReadResult<usize> {
        let index = self.long()?;
        usize::try_from(index)
            .ok()
            .filter(|&i| i < branches)
            .ok_or_else(|| BodyProblem::UnionBranch { index, branches }.into())
    }

    /// The item count of the next array or map block (0 ends the list). A negative count is
    /// followed by the block's size in bytes, which is read and checked but not needed.
    pub(crate) fn block_count(&mut self) -> ReadResult<u64> {
        let count = self.long()?;
        if count < 0 {
            self.length()?;
        }
        count
            .checked_abs()
            .map(i64::unsigned_abs)
            .ok_or_else(|| BodyProblem::BlockCount(count).into())
    }
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Appends `value` as a zig-zag varint.
#[inline]
pub(crate) fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

#[inline]
pub(crate) fn write_str(out: &mut Vec<u8>, text: &str) {
    // A `str` never exceeds `isize::MAX` bytes, so its length always fits in an i64.
    write_long(out, text.len() as i64);
    out.extend_from_slice(text.as_bytes());
}

#[inline]
pub(crate) fn write_double(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long_of(bytes: &[u8]) -> ReadResult<i64> {
        Input::new(bytes).long()
    }

    #[test]
    fn zig_zag_varints_round_trip_at_the_edges() {
        for value in [
            0,
            -1,
            1,
            63,
            -64,
            64,
            i32::MAX.into(),
            i32::MIN.into(),
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            write_long(&mut out, value);
            let mut input = Input::new(&out);
            assert_eq!(input.long(), Ok(value), "{value}");
            assert_eq!(input.remaining(), 0);
        }
    }

    #[test]
    fn eleven_byte_varint_is_refused_and_a_cut_one_is_truncated() {
        assert_eq!(
            long_of(&[0xff; 11]),
            Err(ReadError::Invalid(BodyProblem::VarintTooLong))
        );
        assert_eq!(long_of(&[0x80, 0x80]), Err(ReadError::Truncated));
        assert_eq!(long_of(&[]), Err(ReadError::Truncated));
    }

    #[test]
    fn length_beyond_the_input_is_truncation_not_an_allocation() {
        let mut huge = Vec::new();
        write_long(&mut huge, i64::MAX);
        assert_eq!(Input::new(&huge).bytes(), Err(ReadError::Truncated));
        let mut negative = Vec::new();
        write_long(&mut negative, -3);
        assert_eq!(
            Input::new(&negative).str(),
            Err(ReadError::Invalid(BodyProblem::NegativeLength(-3)))
        );
    }

    #[test]
    fn strings_read_the_same_whether_ascii_or_not() {
        for text in [
            "",
            "a",
            "kira.g'oydich@example.com",
            "Çiğdem",
            "ایلیا",
            "x\u{7f}y",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, text);
            assert_eq!(Input::new(&out).str(), Ok(text), "{text:?}");
        }
        for invalid in [
            &b"\x80"[..],
            b"ab\xc3",
            b"\xff\xfe",
            b"abcdefghijklmnop\xe2\x82",
        ] {
            let mut out = Vec::new();
            write_long(&mut out, invalid.len() as i64);
            out.extend_from_slice(invalid);
            assert_eq!(
                Input::new(&out).str(),
                Err(ReadError::Invalid(BodyProblem::NotUtf8)),
                "{invalid:?}"
            );
        }
    }

    #[test]
    fn int_outside_32_bits_is_invalid() {
        let mut out = Vec::new();
        write_long(&mut out, i64::from(i32::MAX) + 1);
        assert_eq!(
            Input::new(&out).int(),
            Err(ReadError::Invalid(BodyProblem::IntOutOfRange(
                i64::from(i32::MAX) + 1
            )))
        );
    }

    #[test]
    fn block_count_of_i64_min_is_invalid() {
        let mut out = Vec::new();
        write_long(&mut out, i64::MIN);
        write_long(&mut out, 0);
        assert_eq!(
            Input::new(&out).block_count(),
            Err(ReadError::Invalid(BodyProblem::BlockCount(i64::MIN)))
        );
    }
}
