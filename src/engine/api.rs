//! The engine API asked directly, without the docker CLI: on a unix socket
//! (the default engine, Docker Desktop, colima, rootless Docker, any context
//! whose endpoint is a socket) or on a plain `tcp://` endpoint. A query costs
//! about a millisecond where a `docker` process costs 10 to 40 ms.
//!
//! A context's endpoint is read from docker's context store
//! (`contexts/meta/<sha256 of the name>/meta.json` under docker's config
//! folder), as the docker CLI reads it; a context with TLS material, an ssh
//! endpoint or anything else stays with the docker CLI.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::http;

/// Where the engine API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Unix(PathBuf),
    /// `host:port` of a `tcp://` endpoint without TLS.
    Tcp(String),
}

/// How long a connect to a tcp endpoint may take before the engine counts as
/// not answering.
const CONNECT: Duration = Duration::from_secs(5);

impl Endpoint {
    /// `unix:///var/run/docker.sock` or `tcp://h:2375`; `None` for what the
    /// docker CLI must handle (ssh, npipe, a tcp URL with a path).
    pub(crate) fn parse(host: &str) -> Option<Endpoint> {
        if let Some(path) = host.strip_prefix("unix://") {
            return (!path.is_empty()).then(|| Endpoint::Unix(PathBuf::from(path)));
        }
        let rest = host.strip_prefix("tcp://")?.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return None;
        }
        let has_port = match rest.rsplit_once(':') {
            Some((h, p)) => !h.ends_with(':') && p.parse::<u16>().is_ok(),
            None => false,
        };
        Some(Endpoint::Tcp(if has_port && !rest.ends_with(']') {
            rest.to_owned()
        } else {
            format!("{rest}:2375")
        }))
    }

    /// As docker writes it: `unix:///x.sock`, `tcp://h:2375`.
    pub(crate) fn shown(&self) -> String {
        match self {
            Endpoint::Unix(p) => format!("unix://{}", p.display()),
            Endpoint::Tcp(a) => format!("tcp://{a}"),
        }
    }

    /// Whether the engine runs on this machine: its containers' networks
    /// may be ours to reach.
    pub(crate) fn is_unix(&self) -> bool {
        matches!(self, Endpoint::Unix(_))
    }

    fn connect(&self) -> Result<Stream> {
        match self {
            Endpoint::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path)?)),
            Endpoint::Tcp(addr) => {
                use std::net::ToSocketAddrs;
                let mut last = None;
                for a in addr
                    .to_socket_addrs()
                    .with_context(|| format!("cannot resolve `{addr}`"))?
                {
                    match TcpStream::connect_timeout(&a, CONNECT) {
                        Ok(s) => {
                            let _ = s.set_nodelay(true);
                            return Ok(Stream::Tcp(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.map_or_else(
                    || anyhow::anyhow!("`{addr}` has no address"),
                    anyhow::Error::from,
                ))
            }
        }
    }

    /// One request; the whole answer.
    pub(crate) fn request(&self, method: &str, path: &str) -> Result<http::Response> {
        self.send(method, path, None)
    }

    /// One request with a JSON body, if any; the whole answer.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        json: Option<&Value>,
    ) -> Result<http::Response> {
        let stream = self.connect()?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let body = json.map(Value::to_string);
        http::request_with(
            stream,
            method,
            "docker",
            path,
            body.as_deref().map(str::as_bytes),
        )
    }

    /// A stream of the engine's events that match `filters` (the API's JSON
    /// form), from `since` (seconds since the epoch) on: a thread reads it
    /// and says "something happened" for each event.
    pub(crate) fn events(&self, since: f64, filters: &Value) -> Result<Watch> {
        let stream = self.connect()?;
        let mut writer = stream.try_clone()?;
        let path = format!(
            "/events?since={since:.3}&filters={}",
            super::encode(&filters.to_string())
        );
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: docker-sandbox\r\n\r\n");
        writer
            .write_all(request.as_bytes())
            .context("failed to ask for the engine's events")?;
        stream.set_read_timeout(Some(CONNECT))?;
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status)?;
        if status.split_whitespace().nth(1) != Some("200") {
            anyhow::bail!("the engine's /events answered `{}`", status.trim());
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                anyhow::bail!("the engine's /events ended before its answer began");
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
        }
        reader.get_ref().set_read_timeout(None)?;
        Ok(Watch::of_lines(reader, End::Stream(writer)))
    }
}

/// A connection to the engine, either way.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }

    fn try_clone(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

/// Events of the engine as they happen: [`Watch::wait`] returns as soon as
/// one comes. The stream ends when the watch is dropped.
pub(crate) struct Watch {
    rx: mpsc::Receiver<()>,
    end: End,
    /// False once the stream has ended: waits are plain sleeps from then on.
    alive: std::cell::Cell<bool>,
}

/// What ends the stream.
enum End {
    Stream(Stream),
    Child(std::process::Child),
}

impl Watch {
    /// The events of `docker [globals] events`, read from its output.
    pub(crate) fn of_child(mut child: std::process::Child) -> Result<Watch> {
        let out = child
            .stdout
            .take()
            .context("`docker events` has no output")?;
        Ok(Watch::of_lines(BufReader::new(out), End::Child(child)))
    }

    /// A watch fed by a thread that reads `events`, an event a line, until
    /// it ends or the watch is dropped.
    fn of_lines(events: impl BufRead + Send + 'static, end: End) -> Watch {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in events.lines() {
                match line {
                    Ok(l) if l.trim().is_empty() => {}
                    Ok(_) if tx.send(()).is_ok() => {}
                    _ => break,
                }
            }
        });
        Watch {
            rx,
            end,
            alive: std::cell::Cell::new(true),
        }
    }

    /// Waits at most `timeout` for an event; true when one came (every event
    /// that came is taken, so a burst wakes the caller once).
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        if !self.alive.get() {
            std::thread::sleep(timeout);
            return false;
        }
        match self.rx.recv_timeout(timeout) {
            Ok(()) => {
                while self.rx.try_recv().is_ok() {}
                true
            }
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.alive.set(false);
                std::thread::sleep(timeout);
                false
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        match &mut self.end {
            End::Stream(s) => s.shutdown(),
            End::Child(c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The endpoint of context `name` in docker's context store under `config`,
/// when the engine API can be asked there directly: a unix socket, or tcp
/// without TLS material. `None` otherwise, or when the store has no such
/// context.
pub(crate) fn context_endpoint(config: &Path, name: &str) -> Option<Endpoint> {
    let host = context_host(config, name)?;
    if config.join("contexts/tls").join(digest(name)).exists() {
        return None;
    }
    Endpoint::parse(&host)
}

/// The docker endpoint of context `name` in the store under `config`:
/// `unix:///...`, `tcp://h:2375`, `ssh://user@h`.
pub(crate) fn context_host(config: &Path, name: &str) -> Option<String> {
    let meta = config
        .join("contexts/meta")
        .join(digest(name))
        .join("meta.json");
    let text = std::fs::read_to_string(meta).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    if v["Name"].as_str() != Some(name) {
        return None;
    }
    v["Endpoints"]["docker"]["Host"].as_str().map(str::to_owned)
}

/// The folder name docker gives a context: the hex SHA-256 of its name.
fn digest(name: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_as_docker_writes_them() {
        let unix = |p: &str| Some(Endpoint::Unix(p.into()));
        let tcp = |a: &str| Some(Endpoint::Tcp(a.into()));
        for (host, want) in [
            ("unix:///var/run/docker.sock", unix("/var/run/docker.sock")),
            ("tcp://10.0.0.2:2375", tcp("10.0.0.2:2375")),
            ("tcp://h", tcp("h:2375")),
            ("tcp://[::1]:2376/", tcp("[::1]:2376")),
            ("tcp://[::1]", tcp("[::1]:2375")),
        ] {
            assert_eq!(Endpoint::parse(host), want, "{host}");
        }
        for cli in [
            "ssh://root@h",
            "npipe:////./pipe/docker",
            "tcp://h:1/prefix",
            "unix://",
        ] {
            assert_eq!(Endpoint::parse(cli), None, "{cli}");
        }
    }

    /// An engine API on a unix socket that answers `/events` with `events`
    /// lines, one each time the test says so, and records the request.
    fn events_server(dir: &Path) -> (Endpoint, mpsc::Sender<&'static str>, mpsc::Receiver<String>) {
        let path = dir.join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (say, said) = mpsc::channel::<&'static str>();
        let (asked, request) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            asked.send(String::from_utf8(head).unwrap()).unwrap();
            s.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n")
                .unwrap();
            for line in said {
                if s.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
        });
        (Endpoint::Unix(path), say, request)
    }

    #[test]
    fn a_watch_wakes_on_each_burst_of_events_and_ends_with_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, say, request) = events_server(dir.path());
        let filters = serde_json::json!({"type": ["container"]});
        let watch = endpoint.events(1700000000.25, &filters).unwrap();
        let asked = request.recv().unwrap();
        assert!(
            asked.starts_with(
                "GET /events?since=1700000000.250&filters=%7B%22type%22%3A%5B%22container%22%5D%7D HTTP/1.0\r\n"
            ),
            "{asked}"
        );
        // Nothing yet: the wait runs out.
        assert!(!watch.wait(Duration::from_millis(20)));
        say.send("{\"Action\":\"start\"}\n{\"Action\":\"health_status: healthy\"}\n")
            .unwrap();
        assert!(
            watch.wait(Duration::from_secs(60)),
            "an event wakes the wait"
        );
        // A line split across writes is one event.
        say.send("{\"Action\":").unwrap();
        say.send("\"die\"}\n").unwrap();
        assert!(watch.wait(Duration::from_secs(60)));
        // The engine closing the stream: waits are plain sleeps from then on.
        drop(say);
        let since = std::time::Instant::now();
        while watch.alive.get() {
            watch.wait(Duration::from_millis(10));
            assert!(
                since.elapsed() < Duration::from_secs(60),
                "the end went unseen"
            );
        }
        assert!(!watch.wait(Duration::from_millis(10)));
    }

    #[test]
    fn an_engine_that_refuses_events_gives_no_watch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = s.write_all(b"HTTP/1.0 404 Not Found\r\n\r\npage not found");
        });
        let err = Endpoint::Unix(path)
            .events(0.0, &serde_json::json!({}))
            .err()
            .unwrap();
        assert!(err.to_string().contains("404"), "{err:#}");
    }

    #[test]
    fn contexts_are_read_from_the_store() {
        let config = tempfile::tempdir().unwrap();
        let put = |name: &str, host: &str| {
            let dir = config.path().join("contexts/meta").join(digest(name));
            std::fs::create_dir_all(&dir).unwrap();
            let meta = serde_json::json!({
                "Name": name,
                "Metadata": {},
                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}}
            });
            std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
        };
        put("desktop-linux", "unix:///Users/me/.docker/run/docker.sock");
        put("lan", "tcp://10.0.0.9:2375");
        put("secure", "tcp://10.0.0.9:2376");
        put("far", "ssh://me@far");
        let tls = config.path().join("contexts/tls").join(digest("secure"));
        std::fs::create_dir_all(tls.join("docker")).unwrap();

        let c = |n| context_endpoint(config.path(), n);
        assert_eq!(
            c("desktop-linux"),
            Some(Endpoint::Unix("/Users/me/.docker/run/docker.sock".into()))
        );
        assert_eq!(c("lan"), Some(Endpoint::Tcp("10.0.0.9:2375".into())));
        assert_eq!(c("secure"), None, "TLS stays with the docker CLI");
        assert_eq!(c("far"), None);
        assert_eq!(c("missing"), None);
        assert_eq!(
            context_host(config.path(), "far").as_deref(),
            Some("ssh://me@far")
        );
        // docker's own digest of a name, as its store names the folder.
        assert_eq!(
            digest("default"),
            "37a8eec1ce19687d132fe29051dca629d164e2c4958ba141d5f4133a33f0688f"
        );
    }
}
