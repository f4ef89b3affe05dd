//! A minimal raw native protocol client for frame-level assertions.

use std::net::SocketAddr;
use std::sync::OnceLock;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use userstream_testbed::Testbed;

pub const STARTUP: u8 = 0x01;
pub const OPTIONS: u8 = 0x05;
pub const QUERY: u8 = 0x07;
pub const EXECUTE: u8 = 0x0A;
pub const ERROR: u8 = 0x00;
pub const READY: u8 = 0x02;
pub const SUPPORTED: u8 = 0x06;
pub const RESULT: u8 = 0x08;

/// One testbed shared by this binary's tests.
pub fn testbed() -> SocketAddr {
    static TESTBED: OnceLock<Testbed> = OnceLock::new();
    TESTBED
        .get_or_init(|| {
            Testbed::start("127.0.0.1:0".parse().expect("literal address")).expect("testbed starts")
        })
        .addr()
}

pub struct Frame {
    pub version: u8,
    pub stream: i16,
    pub opcode: u8,
    pub body: Vec<u8>,
}

impl Frame {
    /// Error code and message of an ERROR frame.
    pub fn error(&self) -> (i32, String) {
        assert_eq!(
            self.opcode, ERROR,
            "expected an ERROR frame, got opcode {:#x}",
            self.opcode
        );
        let code = i32::from_be_bytes(self.body[0..4].try_into().expect("code"));
        let len = u16::from_be_bytes(self.body[4..6].try_into().expect("len")) as usize;
        (
            code,
            String::from_utf8_lossy(&self.body[6..6 + len]).into_owned(),
        )
    }

    pub fn result_kind(&self) -> i32 {
        assert_eq!(
            self.opcode, RESULT,
            "expected a RESULT frame, got {:?}",
            self.body
        );
        i32::from_be_bytes(self.body[0..4].try_into().expect("kind"))
    }
}

pub struct Client {
    stream: TcpStream,
}

pub fn string_map(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut b = (entries.len() as u16).to_be_bytes().to_vec();
    for (k, v) in entries {
        b.extend((k.len() as u16).to_be_bytes());
        b.extend(k.as_bytes());
        b.extend((v.len() as u16).to_be_bytes());
        b.extend(v.as_bytes());
    }
    b
}

/// A QUERY body: long string, consistency ONE, no flags.
pub fn query_body(cql: &str) -> Vec<u8> {
    let mut b = (cql.len() as i32).to_be_bytes().to_vec();
    b.extend(cql.as_bytes());
    b.extend(1u16.to_be_bytes());
    b.push(0);
    b
}

impl Client {
    pub async fn connect() -> Client {
        Client {
            stream: TcpStream::connect(testbed()).await.expect("connect"),
        }
    }

    /// Connects and completes STARTUP.
    pub async fn ready() -> Client {
        let mut c = Client::connect().await;
        let f = c
            .request(4, 0, STARTUP, &string_map(&[("CQL_VERSION", "3.0.0")]))
            .await;
        assert_eq!(f.opcode, READY);
        c
    }

    pub async fn send(&mut self, version: u8, stream: i16, opcode: u8, body: &[u8]) {
        let mut frame = vec![version, 0];
        frame.extend(stream.to_be_bytes());
        frame.push(opcode);
        frame.extend((body.len() as u32).to_be_bytes());
        frame.extend(body);
        self.stream.write_all(&frame).await.expect("write frame");
    }

    pub async fn read(&mut self) -> Frame {
        let mut header = [0u8; 9];
        self.stream
            .read_exact(&mut header)
            .await
            .expect("read header");
        let len = u32::from_be_bytes(header[5..9].try_into().expect("len")) as usize;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).await.expect("read body");
        Frame {
            version: header[0],
            stream: i16::from_be_bytes([header[2], header[3]]),
            opcode: header[4],
            body,
        }
    }

    pub async fn request(&mut self, version: u8, stream: i16, opcode: u8, body: &[u8]) -> Frame {
        self.send(version, stream, opcode, body).await;
        let f = self.read().await;
        assert_eq!(f.stream, stream, "response on another stream");
        f
    }

    pub async fn query(&mut self, cql: &str) -> Frame {
        self.request(4, 1, QUERY, &query_body(cql)).await
    }
}
