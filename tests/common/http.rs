//! A small HTTP/1.1 client over a plain socket, and `tracker serve` run as a process: tests
//! need to send what a browser or an attacker would (any `Host`, any `Origin`), which a
//! full client tidies away.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The token every test server is started with.
pub const TOKEN: &str = "test-token-0123456789";

/// A running `tracker serve` on a free port of 127.0.0.1; killed when dropped.
pub struct Served {
    pub child: Child,
    pub port: u16,
}

impl Served {
    /// `tracker --db DB serve --listen 127.0.0.1:0 EXTRA...`, once it has printed its URL.
    pub fn start(db: &std::path::Path, extra: &[&str]) -> Served {
        Served::start_with(db, extra, &[])
    }

    pub fn start_with(db: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Served {
        let mut cmd = super::tracker_on(db, &["serve", "--listen", "127.0.0.1:0"]);
        cmd.args(extra)
            .env("TRACKER_SERVE_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(
            line.starts_with("http://127.0.0.1:"),
            "first line: {line:?}"
        );
        assert!(
            line.trim_end().ends_with(&format!("/#token={TOKEN}")),
            "{line:?}"
        );
        let port = line["http://127.0.0.1:".len()..]
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // Keep reading stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Served { child, port }
    }

    /// A request with the token, `Host: 127.0.0.1:PORT` and, for a write, `X-Tracker-As: as`.
    pub fn req(&self, method: &str, path: &str) -> Req {
        Req {
            raw_headers: Vec::new(),
            port: self.port,
            method: method.into(),
            path: path.into(),
            headers: vec![
                ("Host".into(), format!("127.0.0.1:{}", self.port)),
                ("Authorization".into(), format!("Bearer {TOKEN}")),
            ],
            body: None,
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.req("GET", path).send()
    }

    /// A write as `actor` with a JSON body.
    pub fn post(&self, path: &str, actor: &str, body: Value) -> Reply {
        self.req("POST", path)
            .header("X-Tracker-As", actor)
            .json(body)
            .send()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Req {
    port: u16,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    /// Header lines sent as they are, after `headers`: bytes no `String` holds, repeats.
    raw_headers: Vec<u8>,
    body: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} is not JSON ({e}): {}",
                self.status,
                super::text(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error object's kind, checking the status that goes with it.
    pub fn error_kind(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", super::text(&self.body));
        self.json()["error"]["kind"].as_str().unwrap().to_string()
    }
}

impl Req {
    /// Replaces a header (or adds it).
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a header line of any bytes (`name: value`), beside any of the same name.
    pub fn raw_header(mut self, name: &str, value: &[u8]) -> Req {
        self.raw_headers.extend_from_slice(name.as_bytes());
        self.raw_headers.extend_from_slice(b": ");
        self.raw_headers.extend_from_slice(value);
        self.raw_headers.extend_from_slice(b"\r\n");
        self
    }

    pub fn without(mut self, name: &str) -> Req {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    pub fn json(mut self, v: Value) -> Req {
        self.body = Some(v.to_string().into_bytes());
        self
    }

    pub fn raw_body(mut self, b: Vec<u8>) -> Req {
        self.body = Some(b);
        self
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    }

    fn head(&self) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = &self.body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.raw_headers);
        bytes.extend_from_slice(b"Connection: close\r\n\r\n");
        bytes.extend(self.body.clone().unwrap_or_default());
        bytes
    }

    /// [`Req::send`], or `None` when the server cannot be reached or the answer is cut short.
    pub fn try_send(self) -> Option<Reply> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        s.write_all(&self.head()).ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..end]).to_string();
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let body = raw[end + 4..].to_vec();
        let length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())?;
        (body.len() == length).then_some(Reply {
            status,
            headers,
            body,
        })
    }

    pub fn send(self) -> Reply {
        let mut s = self.connect();
        // A server may answer (413) before it has read the whole body.
        let _ = s.write_all(&self.head());
        let mut r = BufReader::new(s);
        let (status, headers) = read_head(&mut r);
        let body = if header_is(&headers, "transfer-encoding", "chunked") {
            let mut body = Vec::new();
            while let Some(chunk) = read_chunk(&mut r) {
                body.extend(chunk);
            }
            body
        } else {
            let mut body = Vec::new();
            let _ = r.read_to_end(&mut body);
            body
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Opens an event stream.
    pub fn stream(self) -> Events {
        let mut s = self.connect();
        s.write_all(&self.head()).unwrap();
        let mut r = BufReader::new(s);
        let (status, headers) = read_head(&mut r);
        Events {
            status,
            headers,
            r,
            pending: String::new(),
        }
    }
}

fn header_is(headers: &[(String, String)], name: &str, value: &str) -> bool {
    headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case(name) && v.eq_ignore_ascii_case(value))
}

fn read_head(r: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    (status, headers)
}

/// One chunk of a chunked body; `None` at its end.
fn read_chunk(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut size = String::new();
    if r.read_line(&mut size).ok()? == 0 {
        return None;
    }
    let n = usize::from_str_radix(size.trim(), 16).ok()?;
    if n == 0 {
        return None;
    }
    let mut chunk = vec![0; n + 2];
    r.read_exact(&mut chunk).ok()?;
    chunk.truncate(n);
    Some(chunk)
}

/// An open event stream.
pub struct Events {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    r: BufReader<TcpStream>,
    pending: String,
}

impl Events {
    /// The next event (its name and data), comments skipped; `None` once the stream ends.
    pub fn next(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let (mut name, mut data) = (String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    return Some((name, data));
                }
                continue;
            }
            let chunk = read_chunk(&mut self.r)?;
            self.pending.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

impl Served {
    /// A handle on a server already running on `port` (for threads); not killed when dropped.
    pub fn at(port: u16) -> ServedAt {
        ServedAt { port }
    }
}

/// A server running elsewhere, for requests from other threads.
pub struct ServedAt {
    port: u16,
}

impl ServedAt {
    pub fn post(&self, path: &str, actor: &str, body: Value) -> Reply {
        self.request(path, actor, body).send()
    }

    /// [`ServedAt::post`], or `None` when the server is not there (killed, restarting) or the
    /// connection breaks before a whole answer.
    pub fn try_post(&self, path: &str, actor: &str, body: Value) -> Option<Reply> {
        let req = self.request(path, actor, body);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| req.try_send()))
            .ok()
            .flatten()
    }

    fn request(&self, path: &str, actor: &str, body: Value) -> Req {
        Req {
            raw_headers: Vec::new(),
            port: self.port,
            method: "POST".into(),
            path: path.into(),
            headers: vec![
                ("Host".into(), format!("127.0.0.1:{}", self.port)),
                ("Authorization".into(), format!("Bearer {TOKEN}")),
                ("X-Tracker-As".into(), actor.into()),
            ],
            body: Some(body.to_string().into_bytes()),
        }
    }
}
