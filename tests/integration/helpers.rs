//! Shared test setup: app state, in-process servers, child processes that are always killed,
//! and HTTP calls used by several test files. Nothing here sleeps to synchronise.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use kvstore::api::{AppState, Limits};
use kvstore::config::{Cli, Config};
use kvstore::startup::Node;

/// State for `api::app`: fresh single-node actors with the given limits. Call inside an actix
/// system.
pub fn state_with(limits: Limits) -> AppState {
    let mut state = kvstore::startup::start_actors(
        &config(&["--node-id", "t1", "--in-memory"]),
        "http://127.0.0.1:1".into(),
    )
    .expect("actors start");
    state.limits = limits;
    state
}

/// One request through an in-process app (`actix_web::test`): status, headers and body.
pub async fn call_app<S, B>(
    app: &S,
    req: actix_web::test::TestRequest,
) -> (
    u16,
    actix_web::http::header::HeaderMap,
    actix_web::web::Bytes,
)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let res = actix_web::test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, actix_web::test::read_body(res).await)
}

/// A validated config from command-line flags, ignoring the process environment's `PORT`.
pub fn config(args: &[&str]) -> Config {
    use clap::Parser;
    let mut all = vec!["kvstore"];
    all.extend_from_slice(args);
    Config::from_cli(Cli::try_parse_from(all).expect("flags parse"), false, None)
        .expect("config valid")
}

/// An in-process node on 127.0.0.1 and a port the OS picked; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl TestServer {
    /// Start inside the current actix system (use from `#[actix_web::test]`).
    pub fn start(extra: &[&str]) -> TestServer {
        let mut args = vec![
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--workers",
            "2",
            "--in-memory",
        ];
        args.extend_from_slice(extra);
        let node = Node::bind(&config(&args)).expect("bind");
        let handle = node.handle();
        let addr = node.addr;
        actix_web::rt::spawn(node.server);
        TestServer { addr, handle }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Not awaited: the stop completes when the system shuts down at the end of the test.
        drop(self.handle.stop(false));
    }
}

/// A `kvstore` child process. Killed (SIGKILL) and reaped when dropped, whatever happened.
pub struct KvProcess {
    pub child: Child,
    /// Every line the process writes to stderr, as it comes.
    pub stderr: Receiver<String>,
    /// Address from the "listening on" line, once seen.
    pub addr: Option<SocketAddr>,
    /// A data directory made for this process (when the caller gave none); held only so it is
    /// removed on drop, after the process.
    _data_dir: Option<tempfile::TempDir>,
}

/// Path of the binary under test (built by cargo for this test run).
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_kvstore")
}

impl KvProcess {
    /// A process started elsewhere (no address known, no data directory of ours), still killed
    /// and reaped on drop.
    pub fn wrap(child: Child, stderr: Receiver<String>) -> KvProcess {
        KvProcess {
            child,
            stderr,
            addr: None,
            _data_dir: None,
        }
    }

    /// Spawn `kvstore` with `args` and `envs` (the environment is otherwise cleared of
    /// `KVSTORE_*`, `PORT`, `NODE_ID` and `PEERS`, so the caller's shell cannot leak in). Unless
    /// the caller chose storage, the process gets a fresh temporary data directory.
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> KvProcess {
        Self::spawn_in(None, args, envs)
    }

    /// [`KvProcess::spawn`] in the working directory `cwd` (default: the test's).
    pub fn spawn_in(
        cwd: Option<&std::path::Path>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> KvProcess {
        Self::spawn_full(&[], cwd, args, envs)
    }

    /// [`KvProcess::spawn`] through a command that execs it (e.g. `ip netns exec NS`), so the
    /// handle is still the node's own process.
    pub fn spawn_prefixed(prefix: &[&str], args: &[&str], envs: &[(&str, &str)]) -> KvProcess {
        Self::spawn_full(prefix, None, args, envs)
    }

    fn spawn_full(
        prefix: &[&str],
        cwd: Option<&std::path::Path>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> KvProcess {
        let chose_storage = args
            .iter()
            .any(|a| *a == "--in-memory" || *a == "--data-dir" || *a == "--storage")
            || envs
                .iter()
                .any(|(k, _)| *k == "KVSTORE_DATA_DIR" || *k == "KVSTORE_STORAGE");
        let data_dir = (!chose_storage).then(|| tempfile::tempdir().expect("temp dir"));
        let mut cmd = match prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        for (k, _) in std::env::vars() {
            if k.starts_with("KVSTORE_") || k == "PORT" || k == "NODE_ID" || k == "PEERS" {
                cmd.env_remove(k);
            }
        }
        cmd.env("RUST_LOG", "info");
        if let Some(d) = &data_dir {
            cmd.env("KVSTORE_DATA_DIR", d.path());
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn kvstore");
        let err = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        KvProcess {
            child,
            stderr: rx,
            addr: None,
            _data_dir: data_dir,
        }
    }

    /// Spawn and wait (up to 20 s) for the "listening on" line; panics if the process exits
    /// first, showing what it printed.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> KvProcess {
        Self::try_start(args, envs)
            .unwrap_or_else(|seen| panic!("kvstore did not start; it printed:\n{seen}"))
    }

    /// Like [`KvProcess::start`], but `Err` holds what the process printed if it did not start.
    pub fn try_start(args: &[&str], envs: &[(&str, &str)]) -> Result<KvProcess, String> {
        let mut p = Self::spawn(args, envs);
        let line = p.wait_for_line(Duration::from_secs(20), |l| {
            l.contains("listening on http://")
        })?;
        p.addr = Some(parse_listen_addr(&line).ok_or("no address in the listening line")?);
        Ok(p)
    }

    /// Wait until a stderr line matches; `Err` holds everything seen if it never does (deadline
    /// or process exit).
    pub fn wait_for_line(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut seen = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .stderr
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    if pred(&line) {
                        return Ok(line);
                    }
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(seen),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= deadline {
                return Err(seen);
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr.expect("started"), path)
    }

    /// Send a signal by number (e.g. `libc::SIGTERM`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with our own child's pid; no memory is shared.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.child.id());
    }

    /// Wait for exit up to `timeout`; `None` if still running. Blocks on a pidfd (no polling
    /// loop), then reaps the child through its handle.
    /// Every stderr line not yet taken, up to the end of the stream: call after the process
    /// exited. The reader thread may still be passing on the last lines when the exit is seen,
    /// so this waits (up to `timeout`) for it to reach the end of the pipe, instead of taking
    /// only what already arrived.
    pub fn remaining_stderr(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => return lines, // the stream ended (or the deadline passed)
            }
        }
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        // SAFETY: pidfd_open on our own, not yet reaped child; the fd is closed below.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.child.id() as libc::c_int, 0) };
        assert!(
            fd >= 0,
            "pidfd_open failed: {}",
            std::io::Error::last_os_error()
        );
        let fd = fd as libc::c_int;
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd; the pidfd becomes readable when the process exits.
        unsafe {
            libc::poll(&mut pfd, 1, ms);
            libc::close(fd);
        }
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for KvProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `127.0.0.1:1234` out of a log line containing `listening on http://127.0.0.1:1234`.
pub fn parse_listen_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on http://")? + "listening on http://".len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A port that was free a moment ago (bound to port 0, then released). Only for settings that
/// must name a port before the process starts; prefer `--port 0` everywhere else.
/// `n` distinct free ports on 127.0.0.1: every listener is held until all are picked, so the
/// OS cannot hand out the same port twice (two `free_port` calls can).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind port 0")
}

/// An awc client with a timeout that bounds every test request.
pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
}

/// `PUT /set` through `base`: (status, body, the `x-kvstore-leader` header if forwarded).
pub async fn put(base: &str, key: &str, value: &str) -> (u16, serde_json::Value, Option<String>) {
    put_via(&client(), base, key, value).await
}

/// [`put`] with a client of the caller's (e.g. one that trusts a test CA).
pub async fn put_via(
    client: &awc::Client,
    base: &str,
    key: &str,
    value: &str,
) -> (u16, serde_json::Value, Option<String>) {
    let mut res = client
        .put(format!("{base}/set"))
        .timeout(Duration::from_secs(20))
        .send_json(&serde_json::json!({"key": key, "value": value}))
        .await
        .expect("PUT answered");
    let leader = res
        .headers()
        .get("x-kvstore-leader")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.body().await.unwrap();
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap(),
        leader,
    )
}

/// `GET /get` through `base` (linearizable, or `stale`): (status, body).
pub async fn get(base: &str, key: &str, stale: bool) -> (u16, serde_json::Value) {
    let c = if stale { "&consistency=stale" } else { "" };
    let mut res = client()
        .get(format!("{base}/get?key={key}{c}"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("GET answered");
    let body = res.body().await.unwrap();
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap(),
    )
}

/// `DELETE /delete` through `base`: the status.
pub async fn delete(base: &str, key: &str) -> u16 {
    client()
        .delete(format!("{base}/delete?key={key}"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("DELETE answered")
        .status()
        .as_u16()
}

/// Ask `probe` again every 20 ms until it returns `Ok`, for at most `within`: a poll with a
/// deadline. `Err` is what the last attempt said, for the caller's failure message.
pub async fn poll_until<T, E, F, Fut>(within: Duration, mut probe: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + within;
    loop {
        let last = match probe().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}
