//! A scripted HTTP/1.1 server on a local port, for testing the client's
//! requests, retries and answer handling without a Mutant server.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A request as the fake server read it.
#[derive(Debug, Clone)]
pub(crate) struct FakeRequest {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl FakeRequest {
    /// The value of header `name` (lowercase).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// What the fake server does with a request.
pub(crate) enum FakeAnswer {
    /// Answers with a status, a content type and a body.
    Respond {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// Closes the connection without answering.
    HangUp,
    /// Keeps the connection open without answering.
    Stall,
}

impl FakeAnswer {
    /// A JSON answer.
    pub(crate) fn json(status: u16, value: serde_json::Value) -> FakeAnswer {
        FakeAnswer::Respond {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
        }
    }

    /// An error answer in the protocol's shape.
    pub(crate) fn error(status: u16, code: &str, message: &str) -> FakeAnswer {
        FakeAnswer::json(
            status,
            serde_json::json!({"error": {"code": code, "message": message}}),
        )
    }
}

type Handler = dyn Fn(&FakeRequest, usize) -> FakeAnswer + Send + Sync;

/// A running fake server; it stops with the test's runtime.
pub(crate) struct FakeServer {
    pub(crate) url: String,
    requests: Arc<Mutex<Vec<FakeRequest>>>,
}

impl FakeServer {
    /// Serves every request with `handler`, given the request and its index
    /// among all requests received.
    pub(crate) async fn start(
        handler: impl Fn(&FakeRequest, usize) -> FakeAnswer + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_connection(
                    stream,
                    Arc::clone(&handler),
                    Arc::clone(&seen),
                ));
            }
        });
        FakeServer { url, requests }
    }

    /// The requests received so far.
    pub(crate) fn requests(&self) -> Vec<FakeRequest> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve_connection(
    stream: TcpStream,
    handler: Arc<Handler>,
    requests: Arc<Mutex<Vec<FakeRequest>>>,
) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map_or(0, |(_, value)| value.parse().unwrap());
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.unwrap();
        let request = FakeRequest {
            method,
            path,
            headers,
            body,
        };
        let index = {
            let mut requests = requests.lock().unwrap();
            requests.push(request.clone());
            requests.len() - 1
        };
        match handler(&request, index) {
            FakeAnswer::Respond {
                status,
                content_type,
                body,
            } => {
                let head = format!(
                    "HTTP/1.1 {status} Fake\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let stream = stream.get_mut();
                stream.write_all(head.as_bytes()).await.unwrap();
                stream.write_all(&body).await.unwrap();
            }
            FakeAnswer::HangUp => return,
            FakeAnswer::Stall => {
                std::future::pending::<()>().await;
            }
        }
    }
}
