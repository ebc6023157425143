//! A minimal HTTP/1.1 server side: request parsing with `httparse` and response encoding.
//!
//! It is written by hand on a raw `TcpStream` so that faults can act at the socket level
//! (reset, close, hang, trickled bodies). It supports keep-alive and `Content-Length` request
//! bodies; chunked request bodies are rejected with 501.

use std::time::SystemTime;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest request head (request line and headers) the server reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest request body the server reads.
const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_HEADERS: usize = 64;

/// A parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method, such as `GET`.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Decoded query parameters in order.
    pub query: Vec<(String, String)>,
    /// Headers with lowercase names.
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty without `Content-Length`).
    pub body: Vec<u8>,
    /// True when the connection stays open after the response.
    pub keep_alive: bool,
}

impl Request {
    /// Returns the first header with this lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns the first query parameter with this name.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Failure to read a request.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the connection between requests.
    #[error("connection closed")]
    Closed,
    /// Reading from the socket failed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    /// The request is malformed or too large, so the server responds with `status` and closes.
    #[error("invalid request ({status}): {reason}")]
    Invalid {
        /// Status of the error response.
        status: u16,
        /// Problem with the request.
        reason: String,
    },
}

fn invalid(status: u16, reason: impl Into<String>) -> ReadError {
    ReadError::Invalid {
        status,
        reason: reason.into(),
    }
}

/// Reads one request from `stream`, keeping bytes of a following pipelined request in `buffer`.
pub async fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Result<Request, ReadError> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(buffer) {
            Ok(httparse::Status::Complete(head_len)) => {
                let request = build_request(&parsed)?;
                let content_length = content_length(&request.headers)?;
                buffer.drain(..head_len);
                return read_body(stream, buffer, request, content_length).await;
            }
            Ok(httparse::Status::Partial) => {
                if buffer.len() > MAX_HEAD_BYTES {
                    return Err(invalid(431, "request head exceeds 64 KiB"));
                }
            }
            Err(error) => return Err(invalid(400, format!("malformed request: {error}"))),
        }
        let mut chunk = [0u8; 8192];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(ReadError::Closed);
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn build_request(parsed: &httparse::Request<'_, '_>) -> Result<Request, ReadError> {
    let method = parsed.method.unwrap_or_default().to_owned();
    let target = parsed.path.unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, parse_form(query)),
        None => (target, Vec::new()),
    };
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|header| {
            let value = String::from_utf8_lossy(header.value).trim().to_owned();
            (header.name.to_ascii_lowercase(), value)
        })
        .collect();
    let connection = headers
        .iter()
        .find(|(name, _)| name == "connection")
        .map(|(_, value)| value.to_ascii_lowercase());
    let keep_alive = match parsed.version {
        Some(0) => connection.as_deref() == Some("keep-alive"),
        _ => connection.as_deref() != Some("close"),
    };
    if headers.iter().any(|(name, _)| name == "transfer-encoding") {
        return Err(invalid(
            501,
            "transfer-encoding is not supported: send Content-Length",
        ));
    }
    Ok(Request {
        method,
        path: percent_decode(path, false),
        query,
        headers,
        body: Vec::new(),
        keep_alive,
    })
}

fn content_length(headers: &[(String, String)]) -> Result<usize, ReadError> {
    let Some((_, value)) = headers.iter().find(|(name, _)| name == "content-length") else {
        return Ok(0);
    };
    let length: usize = value
        .parse()
        .map_err(|_| invalid(400, format!("invalid content-length {value:?}")))?;
    if length > MAX_BODY_BYTES {
        return Err(invalid(
            413,
            format!("content-length {length} exceeds 1 MiB"),
        ));
    }
    Ok(length)
}

async fn read_body(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    mut request: Request,
    length: usize,
) -> Result<Request, ReadError> {
    while buffer.len() < length {
        let mut chunk = [0u8; 8192];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(ReadError::Closed);
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    request.body = buffer.drain(..length).collect();
    Ok(request)
}

/// Decodes `application/x-www-form-urlencoded` pairs (also used for query strings).
pub fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}

fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
            {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

/// A response before encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers; `content-length`, `date` and `connection` are added on encoding.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// Builds a JSON response.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![(
                "content-type".to_owned(),
                "application/json; charset=utf-8".to_owned(),
            )],
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Encodes the status line and headers, with `content-length` of the body.
    pub fn head_bytes(&self, keep_alive: bool) -> Vec<u8> {
        self.head_bytes_with_length(keep_alive, self.body.len())
    }

    /// Encodes the status line and headers for a body of `length` bytes that the caller
    /// writes itself.
    pub fn head_bytes_with_length(&self, keep_alive: bool, length: usize) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("content-length: {length}\r\n"));
        head.push_str(&format!(
            "date: {}\r\n",
            httpdate::fmt_http_date(SystemTime::now())
        ));
        let connection = if keep_alive { "keep-alive" } else { "close" };
        head.push_str(&format!("connection: {connection}\r\n\r\n"));
        head.into_bytes()
    }

    /// Writes the whole response at once.
    pub async fn write_to(&self, stream: &mut TcpStream, keep_alive: bool) -> std::io::Result<()> {
        let mut bytes = self.head_bytes(keep_alive);
        bytes.extend_from_slice(&self.body);
        stream.write_all(&bytes).await?;
        stream.flush().await
    }
}

/// Returns the reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let pairs = parse_form("grant_type=refresh_token&refresh_token=a%2Bb+c&flag");
        assert_eq!(pairs[0], ("grant_type".into(), "refresh_token".into()));
        assert_eq!(pairs[1], ("refresh_token".into(), "a+b c".into()));
        assert_eq!(pairs[2], ("flag".into(), String::new()));
    }

    #[test]
    fn percent_decode_keeps_truncated_escape() {
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("a%4", false), "a%4");
        assert_eq!(percent_decode("%41", false), "A");
    }
}
