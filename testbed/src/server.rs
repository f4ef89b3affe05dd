//! The native protocol server: one task per connection reading frames and executing them in
//! order, and one writer task per connection batching responses onto the socket. Storage
//! locks are only held while a statement executes, never across socket I/O.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::cql::{parse, Parsed, Statement};
use crate::engine::{ColumnSpec, Context, Database, Execution, Outcome, PreparedMeta, Rows};
use crate::error::CqlError;
use crate::frame::{
    opcode, put_bytes, put_short_bytes, put_string, put_string_list, read_query_params, BoundValue,
    Header, QueryParams, Reader, ResponseFrame, FLAG_CUSTOM_PAYLOAD, HEADER_LEN, MAX_BODY_LEN,
    VERSION,
};

/// Errors that stop the server (never a client's fault).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("failed to accept a connection")]
    Accept(#[source] std::io::Error),
}

/// A statement prepared on this node.
struct Prepared {
    parsed: Arc<Parsed>,
    /// The keyspace in effect when it was prepared; unqualified tables resolve against it.
    keyspace: Option<String>,
}

/// State shared by all connections.
struct Shared {
    db: Database,
    prepared: RwLock<HashMap<Bytes, Arc<Prepared>>>,
}

/// Accepts connections on `listener` until `shutdown` completes, then closes them all.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let shared = Arc::new(Shared {
        db: Database::default(),
        prepared: RwLock::new(HashMap::new()),
    });
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = accepted.map_err(ServeError::Accept)?;
                let shared = shared.clone();
                connections.spawn(async move {
                    tracing::debug!(%peer, "connection opened");
                    if let Err(error) = connection(shared, stream).await {
                        tracing::debug!(%peer, %error, "connection ended with an I/O error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
    Ok(())
}

/// Per-connection protocol state.
struct Connection {
    started: bool,
    keyspace: Option<String>,
    local: SocketAddr,
}

async fn connection(shared: Arc<Shared>, stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let local = stream.local_addr()?;
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let writer = tokio::spawn(writer(write, rx));
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut conn = Connection {
        started: false,
        keyspace: None,
        local,
    };
    let result = loop {
        let mut raw = [0u8; HEADER_LEN];
        match reader.read_exact(&mut raw).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break Ok(()),
            Err(e) => break Err(e),
        }
        let header = Header::parse(&raw);
        let version = header.version & 0x7f;
        if version < 3 || header.length > MAX_BODY_LEN || header.version & 0x80 != 0 {
            // Frames of protocol v1/v2 have a different header, and an oversized length
            // cannot be skipped safely: answer once and close.
            let error = CqlError::Protocol(if header.length > MAX_BODY_LEN {
                format!(
                    "frame body of {} bytes exceeds the 256 MB limit",
                    header.length
                )
            } else {
                unsupported_version(version)
            });
            let _ = tx.send(error_frame(header.stream, &error));
            break Ok(());
        }
        let mut body = vec![0u8; header.length];
        if let Err(e) = reader.read_exact(&mut body).await {
            break Err(e);
        }
        let response = if version != VERSION {
            error_frame(
                header.stream,
                &CqlError::Protocol(unsupported_version(version)),
            )
        } else {
            match handle(&shared, &mut conn, &header, Bytes::from(body)) {
                Ok(frame) => frame,
                Err(error) => {
                    if let CqlError::Server(message) = &error {
                        tracing::error!(%message, "answering a server error");
                    }
                    error_frame(header.stream, &error)
                }
            }
        };
        if tx.send(response).is_err() {
            break Ok(());
        }
    };
    drop(tx);
    let written = writer.await.unwrap_or(Ok(()));
    result.and(written)
}

fn unsupported_version(version: u8) -> String {
    format!("Invalid or unsupported protocol version ({version}); supported versions are (4/v4)")
}

async fn writer(
    mut socket: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(frame) = rx.recv().await {
        buf.extend_from_slice(&frame);
        while buf.len() < 1 << 20 {
            match rx.try_recv() {
                Ok(frame) => buf.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        socket.write_all(&buf).await?;
        buf.clear();
    }
    socket.shutdown().await
}

fn error_frame(stream: i16, error: &CqlError) -> Bytes {
    let mut frame = ResponseFrame::new(stream, opcode::ERROR);
    error.encode(frame.body());
    frame.finish()
}

fn prepared_id(keyspace: Option<&str>, query: &str) -> Bytes {
    let mut id = BytesMut::with_capacity(16);
    for salt in [0u8, 1] {
        let mut h = DefaultHasher::new();
        salt.hash(&mut h);
        keyspace.hash(&mut h);
        query.hash(&mut h);
        id.put_u64(h.finish());
    }
    id.freeze()
}

/// Puts bound values in marker order when the client sent them by name.
fn bind_values(parsed: &Parsed, params: QueryParams) -> Result<Vec<BoundValue>, CqlError> {
    let values = match params.names {
        None => params.values,
        Some(names) => parsed
            .marker_names
            .iter()
            .map(|marker| {
                let name = marker.as_ref().ok_or_else(|| {
                    CqlError::invalid(
                        "values were sent by name but the statement has anonymous '?' markers",
                    )
                })?;
                names
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(name))
                    .map(|i| params.values[i].clone())
                    .ok_or_else(|| CqlError::invalid(format!("No value was bound for :{name}")))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    if values.len() != parsed.marker_names.len() {
        return Err(CqlError::invalid(format!(
            "There were {} markers(?) in CQL but {} bound variables",
            parsed.marker_names.len(),
            values.len()
        )));
    }
    Ok(values)
}

fn handle(
    shared: &Shared,
    conn: &mut Connection,
    header: &Header,
    body: Bytes,
) -> Result<Bytes, CqlError> {
    let mut r = Reader::new(body);
    if header.flags & 0x01 != 0 {
        return Err(CqlError::Protocol(
            "compressed frame received but no compression was negotiated in STARTUP".into(),
        ));
    }
    if header.flags & FLAG_CUSTOM_PAYLOAD != 0 {
        r.skip_bytes_map()?;
    }
    let stream = header.stream;
    match header.opcode {
        opcode::OPTIONS => {
            let mut frame = ResponseFrame::new(stream, opcode::SUPPORTED);
            let b = frame.body();
            b.put_u16(3);
            put_string(b, "CQL_VERSION");
            put_string_list(b, &["3.4.5"]);
            put_string(b, "COMPRESSION");
            put_string_list(b, &[]);
            put_string(b, "PROTOCOL_VERSIONS");
            put_string_list(b, &["4/v4"]);
            Ok(frame.finish())
        }
        opcode::STARTUP => {
            for (key, value) in r.string_map()? {
                match key.to_ascii_uppercase().as_str() {
                    "COMPRESSION" if !value.is_empty() => {
                        return Err(CqlError::Protocol(format!(
                        "Unsupported compression algorithm {value}: the CQL testbed supports none"
                    )))
                    }
                    _ => {}
                }
            }
            conn.started = true;
            Ok(ResponseFrame::new(stream, opcode::READY).finish())
        }
        _ if !conn.started => Err(CqlError::Protocol(format!(
            "Unexpected message with opcode 0x{:02X}, expecting STARTUP or OPTIONS",
            header.opcode
        ))),
        opcode::REGISTER => {
            for event in r.string_list()? {
                if !matches!(
                    event.as_str(),
                    "TOPOLOGY_CHANGE" | "STATUS_CHANGE" | "SCHEMA_CHANGE"
                ) {
                    return Err(CqlError::Protocol(format!("Invalid event type {event}")));
                }
            }
            Ok(ResponseFrame::new(stream, opcode::READY).finish())
        }
        opcode::QUERY => {
            let query = r.long_string()?;
            let params = read_query_params(&mut r)?;
            let parsed = parse(&query)?;
            let skip_metadata = params.skip_metadata;
            let (page_size, paging_state, timestamp) = (
                params.page_size,
                params.paging_state.clone(),
                params.timestamp,
            );
            let binds = bind_values(&parsed, params)?;
            let ctx = Context {
                keyspace: conn.keyspace.as_deref(),
                local_addr: conn.local,
            };
            let outcome = shared.db.execute(
                &parsed,
                &ctx,
                &Execution {
                    binds: &binds,
                    timestamp,
                    page_size,
                    paging_state: paging_state.as_ref(),
                },
            )?;
            Ok(result_frame(stream, conn, outcome, skip_metadata))
        }
        opcode::PREPARE => {
            let query = r.long_string()?;
            let parsed = parse(&query)?;
            if matches!(parsed.statement, Statement::Use(_)) {
                return Err(CqlError::invalid("USE statements cannot be prepared"));
            }
            let ctx = Context {
                keyspace: conn.keyspace.as_deref(),
                local_addr: conn.local,
            };
            let meta = shared.db.prepare(&parsed, &ctx)?;
            let id = prepared_id(conn.keyspace.as_deref(), &query);
            shared
                .prepared
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    id.clone(),
                    Arc::new(Prepared {
                        parsed: Arc::new(parsed),
                        keyspace: conn.keyspace.clone(),
                    }),
                );
            Ok(prepared_frame(stream, &id, &meta))
        }
        opcode::EXECUTE => {
            let id = r.short_bytes()?;
            let params = read_query_params(&mut r)?;
            let prepared = lookup(shared, &id)?;
            let skip_metadata = params.skip_metadata;
            let (page_size, paging_state, timestamp) = (
                params.page_size,
                params.paging_state.clone(),
                params.timestamp,
            );
            let binds = bind_values(&prepared.parsed, params)?;
            let ctx = Context {
                keyspace: prepared.keyspace.as_deref(),
                local_addr: conn.local,
            };
            let outcome = shared.db.execute(
                &prepared.parsed,
                &ctx,
                &Execution {
                    binds: &binds,
                    timestamp,
                    page_size,
                    paging_state: paging_state.as_ref(),
                },
            )?;
            Ok(result_frame(stream, conn, outcome, skip_metadata))
        }
        opcode::BATCH => {
            let kind = r.byte()?;
            if kind == 2 {
                return Err(CqlError::invalid(
                    "counter batches are not supported by the CQL testbed (no counter type)",
                ));
            }
            if kind > 2 {
                return Err(CqlError::Protocol(format!("invalid batch type {kind}")));
            }
            let n = r.short()?;
            let mut raw_items = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let item_kind = r.byte()?;
                let statement = match item_kind {
                    0 => {
                        let query = r.long_string()?;
                        (Arc::new(parse(&query)?), conn.keyspace.clone())
                    }
                    1 => {
                        let prepared = lookup(shared, &r.short_bytes()?)?;
                        (prepared.parsed.clone(), prepared.keyspace.clone())
                    }
                    other => {
                        return Err(CqlError::Protocol(format!(
                            "invalid batch statement kind {other}"
                        )))
                    }
                };
                let count = r.short()?;
                let values = (0..count)
                    .map(|_| r.value())
                    .collect::<Result<Vec<_>, _>>()?;
                raw_items.push((statement, values));
            }
            let _consistency = r.short()?;
            let flags = r.byte()?;
            if flags & 0x40 != 0 {
                return Err(CqlError::Protocol(
                    "named values in BATCH are not supported (see CASSANDRA-10246)".into(),
                ));
            }
            if flags & 0x10 != 0 {
                r.short()?;
            }
            let timestamp = if flags & 0x20 != 0 {
                Some(r.long()?)
            } else {
                None
            };
            let mut items = Vec::with_capacity(raw_items.len());
            for ((parsed, keyspace), values) in &raw_items {
                if values.len() != parsed.marker_names.len() {
                    return Err(CqlError::invalid(format!(
                        "There were {} markers(?) in CQL but {} bound variables",
                        parsed.marker_names.len(),
                        values.len()
                    )));
                }
                let ctx = Context {
                    keyspace: keyspace.as_deref(),
                    local_addr: conn.local,
                };
                items.push((&**parsed, ctx, values.clone()));
            }
            let outcome = shared.db.execute_batch(&items, timestamp)?;
            Ok(result_frame(stream, conn, outcome, false))
        }
        opcode::AUTH_RESPONSE => Err(CqlError::Protocol(
            "AUTH_RESPONSE received but the CQL testbed does not require authentication".into(),
        )),
        other => Err(CqlError::Protocol(format!(
            "unknown or unexpected request opcode 0x{other:02X}"
        ))),
    }
}

fn lookup(shared: &Shared, id: &Bytes) -> Result<Arc<Prepared>, CqlError> {
    shared
        .prepared
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .cloned()
        .ok_or_else(|| CqlError::Unprepared { id: id.clone() })
}

/// Writes column specs, with one global table spec when every column shares it.
fn put_column_specs(
    b: &mut BytesMut,
    flags: i32,
    columns: &[ColumnSpec],
    extra: impl FnOnce(&mut BytesMut),
) {
    let global = columns.first().filter(|first| {
        columns
            .iter()
            .all(|c| c.keyspace == first.keyspace && c.table == first.table)
    });
    b.put_i32(flags | i32::from(global.is_some()));
    b.put_i32(columns.len() as i32);
    extra(b);
    if let Some(first) = global {
        put_string(b, &first.keyspace);
        put_string(b, &first.table);
    }
    for c in columns {
        if global.is_none() {
            put_string(b, &c.keyspace);
            put_string(b, &c.table);
        }
        put_string(b, &c.name);
        c.ty.encode_option(b);
    }
}

fn put_rows(b: &mut BytesMut, rows: &Rows, skip_metadata: bool) {
    b.put_i32(0x0002);
    let has_more = if rows.paging_state.is_some() {
        0x0002
    } else {
        0
    };
    let paging = |b: &mut BytesMut| {
        if let Some(state) = &rows.paging_state {
            put_bytes(b, Some(state));
        }
    };
    if skip_metadata && !rows.force_metadata {
        b.put_i32(0x0004 | has_more);
        b.put_i32(rows.columns.len() as i32);
        paging(b);
    } else {
        put_column_specs(b, has_more, &rows.columns, paging);
    }
    b.put_i32(rows.rows.len() as i32);
    for row in &rows.rows {
        for value in row {
            put_bytes(b, value.as_deref());
        }
    }
}

fn result_frame(
    stream: i16,
    conn: &mut Connection,
    outcome: Outcome,
    skip_metadata: bool,
) -> Bytes {
    let mut frame = ResponseFrame::new(stream, opcode::RESULT);
    let b = frame.body();
    match outcome {
        Outcome::Void => b.put_i32(0x0001),
        Outcome::Rows(rows) => put_rows(b, &rows, skip_metadata),
        Outcome::SetKeyspace(keyspace) => {
            b.put_i32(0x0003);
            put_string(b, &keyspace);
            conn.keyspace = Some(keyspace);
        }
        Outcome::SchemaChange {
            change,
            target,
            keyspace,
            name,
        } => {
            b.put_i32(0x0005);
            put_string(b, change);
            put_string(b, target);
            put_string(b, &keyspace);
            if let Some(name) = name {
                put_string(b, &name);
            }
        }
    }
    frame.finish()
}

fn prepared_frame(stream: i16, id: &Bytes, meta: &PreparedMeta) -> Bytes {
    let mut frame = ResponseFrame::new(stream, opcode::RESULT);
    let b = frame.body();
    b.put_i32(0x0004);
    put_short_bytes(b, id);
    put_column_specs(b, 0, &meta.binds, |b| {
        b.put_i32(meta.pk_indices.len() as i32);
        for i in &meta.pk_indices {
            b.put_u16(*i);
        }
    });
    match &meta.result {
        Some(columns) => put_column_specs(b, 0, columns, |_| {}),
        None => {
            b.put_i32(0x0004);
            b.put_i32(0);
        }
    }
    frame.finish()
}
