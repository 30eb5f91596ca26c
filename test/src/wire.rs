//! Minimal clients for readiness checks and smoke tests: the NATS greeting, RESP for Redis, and
//! JSON-RPC over HTTP/1.1. The product uses real client libraries; these only prove a service is up
//! and answering its own protocol.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A protocol exchange that failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Connecting, reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer answered something this client does not understand.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// The JSON-RPC server returned an error object.
    #[error("JSON-RPC error: {0}")]
    Rpc(String),
}

fn connect(port: u16) -> Result<TcpStream, WireError> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}

/// The JSON a NATS server sends in its `INFO` greeting.
pub fn nats_info(port: u16) -> Result<String, WireError> {
    let mut reader = BufReader::new(connect(port)?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    line.strip_prefix("INFO ")
        .map(|json| json.trim().to_owned())
        .ok_or(WireError::Unexpected(line))
}

/// Sends one Redis command and returns the reply's first line, or a bulk string's contents.
pub fn redis_command(port: u16, args: &[&str]) -> Result<String, WireError> {
    let mut stream = connect(port)?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end().to_owned();
    match line.strip_prefix('$') {
        Some("-1") => Ok(String::new()),
        Some(len) => {
            let len: usize = len
                .parse()
                .map_err(|_| WireError::Unexpected(line.clone()))?;
            let mut body = vec![0u8; len + 2];
            reader.read_exact(&mut body)?;
            body.truncate(len);
            String::from_utf8(body).map_err(|e| WireError::Unexpected(e.to_string()))
        }
        None => Ok(line),
    }
}

/// Calls a JSON-RPC method over HTTP and returns its `result`.
pub fn json_rpc(
    port: u16,
    method: &str,
    params_json: &str,
) -> Result<serde_json::Value, WireError> {
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params_json}}}"#);
    let mut stream = connect(port)?;
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (_, payload) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| WireError::Unexpected(response.clone()))?;
    let value: serde_json::Value = serde_json::from_str(payload)
        .map_err(|e| WireError::Unexpected(format!("{e}: {payload}")))?;
    if let Some(error) = value.get("error") {
        return Err(WireError::Rpc(error.to_string()));
    }
    value
        .get("result")
        .cloned()
        .ok_or_else(|| WireError::Unexpected(payload.to_owned()))
}
