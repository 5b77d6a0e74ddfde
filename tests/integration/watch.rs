//! `GET /watch` over real TCP against real `kvstore` processes: the SSE shape and headers,
//! resuming with `fromIndex` and `Last-Event-ID`, 410 past the history, 503 over the watcher
//! limit, a watcher that does not read cut with an `error` event, heartbeats, a stop that does
//! not wait for open watches, and a watcher reconnecting through leader kills that sees every
//! committed change of its prefix exactly once, in order.
//!
//! The watch client here is a plain blocking `TcpStream` speaking HTTP/1.0 (the body is then
//! the raw event stream until the server closes), run on its own thread where it must not block
//! the test's runtime.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster_proc::ProcCluster;
use crate::helpers::{client, delete, poll_until, put, KvProcess};

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    id: Option<u64>,
    event: String,
    data: Value,
}

/// An open `GET /watch` (or its refusal).
struct Watch {
    status: u16,
    headers: Vec<(String, String)>,
    reader: BufReader<Body>,
}

/// A response body: chunked (`transfer-encoding: chunked`) or up to the end of the connection.
struct Body {
    conn: BufReader<TcpStream>,
    chunked: bool,
    /// Bytes left in the current chunk.
    left: usize,
    done: bool,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.chunked {
            return self.conn.read(buf);
        }
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            if self.conn.read_line(&mut line)? == 0 {
                return Ok(0);
            }
            if line.trim().is_empty() {
                // The CRLF that ends the previous chunk.
                line.clear();
                if self.conn.read_line(&mut line)? == 0 {
                    return Ok(0);
                }
            }
            let size = usize::from_str_radix(line.trim(), 16)
                .map_err(|e| std::io::Error::other(format!("chunk size {line:?}: {e}")))?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let n = buf.len().min(self.left);
        let n = self.conn.read(&mut buf[..n])?;
        self.left -= n;
        Ok(n)
    }
}

impl Watch {
    /// `GET path` on `addr` (`host:port`) with extra headers; reads the status line and headers.
    fn open(addr: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Watch> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        (&stream).write_all(req.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let body = Body {
            conn: reader,
            chunked,
            left: 0,
            done: false,
        };
        Ok(Watch {
            status,
            headers,
            reader: BufReader::new(body),
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body of a refusal, as JSON.
    fn json(mut self) -> Value {
        let mut body = String::new();
        self.reader.read_to_string(&mut body).expect("body");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
    }

    fn set_timeout(&self, t: Duration) {
        self.reader
            .get_ref()
            .conn
            .get_ref()
            .set_read_timeout(Some(t))
            .unwrap();
    }

    /// The next event; `Ok(None)` when the stream ended.
    fn next(&mut self) -> std::io::Result<Option<Event>> {
        let (mut id, mut event, mut data) = (None, String::new(), None);
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            let l = line.strip_suffix('\n').unwrap_or(&line);
            if l.is_empty() {
                if event.is_empty() && data.is_none() {
                    continue;
                }
                let data = data.unwrap_or(Value::Null);
                return Ok(Some(Event { id, event, data }));
            }
            if let Some(v) = l.strip_prefix("id: ") {
                id = Some(v.parse().expect("numeric id"));
            } else if let Some(v) = l.strip_prefix("event: ") {
                event = v.to_owned();
            } else if let Some(v) = l.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).expect("JSON data"));
            } else {
                panic!("unexpected SSE line {l:?}");
            }
        }
    }

    /// The next event that is not a heartbeat.
    fn next_change(&mut self) -> Event {
        loop {
            let e = self.next().expect("read").expect("stream open");
            if e.event != "heartbeat" {
                return e;
            }
        }
    }
}

fn addr_of(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

fn start(extra: &[&str]) -> KvProcess {
    let mut args = vec!["--host", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra);
    KvProcess::start(&args, &[])
}

/// A node that has elected itself and applied its first entry.
async fn ready(p: &KvProcess) {
    let base = p.url("");
    poll_until(Duration::from_secs(10), || async {
        match put(&base, "ready", "1").await.0 {
            200 => Ok(()),
            s => Err(s),
        }
    })
    .await
    .expect("node ready");
    // A new leader appends the bootstrap configuration as an entry once its no-op commits; a
    // write that came first lands before it. Wait until that entry is applied and nothing is
    // left to apply, so that tests that expect an idle node get one.
    poll_until(Duration::from_secs(10), || async {
        let mut res = client()
            .get(format!("{base}/health"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let h: serde_json::Value =
            serde_json::from_slice(&res.body().await.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let (config, applied, last) = (
            h["configIndex"].as_u64(),
            h["appliedIndex"].as_u64(),
            h["lastLogIndex"].as_u64(),
        );
        match (config, applied, last) {
            (Some(c), Some(a), Some(l)) if c > 0 && a >= c && a == l => Ok(()),
            _ => Err(h.to_string()),
        }
    })
    .await
    .expect("node settled");
}

#[actix_web::test]
async fn watch_streams_the_changes_of_its_prefix_as_server_sent_events() {
    let p = start(&[]);
    ready(&p).await;
    let base = p.url("");
    let addr = addr_of(&base);
    let mut w = Watch::open(&addr, "/watch?prefix=a/", &[]).unwrap();
    assert_eq!(w.status, 200);
    assert_eq!(w.header("content-type"), Some("text/event-stream"));
    assert_eq!(w.header("cache-control"), Some("no-cache"));
    let start_index: u64 = w.header("x-kvstore-index").unwrap().parse().unwrap();
    assert!(start_index >= 1);
    assert_eq!(put(&base, "a/1", "one\ntwo").await.0, 200);
    assert_eq!(put(&base, "b/1", "other").await.0, 200);
    assert_eq!(put(&base, "a/2", "x").await.0, 200);
    assert_eq!(delete(&base, "a/1").await, 200);
    let set1 = w.next_change();
    assert_eq!(set1.event, "set");
    assert_eq!(set1.data["key"], "a/1");
    assert_eq!(set1.data["value"], "one\ntwo");
    let i1 = set1.id.unwrap();
    assert!(i1 > start_index);
    assert_eq!(set1.data["modIndex"], i1);
    // createIndex is there; it equals modIndex for a new key once the store keeps create
    // indexes (the core lane of issue #15; 0 until then).
    assert!(set1.data["createIndex"].is_u64());
    let set2 = w.next_change();
    assert_eq!(
        (set2.event.as_str(), &set2.data["key"]),
        ("set", &Value::from("a/2"))
    );
    assert!(
        set2.id.unwrap() > i1 + 1,
        "b/1 came between and was not sent"
    );
    let del = w.next_change();
    assert_eq!(del.event, "delete");
    assert_eq!(
        del.data,
        serde_json::json!({"key": "a/1", "modIndex": del.id.unwrap()})
    );
    assert!(del.id > set2.id);

    // Bad requests are JSON 400s; other methods 405.
    for q in ["fromIndex=0", "fromIndex=-3", "fromIndex=x"] {
        let r = Watch::open(&addr, &format!("/watch?{q}"), &[]).unwrap();
        assert_eq!(r.status, 400, "{q}");
        let v = r.json();
        assert_eq!(v["ok"], false);
        assert!(v["message"].as_str().unwrap().contains("fromIndex"), "{v}");
    }
    let r = Watch::open(&addr, "/watch", &[("Last-Event-ID", "nope")]).unwrap();
    assert_eq!(r.status, 400);
    let res = client().post(format!("{base}/watch")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 405);
}

#[actix_web::test]
async fn a_watch_resumes_from_an_index_or_the_last_event_id_with_no_gap_and_no_duplicate() {
    let p = start(&[]);
    ready(&p).await;
    let base = p.url("");
    let addr = addr_of(&base);
    let mut first = Watch::open(&addr, "/watch?prefix=k", &[]).unwrap();
    for i in 0..6 {
        assert_eq!(put(&base, &format!("k{i}"), &i.to_string()).await.0, 200);
    }
    let all: Vec<Event> = (0..6).map(|_| first.next_change()).collect();
    let ids: Vec<u64> = all.iter().map(|e| e.id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // Resume after the third event: exactly the last three.
    let from = ids[2] + 1;
    let mut again = Watch::open(&addr, &format!("/watch?prefix=k&fromIndex={from}"), &[]).unwrap();
    assert_eq!(again.status, 200);
    let rest: Vec<Event> = (0..3).map(|_| again.next_change()).collect();
    assert_eq!(rest, all[3..]);
    // The same with Last-Event-ID (what EventSource sends when it reconnects)...
    let last = ids[2].to_string();
    let mut es = Watch::open(&addr, "/watch?prefix=k", &[("Last-Event-ID", &last)]).unwrap();
    let rest: Vec<Event> = (0..3).map(|_| es.next_change()).collect();
    assert_eq!(rest, all[3..]);
    // ... and fromIndex wins over it.
    let mut both = Watch::open(
        &addr,
        &format!("/watch?prefix=k&fromIndex={}", ids[4]),
        &[("Last-Event-ID", &last)],
    )
    .unwrap();
    assert_eq!(both.next_change(), all[4]);
    // From the start of the history: everything, the same events.
    let mut from1 = Watch::open(&addr, "/watch?prefix=k&fromIndex=1", &[]).unwrap();
    let replay: Vec<Event> = (0..6).map(|_| from1.next_change()).collect();
    assert_eq!(replay, all);
    // A live change after the catch-up comes once, in order.
    assert_eq!(put(&base, "k9", "9").await.0, 200);
    let live = from1.next_change();
    assert_eq!(live.data["key"], "k9");
    assert!(live.id.unwrap() > ids[5]);
    assert_eq!(again.next_change(), live);
}

#[actix_web::test]
async fn a_from_index_older_than_the_history_is_a_410_with_the_oldest_index() {
    let p = start(&["--watch-history-changes", "3", "--watch-max-watchers", "2"]);
    ready(&p).await;
    let base = p.url("");
    let addr = addr_of(&base);
    for i in 0..8 {
        assert_eq!(put(&base, &format!("h{i}"), "v").await.0, 200);
    }
    let r = Watch::open(&addr, "/watch?fromIndex=1", &[]).unwrap();
    assert_eq!(r.status, 410);
    let v = r.json();
    let oldest = v["oldestIndex"].as_u64().expect("oldestIndex");
    assert_eq!(v["ok"], false);
    assert_eq!(
        v["message"],
        format!("index 1 was compacted; the oldest index available is {oldest}")
    );
    // Exactly at the boundary: one below is refused, the oldest itself is served.
    let below = Watch::open(&addr, &format!("/watch?fromIndex={}", oldest - 1), &[]).unwrap();
    assert_eq!(below.status, 410);
    assert_eq!(below.json()["oldestIndex"], oldest);
    let mut at = Watch::open(&addr, &format!("/watch?fromIndex={oldest}"), &[]).unwrap();
    assert_eq!(at.status, 200);
    let keys: Vec<Value> = (0..3)
        .map(|_| at.next_change().data["key"].clone())
        .collect();
    assert_eq!(keys, ["h5", "h6", "h7"]);
    // The watcher limit (2): one more is a 503 in the JSON shape.
    let _second = Watch::open(&addr, "/watch", &[]).unwrap();
    let third = Watch::open(&addr, "/watch", &[]).unwrap();
    assert_eq!(third.status, 503);
    let v = third.json();
    assert!(
        v["message"].as_str().unwrap().contains("too many watchers"),
        "{v}"
    );
}

#[actix_web::test]
async fn a_watcher_that_does_not_read_is_cut_with_an_error_event_naming_where_to_resume() {
    let p = start(&["--watch-queue-events", "2"]);
    ready(&p).await;
    let base = p.url("");
    let addr = addr_of(&base);
    let mut slow = Watch::open(&addr, "/watch?prefix=big/", &[]).unwrap();
    assert_eq!(slow.status, 200);
    // More than the socket buffers, the channel and the queue can hold: 48 MB of events.
    let value = "v".repeat(120 * 1024);
    for i in 0..400 {
        assert_eq!(put(&base, &format!("big/{i}"), &value).await.0, 200);
    }
    let mut last_id = 0;
    let cut = loop {
        let e = slow
            .next()
            .expect("read")
            .expect("the error event comes before the end");
        if e.event == "error" {
            break e;
        }
        assert_eq!(e.event, "set");
        last_id = e.id.unwrap();
    };
    assert!(
        slow.next().unwrap().is_none(),
        "the stream ends after the error event"
    );
    let msg = cut.data["message"].as_str().unwrap();
    let resume = cut.data["fromIndex"].as_u64().unwrap();
    assert!(msg.starts_with("watcher too slow: "), "{msg}");
    assert!(
        msg.ends_with(&format!("reconnect with fromIndex={resume}")),
        "{msg}"
    );
    assert!(
        resume > last_id && resume < last_id + 4,
        "{resume} after {last_id}"
    );
    // Reconnecting there gives the next change, as promised.
    let mut again = Watch::open(
        &addr,
        &format!("/watch?prefix=big/&fromIndex={resume}"),
        &[],
    )
    .unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(again.next_change().id, Some(resume));
}

#[actix_web::test]
async fn heartbeats_carry_the_applied_index_and_can_be_resumed_after() {
    let p = start(&["--watch-heartbeat-ms", "100"]);
    ready(&p).await;
    let base = p.url("");
    let addr = addr_of(&base);
    let mut w = Watch::open(&addr, "/watch?prefix=nothing/", &[]).unwrap();
    let at: u64 = w.header("x-kvstore-index").unwrap().parse().unwrap();
    w.set_timeout(Duration::from_secs(5));
    let beat = w.next().unwrap().unwrap();
    assert_eq!(beat.event, "heartbeat");
    assert_eq!(beat.id, Some(at));
    assert_eq!(beat.data, serde_json::json!({"index": at}));
    assert_eq!(put(&base, "other", "x").await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let e = w.next().unwrap().unwrap();
        assert_eq!(e.event, "heartbeat");
        if e.id > Some(at) {
            assert_eq!(e.data["index"], e.id.unwrap());
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeat after the write");
    }
}

#[actix_web::test]
async fn sigterm_does_not_wait_for_open_watches() {
    let mut p = start(&["--shutdown-timeout-secs", "30"]);
    ready(&p).await;
    let addr = addr_of(&p.url(""));
    let mut w = Watch::open(&addr, "/watch", &[]).unwrap();
    assert_eq!(w.status, 200);
    let t = Instant::now();
    p.signal(libc::SIGTERM);
    let status = p.wait_exit(Duration::from_secs(20)).expect("exits");
    assert!(status.success(), "{status:?}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}: the stop waited for the watch",
        t.elapsed()
    );
    w.set_timeout(Duration::from_secs(2));
    assert!(matches!(w.next(), Ok(None) | Err(_)), "the stream ended");
}

/// What the watcher thread of the reconnection test saw.
#[derive(Debug, Default)]
struct Seen {
    /// (id, event, key, value) of every change, in the order received.
    changes: Vec<(u64, String, String, Option<String>)>,
    reconnects: usize,
    /// Streams opened on a node that had applied less than the watcher had seen.
    lagging_opens: usize,
}

/// Watch `prefix` from index 1 on random live nodes of `urls`, reconnecting with the last id +
/// 1 whenever a stream breaks, until `stop` is set and the key `until` was seen; checks on the
/// way that ids never go back and no change comes twice.
fn reconnecting_watcher(
    urls: Vec<String>,
    prefix: &'static str,
    until: &'static str,
    stop: Arc<AtomicBool>,
    deadline: Instant,
) -> Seen {
    let mut seen = Seen::default();
    let mut last = 0u64;
    loop {
        assert!(Instant::now() < deadline, "watcher gave up: {seen:?}");
        let url = &urls[rand::random::<usize>() % urls.len()];
        let path = format!("/watch?prefix={prefix}&fromIndex={}", last + 1);
        let Ok(mut w) = Watch::open(&addr_of(url), &path, &[]) else {
            std::thread::sleep(Duration::from_millis(50));
            continue; // that node is down
        };
        match w.status {
            200 => {}
            410 => panic!("410 on {url} from {}: {:?}", last + 1, w.json()),
            _ => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        }
        seen.reconnects += 1;
        if let Some(at) = w
            .header("x-kvstore-index")
            .and_then(|v| v.parse::<u64>().ok())
        {
            if at < last {
                seen.lagging_opens += 1;
            }
        }
        w.set_timeout(Duration::from_secs(2));
        // Move on after a while even when nothing breaks, to visit other (lagging) nodes.
        let switch_at = Instant::now() + Duration::from_millis(1500);
        while let Ok(Some(e)) = w.next() {
            let id = e.id.unwrap_or_else(|| panic!("an event without id: {e:?}"));
            match e.event.as_str() {
                "heartbeat" => {
                    assert!(id >= last, "heartbeat {id} went back from {last} on {url}");
                }
                "set" | "delete" => {
                    assert!(id > last, "change {id} after {last} on {url}: {e:?}");
                    let key = e.data["key"].as_str().unwrap().to_owned();
                    assert!(key.starts_with(prefix), "{key}");
                    let value = e.data["value"].as_str().map(str::to_owned);
                    seen.changes.push((id, e.event.clone(), key, value));
                }
                other => panic!("unexpected event {other} on {url}: {e:?}"),
            }
            last = id;
            let done =
                stop.load(Ordering::SeqCst) && seen.changes.last().is_some_and(|c| c.2 == until);
            if done {
                return seen;
            }
            if Instant::now() > switch_at {
                break;
            }
        }
    }
}

#[actix_web::test]
async fn a_watcher_reconnecting_through_leader_kills_sees_every_change_of_its_prefix_once_in_order()
{
    let started = Instant::now();
    let mut c = ProcCluster::start_with(3, &[("KVSTORE_WATCH_HEARTBEAT_MS", "200")]);
    c.wait_for_leader(Duration::from_secs(10)).await;
    let urls: Vec<String> = (0..3).map(|i| c.url(i)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    {
        let (urls, stop) = (urls.clone(), stop.clone());
        let deadline = started + Duration::from_secs(55);
        std::thread::spawn(move || {
            let seen = reconnecting_watcher(urls, "in/", "in/end", stop, deadline);
            let _ = tx.send(seen);
        });
    }
    // Writers: keys inside and outside the prefix, each value unique, through any node.
    let writing = Arc::new(AtomicBool::new(true));
    let mut writers = Vec::new();
    for w in 0..3 {
        let (urls, writing) = (urls.clone(), writing.clone());
        writers.push(actix_web::rt::spawn(async move {
            let mut acked: Vec<(String, Option<String>)> = Vec::new();
            let mut n = 0;
            while writing.load(Ordering::SeqCst) {
                n += 1;
                let url = &urls[(n + w) % urls.len()];
                let (key, value) = match n % 3 {
                    0 => (format!("out/{w}-{n}"), format!("o{w}-{n}")),
                    _ => (format!("in/{w}-{}", n % 40), format!("v{w}-{n}")),
                };
                let del = n % 11 == 0;
                let ok = if del {
                    send_delete(url, &key).await
                } else {
                    send_put(url, &key, &value).await
                };
                if ok && key.starts_with("in/") {
                    acked.push((key, (!del).then_some(value)));
                }
                if !ok {
                    actix_web::rt::time::sleep(Duration::from_millis(30)).await;
                }
            }
            acked
        }));
    }
    // Kill the leader three times, restarting it each time. The sleeps are the fault schedule
    // (how long writes run between faults), not waits for a state: every state the test
    // depends on is polled (`wait_for_leader`, the watcher's own reconnect loop, the final
    // catch-up with a deadline).
    for _ in 0..3 {
        actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
        let (leader, _) = c.wait_for_leader(Duration::from_secs(15)).await;
        c.kill(leader);
        actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
        c.start_node(leader);
    }
    actix_web::rt::time::sleep(Duration::from_millis(2000)).await;
    writing.store(false, Ordering::SeqCst);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    // The last change of the prefix, acknowledged: the watcher stops when it sees it.
    c.wait_for_leader(Duration::from_secs(15)).await;
    let end_ok = poll_until(Duration::from_secs(15), || async {
        let url = &urls[0];
        if send_put(url, "in/end", "end").await {
            Ok(())
        } else {
            Err(())
        }
    })
    .await;
    assert!(end_ok.is_ok(), "the last write was not acknowledged");
    stop.store(true, Ordering::SeqCst);
    // Nothing else runs on this runtime now: a blocking wait is fine.
    let seen = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the watcher saw the last write");
    assert!(seen.reconnects >= 4, "{} reconnections", seen.reconnects);

    // Strictly increasing ids: no duplicate, no going back.
    let ids: Vec<u64> = seen.changes.iter().map(|c| c.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids go back: {ids:?}");
    // Every acknowledged write of the prefix is there (sets with their unique value).
    let got: HashSet<(String, Option<String>)> = seen
        .changes
        .iter()
        .map(|c| (c.2.clone(), c.3.clone()))
        .collect();
    for (key, value) in &acked {
        if value.is_some() {
            assert!(
                got.contains(&(key.clone(), value.clone())),
                "acknowledged {key}={value:?} never watched"
            );
        }
    }
    // And every acknowledged delete (a delete has no value to tell it apart: count by key).
    let mut deletes: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (key, value) in &acked {
        if value.is_none() {
            deletes.entry(key).or_default().0 += 1;
        }
    }
    for c in seen.changes.iter().filter(|c| c.1 == "delete") {
        deletes.entry(&c.2).or_default().1 += 1;
    }
    for (key, (acked, watched)) in deletes {
        assert!(
            watched >= acked,
            "{key}: {acked} deletes acknowledged, {watched} watched"
        );
    }
    // The same sequence as a fresh watch of the whole history on a node shows.
    let reference = fresh_history(&urls, "in/", "in/end");
    assert_eq!(seen.changes.len(), reference.len());
    assert_eq!(
        seen.changes, reference,
        "the watcher's changes differ from the history"
    );
    eprintln!(
        "{} changes watched, {} reconnections ({} to a lagging node), {} acknowledged, {:?}",
        seen.changes.len(),
        seen.reconnects,
        seen.lagging_opens,
        acked.len(),
        started.elapsed()
    );
}

/// Every change of `prefix` from index 1 to the key `until`, as one node's history has it.
fn fresh_history(
    urls: &[String],
    prefix: &str,
    until: &str,
) -> Vec<(u64, String, String, Option<String>)> {
    for url in urls {
        let Ok(mut w) = Watch::open(
            &addr_of(url),
            &format!("/watch?prefix={prefix}&fromIndex=1"),
            &[],
        ) else {
            continue;
        };
        if w.status != 200 {
            continue;
        }
        w.set_timeout(Duration::from_secs(10));
        let mut out = Vec::new();
        while let Ok(Some(e)) = w.next() {
            if e.event == "heartbeat" {
                continue;
            }
            let key = e.data["key"].as_str().unwrap().to_owned();
            let value = e.data["value"].as_str().map(str::to_owned);
            out.push((e.id.unwrap(), e.event, key.clone(), value));
            if key == until {
                return out;
            }
        }
    }
    panic!("no node served the whole history of {prefix}");
}

async fn send_put(url: &str, key: &str, value: &str) -> bool {
    let res = client()
        .put(format!("{url}/set"))
        .timeout(Duration::from_secs(3))
        .send_json(&serde_json::json!({"key": key, "value": value}))
        .await;
    matches!(res, Ok(r) if r.status().as_u16() == 200)
}

async fn send_delete(url: &str, key: &str) -> bool {
    let res = client()
        .delete(format!("{url}/delete?key={key}"))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    matches!(res, Ok(r) if r.status().as_u16() == 200)
}

#[actix_web::test]
async fn watch_needs_the_read_role_when_client_tokens_are_on() {
    use actix_web::test as at;
    let mut state = crate::helpers::state_with(kvstore::api::Limits::default());
    let read = "r-0123456789abcdef";
    let tokens = kvstore::api::auth::parse_tokens(&format!("read {read}\n")).unwrap();
    state.client_tokens = Some(Arc::new(tokens));
    let app = at::init_service(kvstore::api::app(state)).await;
    let res = at::call_service(&app, at::TestRequest::get().uri("/watch").to_request()).await;
    assert_eq!(res.status().as_u16(), 401);
    let req = at::TestRequest::get()
        .uri("/watch?prefix=a")
        .insert_header(("authorization", format!("Bearer {read}")))
        .to_request();
    let res = at::call_service(&app, req).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    assert!(res.headers().contains_key("x-kvstore-index"));
}
