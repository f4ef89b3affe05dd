//! Native protocol v4 framing and the primitive notations of the spec's section 3.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::CqlError;

/// The only protocol version spoken; requests in any other version are answered with a
/// protocol error naming the supported one, which is how drivers negotiate down to it.
pub const VERSION: u8 = 4;
/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 9;
/// The spec caps a frame body at 256 MB.
pub const MAX_BODY_LEN: usize = 256 * 1024 * 1024;

/// Request and response opcodes (spec section 2.4).
pub mod opcode {
    pub const ERROR: u8 = 0x00;
    pub const STARTUP: u8 = 0x01;
    pub const READY: u8 = 0x02;
    pub const OPTIONS: u8 = 0x05;
    pub const SUPPORTED: u8 = 0x06;
    pub const QUERY: u8 = 0x07;
    pub const RESULT: u8 = 0x08;
    pub const PREPARE: u8 = 0x09;
    pub const EXECUTE: u8 = 0x0A;
    pub const REGISTER: u8 = 0x0B;
    pub const BATCH: u8 = 0x0D;
    pub const AUTH_RESPONSE: u8 = 0x0F;
}

/// Frame header flag: the body starts with a custom payload (a bytes map).
pub const FLAG_CUSTOM_PAYLOAD: u8 = 0x04;

/// A decoded frame header.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub version: u8,
    pub flags: u8,
    pub stream: i16,
    pub opcode: u8,
    pub length: usize,
}

impl Header {
    pub fn parse(raw: &[u8; HEADER_LEN]) -> Self {
        Header {
            version: raw[0],
            flags: raw[1],
            stream: i16::from_be_bytes([raw[2], raw[3]]),
            opcode: raw[4],
            length: u32::from_be_bytes([raw[5], raw[6], raw[7], raw[8]]) as usize,
        }
    }
}

/// Builds a response frame; the length is patched in by [`ResponseFrame::finish`].
pub struct ResponseFrame {
    buf: BytesMut,
}

impl ResponseFrame {
    pub fn new(stream: i16, opcode: u8) -> Self {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_u8(0x80 | VERSION);
        buf.put_u8(0);
        buf.put_i16(stream);
        buf.put_u8(opcode);
        buf.put_u32(0);
        ResponseFrame { buf }
    }

    pub fn body(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    pub fn finish(mut self) -> Bytes {
        let len = (self.buf.len() - HEADER_LEN) as u32;
        self.buf[5..9].copy_from_slice(&len.to_be_bytes());
        self.buf.freeze()
    }
}

/// A bound value as carried by `[value]`: bytes, null, or "not set".
#[derive(Debug, Clone, PartialEq)]
pub enum BoundValue {
    Set(Bytes),
    Null,
    Unset,
}

/// Reads the spec's notations from a request body, failing with a protocol error on truncation.
pub struct Reader {
    buf: Bytes,
}

fn truncated(what: &str) -> CqlError {
    CqlError::Protocol(format!("request body truncated while reading {what}"))
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    pub fn byte(&mut self) -> Result<u8, CqlError> {
        if self.buf.remaining() < 1 {
            return Err(truncated("a byte"));
        }
        Ok(self.buf.get_u8())
    }

    pub fn short(&mut self) -> Result<u16, CqlError> {
        if self.buf.remaining() < 2 {
            return Err(truncated("a [short]"));
        }
        Ok(self.buf.get_u16())
    }

    pub fn int(&mut self) -> Result<i32, CqlError> {
        if self.buf.remaining() < 4 {
            return Err(truncated("an [int]"));
        }
        Ok(self.buf.get_i32())
    }

    pub fn long(&mut self) -> Result<i64, CqlError> {
        if self.buf.remaining() < 8 {
            return Err(truncated("a [long]"));
        }
        Ok(self.buf.get_i64())
    }

    fn take(&mut self, n: usize, what: &str) -> Result<Bytes, CqlError> {
        if self.buf.remaining() < n {
            return Err(truncated(what));
        }
        Ok(self.buf.split_to(n))
    }

    pub fn string(&mut self) -> Result<String, CqlError> {
        let n = self.short()? as usize;
        let raw = self.take(n, "a [string]")?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| CqlError::Protocol("a [string] is not valid UTF-8".into()))
    }

    pub fn long_string(&mut self) -> Result<String, CqlError> {
        let n = self.int()?;
        let n = usize::try_from(n)
            .map_err(|_| CqlError::Protocol(format!("negative [long string] length {n}")))?;
        let raw = self.take(n, "a [long string]")?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| CqlError::Protocol("a [long string] is not valid UTF-8".into()))
    }

    pub fn short_bytes(&mut self) -> Result<Bytes, CqlError> {
        let n = self.short()? as usize;
        self.take(n, "[short bytes]")
    }

    pub fn bytes(&mut self) -> Result<Option<Bytes>, CqlError> {
        let n = self.int()?;
        if n < 0 {
            return Ok(None);
        }
        self.take(n as usize, "[bytes]").map(Some)
    }

    pub fn value(&mut self) -> Result<BoundValue, CqlError> {
        match self.int()? {
            -1 => Ok(BoundValue::Null),
            -2 => Ok(BoundValue::Unset),
            n if n < 0 => Err(CqlError::Protocol(format!("invalid [value] length {n}"))),
            n => self.take(n as usize, "a [value]").map(BoundValue::Set),
        }
    }

    pub fn string_map(&mut self) -> Result<Vec<(String, String)>, CqlError> {
        let n = self.short()?;
        (0..n)
            .map(|_| Ok((self.string()?, self.string()?)))
            .collect()
    }

    pub fn string_list(&mut self) -> Result<Vec<String>, CqlError> {
        let n = self.short()?;
        (0..n).map(|_| self.string()).collect()
    }

    /// Skips a `[bytes map]` (custom payloads are accepted and ignored, as by Cassandra's
    /// default query handler).
    pub fn skip_bytes_map(&mut self) -> Result<(), CqlError> {
        let n = self.short()?;
        for _ in 0..n {
            self.string()?;
            self.bytes()?;
        }
        Ok(())
    }
}

pub fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_u16(s.len() as u16);
    buf.put_slice(s.as_bytes());
}

pub fn put_bytes(buf: &mut BytesMut, value: Option<&[u8]>) {
    match value {
        Some(v) => {
            buf.put_i32(v.len() as i32);
            buf.put_slice(v);
        }
        None => buf.put_i32(-1),
    }
}

pub fn put_short_bytes(buf: &mut BytesMut, v: &[u8]) {
    buf.put_u16(v.len() as u16);
    buf.put_slice(v);
}

pub fn put_string_list(buf: &mut BytesMut, list: &[&str]) {
    buf.put_u16(list.len() as u16);
    for s in list {
        put_string(buf, s);
    }
}

/// Query parameters shared by QUERY and EXECUTE (spec section 4.1.4).
#[derive(Debug, Default)]
pub struct QueryParams {
    pub values: Vec<BoundValue>,
    /// Names of the values, present when the client used the "names for values" flag.
    pub names: Option<Vec<String>>,
    pub skip_metadata: bool,
    pub page_size: Option<i32>,
    pub paging_state: Option<Bytes>,
    /// The client-supplied default timestamp in microseconds.
    pub timestamp: Option<i64>,
}

pub fn read_query_params(r: &mut Reader) -> Result<QueryParams, CqlError> {
    let _consistency = r.short()?;
    let flags = r.byte()?;
    let mut params = QueryParams {
        skip_metadata: flags & 0x02 != 0,
        ..QueryParams::default()
    };
    if flags & 0x01 != 0 {
        let n = r.short()?;
        let named = flags & 0x40 != 0;
        let mut names = Vec::new();
        for _ in 0..n {
            if named {
                names.push(r.string()?);
            }
            params.values.push(r.value()?);
        }
        if named {
            params.names = Some(names);
        }
    }
    if flags & 0x04 != 0 {
        params.page_size = Some(r.int()?);
    }
    if flags & 0x08 != 0 {
        params.paging_state = r.bytes()?;
    }
    if flags & 0x10 != 0 {
        r.short()?;
    }
    if flags & 0x20 != 0 {
        let ts = r.long()?;
        if ts == i64::MIN {
            return Err(CqlError::Protocol("invalid default timestamp".into()));
        }
        params.timestamp = Some(ts);
    }
    Ok(params)
}
