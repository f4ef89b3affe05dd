//! A fault injector for HTTP services: a reverse proxy on 127.0.0.1 in front of a real service
//! that answers chosen requests itself, badly (a gateway's 504 page, a 500 that is not JSON, a
//! rate limit), and passes every other request through unchanged. The service behind it is the
//! real one; only the failures are made up.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;

/// One made-up answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 504 with an HTML page, as a load balancer sends when the service does not answer.
    GatewayTimeoutHtml,
    /// 500 with a plain-text body.
    ServerErrorText,
    /// 429 with a JSON body that is not the Confluent error shape.
    TooManyRequests,
    /// 503 with no body at all.
    UnavailableEmpty,
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        match self {
            Self::GatewayTimeoutHtml => (
                StatusCode::GATEWAY_TIMEOUT,
                [("content-type", "text/html")],
                "<html><body><h1>504 Gateway Time-out</h1></body></html>",
            )
                .into_response(),
            Self::ServerErrorText => (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "text/plain")],
                "upstream connect error or disconnect/reset before headers",
            )
                .into_response(),
            Self::TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                [("content-type", "application/json")],
                r#"{"detail":"slow down"}"#,
            )
                .into_response(),
            Self::UnavailableEmpty => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
}

struct Shared {
    upstream: String,
    /// Requests whose path starts with this prefix take the next fault, while any is left.
    path_prefix: String,
    faults: Mutex<VecDeque<Fault>>,
    /// How many faults were served.
    served: Mutex<usize>,
    http: reqwest::Client,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    pub url: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FaultProxy {
    /// Proxies to `upstream`; the first requests under `path_prefix` get `faults`, in order.
    pub async fn start(
        upstream: &str,
        path_prefix: &str,
        faults: impl IntoIterator<Item = Fault>,
    ) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            path_prefix: path_prefix.to_owned(),
            faults: Mutex::new(faults.into_iter().collect()),
            served: Mutex::new(0),
            http: reqwest::Client::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            shared,
            server,
        })
    }

    /// How many made-up answers were given so far.
    pub fn faults_served(&self) -> usize {
        *self.shared.served.lock().expect("fault proxy lock")
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    if uri.path().starts_with(&shared.path_prefix) {
        let fault = shared.faults.lock().expect("fault proxy lock").pop_front();
        if let Some(fault) = fault {
            *shared.served.lock().expect("fault proxy lock") += 1;
            return fault.into_response();
        }
    }
    let mut request = shared
        .http
        .request(method, format!("{}{path}", shared.upstream))
        .body(body);
    for name in ["content-type", "accept"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let content_type = answer.headers().get("content-type").cloned();
            let body = answer.bytes().await.unwrap_or_default();
            let mut response = (status, body).into_response();
            if let Some(content_type) = content_type {
                response.headers_mut().insert("content-type", content_type);
            }
            response
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}
