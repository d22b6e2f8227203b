//! A raw HTTP/1.1 client over a tokio `TcpStream`, for what a client
//! library would hide: partial heads and bodies, stalls, duplicate
//! headers, `Expect: 100-continue`, whether the server closed the socket.
//! Every socket operation is under [`IO_TIMEOUT`], so no case can hang.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any single socket operation may take before the case fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// A response as read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Asserts an RFC 9457 problem response with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        let body = self.json();
        assert_eq!(body["status"], status, "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
    }
}

/// `http://127.0.0.1:PORT` → `127.0.0.1:PORT`.
pub fn addr(base: &str) -> &str {
    base.trim_start_matches("http://")
}

pub async fn connect(base: &str) -> TcpStream {
    tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr(base)))
        .await
        .expect("connect in time")
        .expect("connect")
}

pub async fn write(stream: &mut TcpStream, bytes: &[u8]) {
    tokio::time::timeout(IO_TIMEOUT, stream.write_all(bytes))
        .await
        .expect("write in time")
        .expect("write");
}

/// Reads one response (head, then a `Content-Length` body). `None` if
/// the server closed the connection before a complete head.
pub async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> Option<RawResponse> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if read_some(stream, &mut buf).await == 0 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    assert!(
        !headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")),
        "chunked responses are not expected here"
    );
    let mut body = buf.split_off(head_end);
    while body.len() < length {
        if read_some(stream, &mut body).await == 0 {
            break;
        }
    }
    body.truncate(length);
    Some(RawResponse { status, headers, body })
}

/// Whether the server closes the connection (EOF or reset) within
/// `within`, discarding whatever it sends meanwhile.
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut sink = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn read_some(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 8192];
    match tokio::time::timeout(IO_TIMEOUT, stream.read(&mut chunk)).await {
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            n
        }
        Ok(Err(_)) => 0,
        Err(_) => panic!("no response within {IO_TIMEOUT:?}"),
    }
}

/// A request head: method, target, then header lines, ending the head.
pub fn head(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}
