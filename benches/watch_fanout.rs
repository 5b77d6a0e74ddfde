//! Watch fan-out: write throughput of one node with 0 and with N open `GET /watch` streams,
//! and the event latency (write sent → event received, over every watcher). Prints numbers,
//! asserts nothing.
//!
//! Rounds are interleaved (0 watchers, N watchers, 0, N, ...) so a drift of the machine shows
//! in both. Each round writes for a fixed time from `WATCH_WRITERS` keep-alive connections,
//! each write's value carrying the time it was sent; in an N round every watcher watches the
//! written prefix and records, for every event, the time since its write was sent. After the
//! writes stop, one last write marks the end; every watcher reads up to it, so the count of
//! events delivered is checked against the writes acknowledged.
//!
//! Run: `cargo bench --bench watch_fanout` (N = 1000 watchers, 3 round pairs of 5 s, 16
//! writers). Short run: `WATCH_N=50 WATCH_ROUNDS=1 WATCH_SECS=1 cargo bench --bench
//! watch_fanout`. Other settings: `WATCH_WRITERS`, `WATCH_VALUE_BYTES` (default 100). The node
//! is the bench-built binary on a fresh temporary data directory, killed by its handle.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The node under test; killed and reaped on drop.
struct Node {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(max_watchers: u64) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let child = Command::new(env!("CARGO_BIN_EXE_kvstore"))
        .args(["--host", "127.0.0.1", "--port", "0"])
        .env("KVSTORE_DATA_DIR", dir.path())
        .env("KVSTORE_WATCH_MAX_WATCHERS", max_watchers.to_string())
        .env("RUST_LOG", "warn,kvstore=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kvstore starts");
    let mut node = Node {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        _dir: dir,
    };
    let stderr = node.child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("");
                node.addr = addr.trim_end_matches(',').parse().expect("listen address");
                return node;
            }
        }
    }
    panic!("kvstore did not start");
}

/// One keep-alive HTTP/1.1 connection for writes.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).ok();
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        Conn {
            reader: BufReader::new(s),
        }
    }

    /// `PUT /set`; the status.
    fn put(&mut self, key: &str, value: &str) -> u16 {
        let body = serde_json::json!({"key": key, "value": value}).to_string();
        let req = format!(
            "PUT /set HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader
            .get_mut()
            .write_all(req.as_bytes())
            .expect("send");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).expect("body");
        status
    }
}

/// Latencies in a log-linear histogram (16 sub-buckets per power of two: ~6% resolution).
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    max: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; 64 * 16],
            max: 0,
        }
    }

    fn bucket(v: u64) -> usize {
        if v < 16 {
            return v as usize;
        }
        let p = 63 - v.leading_zeros() as usize; // >= 4
        let sub = ((v >> (p - 4)) & 15) as usize;
        (p - 3) * 16 + sub
    }

    fn low(b: usize) -> u64 {
        if b < 16 {
            return b as u64;
        }
        let p = b / 16 + 3;
        ((16 + (b % 16)) as u64) << (p - 4)
    }

    fn record(&mut self, v: u64) {
        self.counts[Self::bucket(v)] += 1;
        self.max = self.max.max(v);
    }

    fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.max = self.max.max(o.max);
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn quantile(&self, q: f64) -> u64 {
        let want = ((self.total() as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want.max(1) {
                return Self::low(b);
            }
        }
        self.max
    }
}

/// The body of a chunked response, as a byte stream.
struct Chunked {
    conn: BufReader<TcpStream>,
    left: usize,
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let mut line = String::new();
            loop {
                line.clear();
                if self.conn.read_line(&mut line)? == 0 {
                    return Ok(0);
                }
                if !line.trim().is_empty() {
                    break;
                }
            }
            self.left = usize::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)?;
            if self.left == 0 {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.left);
        let n = self.conn.read(&mut buf[..n])?;
        self.left -= n;
        Ok(n)
    }
}

/// What one watcher saw.
struct Watched {
    events: u64,
    latency_us: Histogram,
    cut: bool,
}

/// Open a watch of `prefix`; returns once the answer's headers arrived, with a thread that
/// reads events until the value "end" and reports on `done`.
fn watcher(
    addr: SocketAddr,
    prefix: &str,
    base: Instant,
    done: mpsc::Sender<Watched>,
) -> std::thread::JoinHandle<()> {
    let s = TcpStream::connect(addr).expect("watch connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut w = s.try_clone().expect("clone");
    write!(
        w,
        "GET /watch?prefix={prefix} HTTP/1.1\r\nHost: bench\r\n\r\n"
    )
    .expect("send");
    let mut conn = BufReader::new(s);
    let mut line = String::new();
    conn.read_line(&mut line).expect("status");
    assert!(line.contains(" 200 "), "watch refused: {line}");
    loop {
        line.clear();
        conn.read_line(&mut line).expect("header");
        if line.trim_end().is_empty() {
            break;
        }
    }
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            let mut body = BufReader::new(Chunked { conn, left: 0 });
            let mut seen = Watched {
                events: 0,
                latency_us: Histogram::new(),
                cut: false,
            };
            let mut line = String::new();
            loop {
                line.clear();
                match body.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if line.starts_with("event: error") {
                    seen.cut = true;
                    break;
                }
                let Some(data) = line.strip_prefix("data: ") else {
                    continue;
                };
                let Some(at) = data.find("\"value\":\"") else {
                    continue; // a heartbeat
                };
                let value = &data[at + 9..];
                if value.starts_with("end") {
                    break;
                }
                let sent: u64 = value
                    .split(':')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let now = base.elapsed().as_micros() as u64;
                seen.latency_us.record(now.saturating_sub(sent));
                seen.events += 1;
            }
            let _ = done.send(seen);
        })
        .expect("watcher thread")
}

/// Write for `secs` from `writers` connections; the acknowledged writes.
fn write_round(addr: SocketAddr, writers: u64, secs: u64, pad: usize, base: Instant) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut i = 0u64;
                let padding = "x".repeat(pad);
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let value = format!("{}:{padding}", base.elapsed().as_micros());
                    if conn.put(&format!("fan/{w}-{}", i % 1000), &value) == 200 {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer");
    }
    acked.load(Ordering::Relaxed)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches`: nothing to list
    }
    let n = setting("WATCH_N", 1000);
    let rounds = setting("WATCH_ROUNDS", 3);
    let secs = setting("WATCH_SECS", 5);
    let writers = setting("WATCH_WRITERS", 16);
    let pad = setting("WATCH_VALUE_BYTES", 100) as usize;
    let node = start_node(n + 10);
    let addr = node.addr;
    let base = Instant::now();
    // The first write elects the node.
    let mut setup = Conn::open(addr);
    let ready = Instant::now() + Duration::from_secs(20);
    while setup.put("ready", "1") != 200 {
        assert!(Instant::now() < ready, "the node never accepted a write");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "watch fan-out: {n} watchers, {rounds} round pairs of {secs} s, {writers} writers, \
         {pad}-byte values"
    );
    println!(
        "{:>8} {:>10} {:>12} {:>10} {:>10} {:>10} {:>12} {:>5}",
        "watchers", "writes", "writes/s", "p50 ms", "p99 ms", "max ms", "events", "cut"
    );
    let mut with = Histogram::new();
    for _ in 0..rounds {
        for watchers in [0, n] {
            let (tx, rx) = mpsc::channel();
            let handles: Vec<_> = (0..watchers)
                .map(|_| watcher(addr, "fan/", base, tx.clone()))
                .collect();
            drop(tx);
            let t = Instant::now();
            let acked = write_round(addr, writers, secs, pad, base);
            let took = t.elapsed().as_secs_f64();
            // A fresh connection: the setup one sat idle through the round and the server may
            // have closed it (keep-alive timeout).
            assert_eq!(Conn::open(addr).put("fan/end", "end"), 200, "the end mark");
            let mut h = Histogram::new();
            let (mut events, mut cut) = (0u64, 0u64);
            for seen in rx.iter() {
                h.merge(&seen.latency_us);
                events += seen.events;
                cut += seen.cut as u64;
            }
            for handle in handles {
                let _ = handle.join();
            }
            let ms = |us: u64| us as f64 / 1000.0;
            if watchers == 0 {
                println!(
                    "{watchers:>8} {acked:>10} {:>12.0} {:>10} {:>10} {:>10} {:>12} {:>5}",
                    acked as f64 / took,
                    "-",
                    "-",
                    "-",
                    "-",
                    "-"
                );
            } else {
                println!(
                    "{watchers:>8} {acked:>10} {:>12.0} {:>10.2} {:>10.2} {:>10.2} {:>12} {:>5}",
                    acked as f64 / took,
                    ms(h.quantile(0.5)),
                    ms(h.quantile(0.99)),
                    ms(h.max),
                    events,
                    cut
                );
                if events < acked * watchers {
                    println!(
                        "         ({} events expected: {} missing; a cut watcher misses the rest)",
                        acked * watchers,
                        acked * watchers - events
                    );
                }
                with.merge(&h);
            }
        }
    }
    if with.total() > 0 {
        println!(
            "event latency over all rounds with {n} watchers: p50 {:.2} ms, p99 {:.2} ms, \
             max {:.2} ms ({} events)",
            with.quantile(0.5) as f64 / 1000.0,
            with.quantile(0.99) as f64 / 1000.0,
            with.max as f64 / 1000.0,
            with.total()
        );
    }
}
