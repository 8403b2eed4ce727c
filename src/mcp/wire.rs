//! The stdio framing of `tracker mcp`, in front of the MCP SDK: it reads standard input itself,
//! one line (one JSON-RPC message) at a time, and answers what is malformed, so every request
//! gets an answer; rmcp's own stdio transport drops unparseable lines and lines over its size
//! limit without a word, and the client then waits forever.
//!
//! - A line over [`MAX_MESSAGE`] is an Invalid Request error (-32600, id null); it is skipped to
//!   its end without being kept, so memory stays bounded, and the server goes on serving.
//! - A line that is not JSON (nesting deeper than 128 counts as not JSON) is a Parse error
//!   (-32700, id null).
//! - JSON that is not a message this server knows is an Invalid Request (-32600), and a known
//!   method whose params do not fit it (`"arguments": "str"`) is Invalid params (-32602), with the
//!   request's id whenever it can be read. Notifications are never answered.
//!
//! Everything else goes to rmcp already parsed (once, as its own transport would parse it), and
//! what rmcp sends is written out by a thread of its own, so a slow reader of standard output
//! never blocks the runtime. End of input sets `closing`, which waiting claims watch.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleServer;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The largest message the server reads: a line of at most 8 MiB. The largest valid call, a
/// `new` with a 1 MiB body whose every byte is escaped as `\uXXXX`, fits.
pub const MAX_MESSAGE: usize = 8 << 20;

/// What the reader thread hands over.
enum Incoming {
    Line(Vec<u8>),
    /// A line longer than [`MAX_MESSAGE`], already skipped.
    Oversized,
}

/// rmcp's transport over this process's standard input and output.
pub struct Stdio {
    incoming: mpsc::Receiver<Incoming>,
    out: Option<mpsc::Sender<Vec<u8>>>,
    closing: Arc<AtomicBool>,
}

/// The thread writing standard output; it says when it has written everything.
pub struct Writer(std::sync::mpsc::Receiver<()>);

impl Writer {
    /// Waits until everything sent has been written, standard output has failed, or a client
    /// that no longer reads has kept the last answers waiting for 10s.
    pub fn finish(self) {
        let _ = self.0.recv_timeout(std::time::Duration::from_secs(10));
    }
}

/// Starts the reader and writer threads. `closing` is set when standard input ends.
pub fn stdio(closing: Arc<AtomicBool>) -> std::io::Result<(Stdio, Writer)> {
    // A few lines in flight each way: the reader waits while rmcp is behind, and so the
    // client, instead of memory growing.
    let (in_tx, incoming) = mpsc::channel(16);
    let (out, out_rx) = mpsc::channel(64);
    std::thread::Builder::new()
        .name("mcp-stdin".into())
        .spawn(move || read_lines(std::io::stdin().lock(), &in_tx))?;
    let (done, written) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("mcp-stdout".into())
        .spawn(move || {
            write_lines(out_rx);
            let _ = done.send(());
        })?;
    let stdio = Stdio {
        incoming,
        out: Some(out),
        closing,
    };
    Ok((stdio, Writer(written)))
}

/// Reads lines of at most [`MAX_MESSAGE`] bytes until end of input; the bytes of a longer line
/// are dropped as they arrive.
fn read_lines(mut input: impl BufRead, tx: &mpsc::Sender<Incoming>) {
    let mut line = Vec::new();
    let mut oversized = false;
    loop {
        let buf = match input.fill_buf() {
            Ok([]) => break,
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let end = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..end.unwrap_or(buf.len())];
        if !oversized && line.len() + chunk.len() > MAX_MESSAGE {
            oversized = true;
            line = Vec::new();
        }
        if !oversized {
            line.extend_from_slice(chunk);
        }
        let used = chunk.len() + usize::from(end.is_some());
        input.consume(used);
        if end.is_some() {
            let msg = if oversized {
                Incoming::Oversized
            } else {
                Incoming::Line(std::mem::take(&mut line))
            };
            oversized = false;
            if tx.blocking_send(msg).is_err() {
                return;
            }
        }
    }
    // A last line without a newline is a message too.
    let last = if oversized {
        Some(Incoming::Oversized)
    } else {
        (!line.is_empty()).then_some(Incoming::Line(line))
    };
    if let Some(msg) = last {
        let _ = tx.blocking_send(msg);
    }
}

/// Writes each message as one line, flushing once nothing more is waiting.
fn write_lines(mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut out = std::io::stdout().lock();
    while let Some(line) = rx.blocking_recv() {
        let mut written = out.write_all(&line);
        while let (Ok(()), Ok(more)) = (&written, rx.try_recv()) {
            written = out.write_all(&more);
        }
        if written.and_then(|()| out.flush()).is_err() {
            // The client stopped reading: nothing more can reach it.
            return;
        }
    }
}

/// What to do with one line.
enum Verdict {
    Pass(Box<ClientJsonRpcMessage>),
    Answer(Value),
    Ignore,
}

fn error_line(id: Option<&Value>, code: i64, message: String) -> Value {
    json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null),
           "error": {"code": code, "message": message}})
}

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

/// The methods of MCP requests: one of these that rmcp took for a custom request had params
/// that do not fit it.
const MCP_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/call",
    "tools/list",
    "prompts/get",
    "prompts/list",
    "resources/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "resources/templates/list",
    "completion/complete",
    "logging/setLevel",
];

fn judge(line: &[u8]) -> Verdict {
    let line = line
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(line)
        .trim_ascii();
    if line.is_empty() {
        return Verdict::Ignore;
    }
    let e = match serde_json::from_slice::<ClientJsonRpcMessage>(line) {
        Ok(JsonRpcMessage::Request(r)) => {
            if let ClientRequest::CustomRequest(c) = &r.request {
                if MCP_METHODS.contains(&c.method.as_str()) {
                    let id = serde_json::to_value(&r.id).ok();
                    let why = params_misfit(&c.method, c.params.clone());
                    return Verdict::Answer(error_line(
                        id.as_ref(),
                        INVALID_PARAMS,
                        format!("invalid params for {}: {why}", c.method),
                    ));
                }
            }
            return Verdict::Pass(Box::new(JsonRpcMessage::Request(r)));
        }
        Ok(m) => return Verdict::Pass(Box::new(m)),
        Err(e) => e,
    };
    if e.is_syntax() || e.is_eof() {
        return Verdict::Answer(error_line(
            None,
            PARSE_ERROR,
            format!("the message is not JSON ({e}); nothing was done"),
        ));
    }
    // Well-formed JSON, but not a message: answered with its id if it has a readable one.
    let v: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
    let id = v.get("id").filter(|id| id.is_string() || id.is_i64());
    if id.is_none() && v.get("method").is_some_and(Value::is_string) {
        // A notification we do not know: never answered (rmcp ignores these too).
        return Verdict::Ignore;
    }
    Verdict::Answer(error_line(
        id,
        INVALID_REQUEST,
        format!("not a JSON-RPC 2.0 request this server understands ({e}); nothing was done"),
    ))
}

/// Why `params` do not fit `method`, as precisely as can be said.
fn params_misfit(method: &str, params: Option<Value>) -> String {
    let params = params.unwrap_or(Value::Null);
    if method == "tools/call" {
        if let Err(e) = serde_json::from_value::<rmcp::model::CallToolRequestParams>(params) {
            return format!("{e} (name is the tool's name, arguments an object)");
        }
    }
    "the params do not fit the method's schema".into()
}

impl Stdio {
    async fn write(&self, line: Vec<u8>) {
        if let Some(out) = &self.out {
            let _ = out.send(line).await;
        }
    }
}

fn message_line(v: &impl serde::Serialize) -> std::io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

impl Transport<RoleServer> for Stdio {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        let out = self.out.clone();
        async move {
            let line = message_line(&item)?;
            let out = out.ok_or_else(|| std::io::Error::other("the transport is closed"))?;
            out.send(line).await.map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "standard output is closed")
            })
        }
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            let Some(incoming) = self.incoming.recv().await else {
                self.closing.store(true, Ordering::SeqCst);
                return None;
            };
            let verdict = match incoming {
                Incoming::Line(line) => judge(&line),
                Incoming::Oversized => Verdict::Answer(error_line(
                    None,
                    INVALID_REQUEST,
                    format!(
                        "the message is longer than {MAX_MESSAGE} bytes (8 MiB), the limit for \
                         one message; it was skipped and nothing was done"
                    ),
                )),
            };
            match verdict {
                Verdict::Pass(m) => return Some(*m),
                Verdict::Answer(v) => {
                    if let Ok(line) = message_line(&v) {
                        self.write(line).await;
                    }
                }
                Verdict::Ignore => {}
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.out = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Option<Vec<u8>>> {
        let (tx, mut rx) = mpsc::channel(1024);
        read_lines(input, &tx);
        drop(tx);
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            out.push(match m {
                Incoming::Line(l) => Some(l),
                Incoming::Oversized => None,
            });
        }
        out
    }

    #[test]
    fn lines_over_the_limit_are_skipped_to_their_end_and_reading_goes_on() {
        let mut input = b"a\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_MESSAGE + 1));
        input.extend(b"\nb\nlast");
        assert_eq!(
            lines(&input),
            [
                Some(b"a".to_vec()),
                None,
                Some(b"b".to_vec()),
                Some(b"last".to_vec())
            ]
        );
        let mut exact = vec![b'y'; MAX_MESSAGE];
        exact.push(b'\n');
        assert_eq!(lines(&exact), [Some(vec![b'y'; MAX_MESSAGE])]);
    }

    fn answer(line: &str) -> Value {
        match judge(line.as_bytes()) {
            Verdict::Answer(v) => v,
            Verdict::Pass(_) => panic!("{line}: passed on"),
            Verdict::Ignore => panic!("{line}: ignored"),
        }
    }

    #[test]
    fn malformed_messages_are_answered_with_the_right_code_and_id() {
        for (line, code, id) in [
            ("{", PARSE_ERROR, Value::Null),
            ("not json", PARSE_ERROR, Value::Null),
            ("42", INVALID_REQUEST, Value::Null),
            (r#"{"jsonrpc":"2.0","id":3}"#, INVALID_REQUEST, json!(3)),
            (
                r#"{"jsonrpc":"1.0","id":"a","method":"ping"}"#,
                INVALID_REQUEST,
                json!("a"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"new","arguments":"str"}}"#,
                INVALID_PARAMS,
                json!(7),
            ),
        ] {
            let v = answer(line);
            assert_eq!(
                (v["error"]["code"].as_i64(), &v["id"]),
                (Some(code), &id),
                "{line}: {v}"
            );
        }
        // Notifications are never answered, known or not.
        for n in [
            &br#"{"jsonrpc":"2.0","method":"notifications/whatever"}"#[..],
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":5}"#,
        ] {
            assert!(!matches!(judge(n), Verdict::Answer(_)));
        }
        assert!(matches!(judge(b"  \r"), Verdict::Ignore));
        assert!(matches!(
            judge(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"new","arguments":{}}}"#),
            Verdict::Pass(_)
        ));
    }
}
