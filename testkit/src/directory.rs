//! The organisation's directory (`GROUP_SOURCE=http`) on 127.0.0.1: answers
//! `GET …/{email}…` (the address compared without case, as most directories do) with the user's groups for the right bearer token, counts its calls and
//! misbehaves on cue. Written against the socket so that it can also send chunked and oversized
//! answers; connections are kept alive, as real directories do.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::wait::eventually;

/// The bearer token the directory accepts; any other is a 401.
pub const TOKEN: &str = "directory-token-0123456789";

/// How the directory answers.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `{"groups": [...]}` from the membership table (an unknown user has none).
    Answer,
    /// Answers after this long.
    Slow(Duration),
    /// Holds every answer until `release`.
    Held,
    Status(u16),
    BadJson,
    /// A valid answer of this many bytes, with a `Content-Length`.
    Huge(usize),
    /// The same without a length, in chunks.
    HugeChunked(usize),
}

struct DirState {
    mode: Mode,
    members: HashMap<String, Vec<String>>,
    /// The JSON path the answer nests the list under.
    field: Vec<&'static str>,
    last_path: String,
    last_authorization: String,
    /// Calls being held now, and the most ever held at once.
    held: usize,
    max_held: usize,
}

/// A running directory; stopped on drop.
pub struct Directory {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    state: Arc<Mutex<DirState>>,
    release: Arc<tokio::sync::Semaphore>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Directory {
    /// Starts answering for `members`: (email, groups).
    pub async fn start(members: &[(&str, &[&str])]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(Mutex::new(DirState {
            mode: Mode::Answer,
            members: members
                .iter()
                .map(|(u, g)| (u.to_string(), g.iter().map(|s| s.to_string()).collect()))
                .collect(),
            field: vec!["groups"],
            last_path: String::new(),
            last_authorization: String::new(),
            held: 0,
            max_held: 0,
        }));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let (c, s, r) = (calls.clone(), state.clone(), release.clone());
        let server = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                conns.spawn(serve_conn(stream, c.clone(), s.clone(), r.clone()));
            }
        });
        Self {
            addr,
            calls,
            state,
            release,
            server: Some(server),
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// Changes (or adds) `user`'s groups.
    pub fn set_groups(&self, user: &str, groups: &[&str]) {
        self.state
            .lock()
            .unwrap()
            .members
            .insert(user.into(), groups.iter().map(|s| s.to_string()).collect());
    }

    /// Nests the group list under this JSON path instead of `groups`.
    pub fn set_field(&self, path: &[&'static str]) {
        self.state.lock().unwrap().field = path.to_vec();
    }

    /// The path (with its query) and the `Authorization` header of the last request.
    pub fn last_request(&self) -> (String, String) {
        let st = self.state.lock().unwrap();
        (st.last_path.clone(), st.last_authorization.clone())
    }

    /// The most answers `Mode::Held` held at once.
    pub fn max_held(&self) -> usize {
        self.state.lock().unwrap().max_held
    }

    /// Lets `n` held answers go.
    pub fn release(&self, n: usize) {
        self.release.add_permits(n);
    }

    /// Closes the port and every open connection: the directory is down.
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }

    /// Stops, and waits until the port refuses connections.
    pub async fn wait_stopped(&mut self) {
        self.stop();
        // The port refuses connections once the accept loop (and its JoinSet) is gone.
        let addr = self.addr;
        let down = eventually(Duration::from_secs(5), || async move {
            TcpStream::connect(addr).await.is_err()
        })
        .await;
        assert!(down.is_some(), "the directory's port closes");
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 16 * 1024 || stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    String::from_utf8(buf).ok()
}

async fn serve_conn(
    mut stream: TcpStream,
    calls: Arc<AtomicUsize>,
    state: Arc<Mutex<DirState>>,
    release: Arc<tokio::sync::Semaphore>,
) {
    while let Some(head) = read_head(&mut stream).await {
        calls.fetch_add(1, Ordering::SeqCst);
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        let authorization = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("authorization")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        let (mode, body) = {
            let mut st = state.lock().unwrap();
            st.last_path = path.clone();
            st.last_authorization = authorization.clone();
            let user = percent_encoding::percent_decode_str(
                path.split('?')
                    .next()
                    .unwrap_or("")
                    .split('/')
                    .find(|s| s.contains("%40"))
                    .unwrap_or(""),
            )
            .decode_utf8_lossy()
            .to_string();
            // Addresses compare without case, as in most directories.
            let groups = st
                .members
                .iter()
                .find(|(u, _)| u.eq_ignore_ascii_case(&user))
                .map(|(_, g)| g.clone())
                .unwrap_or_default();
            let mut body = serde_json::json!(groups);
            for name in st.field.iter().rev() {
                body = serde_json::json!({ *name: body });
            }
            (st.mode.clone(), body.to_string())
        };
        if authorization != format!("Bearer {TOKEN}") {
            let _ = write(&mut stream, 401, "{}").await;
            continue;
        }
        let ok = match mode {
            Mode::Answer => write(&mut stream, 200, &body).await,
            Mode::Slow(d) => {
                tokio::time::sleep(d).await;
                write(&mut stream, 200, &body).await
            }
            Mode::Held => {
                {
                    let mut st = state.lock().unwrap();
                    st.held += 1;
                    st.max_held = st.max_held.max(st.held);
                }
                release.acquire().await.unwrap().forget();
                state.lock().unwrap().held -= 1;
                write(&mut stream, 200, &body).await
            }
            Mode::Status(code) => write(&mut stream, code, r#"{"error":"boom"}"#).await,
            Mode::BadJson => write(&mut stream, 200, r#"{"groups": ["admins""#).await,
            Mode::Huge(n) => write(&mut stream, 200, &huge(n)).await,
            Mode::HugeChunked(n) => {
                let text = huge(n);
                let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                for chunk in text.as_bytes().chunks(8192) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                stream.write_all(&out).await.is_ok()
            }
        };
        if !ok {
            return;
        }
    }
}

/// A valid answer padded to `n` bytes.
fn huge(n: usize) -> String {
    let pad = "x".repeat(n);
    format!(r#"{{"groups": [], "pad": "{pad}"}}"#)
}

async fn write(stream: &mut TcpStream, status: u16, body: &str) -> bool {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.is_ok()
        && stream.write_all(body.as_bytes()).await.is_ok()
}
