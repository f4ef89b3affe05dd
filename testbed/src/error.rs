//! Errors answered to clients, each carrying the code Cassandra uses for the same situation.

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::{put_short_bytes, put_string};

/// An error answered in an ERROR frame (spec section 9). The connection always survives it.
#[derive(Debug, thiserror::Error)]
pub enum CqlError {
    /// A client message violated the protocol (0x000A).
    #[error("{0}")]
    Protocol(String),
    /// The statement is not valid CQL, or uses syntax the testbed does not support (0x2000).
    #[error("{0}")]
    Syntax(String),
    /// The statement is syntactically valid but invalid or unsupported (0x2200).
    #[error("{0}")]
    Invalid(String),
    /// A keyspace or table being created already exists (0x2400); `table` is empty for a
    /// keyspace.
    #[error("{message}")]
    AlreadyExists {
        keyspace: String,
        table: String,
        message: String,
    },
    /// EXECUTE or BATCH named a prepared id this node does not know (0x2500).
    #[error("Prepared query with ID {} not found", hex(.id))]
    Unprepared { id: Bytes },
    /// A testbed bug (0x0000).
    #[error("{0}")]
    Server(String),
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl CqlError {
    pub fn invalid(message: impl Into<String>) -> Self {
        CqlError::Invalid(message.into())
    }

    pub fn syntax(message: impl Into<String>) -> Self {
        CqlError::Syntax(message.into())
    }

    pub fn code(&self) -> i32 {
        match self {
            CqlError::Server(_) => 0x0000,
            CqlError::Protocol(_) => 0x000A,
            CqlError::Syntax(_) => 0x2000,
            CqlError::Invalid(_) => 0x2200,
            CqlError::AlreadyExists { .. } => 0x2400,
            CqlError::Unprepared { .. } => 0x2500,
        }
    }

    /// Writes the ERROR body: code, message, then the code-specific fields.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_i32(self.code());
        put_string(buf, &self.to_string());
        match self {
            CqlError::AlreadyExists {
                keyspace, table, ..
            } => {
                put_string(buf, keyspace);
                put_string(buf, table);
            }
            CqlError::Unprepared { id } => put_short_bytes(buf, id),
            _ => {}
        }
    }
}
