//! A fake Docker engine API on a unix socket: enough of `/_ping`,
//! `/containers/json`, `/volumes` and `/networks` (all empty) for claims,
//! served from a thread of the test. Point the plugin at it with
//! `DOCKER_HOST=unix://<socket>`.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct FakeEngine {
    pub socket: PathBuf,
    pub requests: Arc<AtomicUsize>,
}

impl FakeEngine {
    pub fn start(dir: &Path) -> FakeEngine {
        let socket = dir.join("fake-engine.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counter.fetch_add(1, Ordering::Relaxed);
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    let path = head.split_whitespace().nth(1).unwrap_or("/");
                    let body = if path.starts_with("/_ping") {
                        "OK"
                    } else if path.starts_with("/volumes") {
                        r#"{"Volumes": [], "Warnings": []}"#
                    } else {
                        "[]"
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        FakeEngine { socket, requests }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}
