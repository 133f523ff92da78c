//! Raw HTTP/1.1 over a TCP socket: requests no well-behaved client would send (bytes that are
//! not UTF-8, no `Host`, a forged `Host`, odd methods and headers), and their answers read back
//! as the server wrote them.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `Host` header of a raw request.
#[derive(Clone, Debug)]
pub(crate) enum HostHeader {
    /// `Host: <the server's address>`, as every client sends.
    Server,
    /// No `Host` header at all.
    Absent,
    /// This value.
    Value(Vec<u8>),
}

/// A request written byte for byte.
#[derive(Clone, Debug)]
pub(crate) struct RawRequest {
    pub method: String,
    /// The request target, sent as is (percent-encoding is the caller's).
    pub target: Vec<u8>,
    pub host: HostHeader,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Send the body with `Transfer-Encoding: chunked` instead of `Content-Length`.
    pub chunked: bool,
}

impl RawRequest {
    pub(crate) fn new(method: &str, target: impl Into<Vec<u8>>) -> Self {
        RawRequest {
            method: method.to_owned(),
            target: target.into(),
            host: HostHeader::Server,
            headers: Vec::new(),
            body: Vec::new(),
            chunked: false,
        }
    }

    /// The bytes on the wire, for a server at `addr` (`127.0.0.1:port`).
    fn encode(&self, addr: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        match &self.host {
            HostHeader::Server => out.extend_from_slice(format!("Host: {addr}\r\n").as_bytes()),
            HostHeader::Absent => {}
            HostHeader::Value(value) => {
                out.extend_from_slice(b"Host: ");
                out.extend_from_slice(value);
                out.extend_from_slice(b"\r\n");
            }
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n");
        if self.chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for chunk in self.body.chunks(64 * 1024) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            if !self.body.is_empty() || self.method == "POST" {
                out.extend_from_slice(
                    format!("Content-Length: {}\r\n", self.body.len()).as_bytes(),
                );
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&self.body);
        }
        out
    }

    /// Sends the request to `addr` on a connection of its own and reads the answer until the
    /// server closes the connection (10 s at most).
    pub(crate) async fn send(&self, addr: &str) -> RawResponse {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let bytes = self.encode(addr);
        // Written while the answer is read: a server may answer (413, say) before it has read
        // the whole body, and then stop reading.
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(&bytes).await;
            writer
        });
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer))
            .await
            .expect("the server answers and closes the connection")
            .ok();
        drop(writing.await);
        RawResponse::parse(&answer)
    }
}

/// An answer as the server wrote it.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    fn parse(answer: &[u8]) -> RawResponse {
        let text = String::from_utf8_lossy(answer);
        let end = answer
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
        let head = String::from_utf8_lossy(&answer[..end]);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {text:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let rest = &answer[end + 4..];
        let chunked = headers
            .iter()
            .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        RawResponse {
            status,
            headers,
            body,
        }
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON (`null` when empty or not JSON).
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The `detail` of a JSON error body.
    pub(crate) fn detail(&self) -> Option<String> {
        self.json()["detail"].as_str().map(str::to_owned)
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The data of a chunked body (what was received of it).
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|window| window == b"\r\n") {
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|size| usize::from_str_radix(size.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let end = (start + size).min(rest.len());
        body.extend_from_slice(&rest[start..end]);
        rest = rest.get(end + 2..).unwrap_or_default();
    }
    body
}
