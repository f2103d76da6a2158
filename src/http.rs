//! A minimal HTTP/1.0 GET/DELETE client over any stream: enough for the Docker
//! Engine API on its unix socket and for the gate's checks on loopback. HTTP/1.0
//! means the server closes the connection and sends no chunked encoding.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};

#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Sends one request on `stream` and reads the whole response.
pub(crate) fn request<S: Read + Write>(
    stream: S,
    method: &str,
    host: &str,
    path: &str,
) -> Result<Response> {
    request_with(stream, method, host, path, None)
}

/// Sends one request with a JSON body, if any, and reads the whole response.
pub(crate) fn request_with<S: Read + Write>(
    mut stream: S,
    method: &str,
    host: &str,
    path: &str,
    json: Option<&[u8]>,
) -> Result<Response> {
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: docker-sandbox\r\nAccept: */*\r\n"
    )
    .into_bytes();
    match json {
        Some(body) => {
            req.extend_from_slice(
                format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            req.extend_from_slice(body);
        }
        None if method == "POST" => req.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
        None => req.extend_from_slice(b"\r\n"),
    }
    stream
        .write_all(&req)
        .context("failed to send the request")?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .context("failed to read the response")?;
    parse(raw)
}

fn parse(raw: Vec<u8>) -> Result<Response> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("incomplete HTTP response ({} bytes)", raw.len());
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP status line: `{status_line}`"))?;
    Ok(Response {
        status,
        body: raw[end + 4..].to_vec(),
    })
}

/// GET `http://127.0.0.1:<port><path>` with a timeout on connect and on I/O.
#[cfg(test)]
pub(crate) fn get_local(port: u16, path: &str, timeout: Duration) -> Result<Response> {
    get(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        path,
        timeout,
    )
}

/// GET `http://<addr><path>` with a timeout on connect and on I/O.
pub(crate) fn get(addr: std::net::SocketAddr, path: &str, timeout: Duration) -> Result<Response> {
    let stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    request(stream, "GET", &addr.to_string(), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let r = parse(b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope".to_vec())
            .unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"nope");
        assert!(parse(b"HTTP/1.0 200 OK\r\n".to_vec()).is_err());
        assert!(parse(b"garbage\r\n\r\n".to_vec()).is_err());
    }

    #[test]
    fn talks_to_a_local_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            s.write_all(b"HTTP/1.0 200 OK\r\n\r\n[1,2]").unwrap();
            req
        });
        let r = get_local(port, "/api/v1/workers", Duration::from_secs(2)).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"[1,2]"[..]));
        assert!(
            server
                .join()
                .unwrap()
                .starts_with("GET /api/v1/workers HTTP/1.0\r\n")
        );
    }
}
