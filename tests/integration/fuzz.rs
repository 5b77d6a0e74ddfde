//! Fuzz targets for every decoder of outside input, run as ordinary tests: random bytes and
//! mutations (bit flips, inserted, deleted and overwritten bytes, truncation) of valid inputs.
//!
//! - `peer_rpcs`: `/raft/vote`, `/raft/append` bodies and `/raft/snapshot` queries and chunks
//!   through the real routes (`api::app`): never a 5xx, never a panic, a 4xx in the API's error
//!   shape for garbage, and every body that decodes round-trips through its type.
//! - `wal_segments`: a valid write-ahead log segment, mutated: the scan refuses, or returns a
//!   prefix of what was written; never a panic.
//! - `snapshot_files`: a valid snapshot file, mutated, and random bytes: refused or decoded to
//!   exactly what was written.
//! - `client_api`: `/get` and `/delete` query strings, `/set` bodies: never a 5xx, every error in
//!   the JSON shape.
//!
//! Each target runs `KVSTORE_FUZZ_CASES` cases (default 1000) from the seed `KVSTORE_FUZZ_SEED`
//! (default fixed, so the normal test run is deterministic), stopping early after
//! `KVSTORE_FUZZ_SECS` seconds (default 3). `scripts/fuzz.sh` runs them longer with random
//! seeds. A failure prints the seed and the input. Findings are kept below as named regression
//! tests with their failing input.

use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::test as at;
use kvstore::api::{self, Limits};
use kvstore::raft::log::{Entry, EntryPayload};
use kvstore::raft::rpc::{AppendRequest, SnapshotRequest, VoteRequest};
use kvstore::raft::HardState;
use kvstore::storage::snapshot::{self, SnapshotMeta};
use kvstore::storage::{Record, Wal};
use kvstore::store::Command;
use kvstore::transport::http::CLUSTER_HEADER;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

use crate::helpers::state_with;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The runs of one target: its seed, how many cases, until when.
struct Fuzz {
    name: &'static str,
    seed: u64,
    cases: u64,
    until: Instant,
    runner: TestRunner,
}

impl Fuzz {
    fn new(name: &'static str) -> Fuzz {
        let seed = env_num("KVSTORE_FUZZ_SEED", DEFAULT_SEED);
        let cases = env_num("KVSTORE_FUZZ_CASES", 1000);
        let secs = env_num("KVSTORE_FUZZ_SECS", 3);
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[8..16].copy_from_slice(&(name.len() as u64).to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
        let runner = TestRunner::new_with_rng(Config::default(), rng);
        eprintln!("fuzz {name}: seed {seed}, up to {cases} cases, {secs} s");
        Fuzz {
            name,
            seed,
            cases,
            until: Instant::now() + Duration::from_secs(secs),
            runner,
        }
    }

    /// The next input from `strategy`, or `None` when the cases or the time are used up.
    fn next<S: Strategy>(&mut self, done: u64, strategy: &S) -> Option<S::Value> {
        if done >= self.cases || Instant::now() >= self.until {
            return None;
        }
        Some(strategy.new_tree(&mut self.runner).ok()?.current())
    }

    fn report(&self, done: u64) {
        eprintln!("fuzz {}: {done} cases passed", self.name);
        assert!(done > 0, "no case ran");
    }

    fn fail(&self, input: &dyn std::fmt::Debug, why: String) -> ! {
        panic!(
            "fuzz {}: {why}\n  input: {input:?}\n  replay: KVSTORE_FUZZ_SEED={}",
            self.name, self.seed
        )
    }
}

/// The seed of the normal test run.
const DEFAULT_SEED: u64 = 0x5eed_f022;

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(p, b)| Edit::Flip(p, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Set(p, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Insert(p, b)),
        1 => any::<usize>().prop_map(Edit::Delete),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn mutate(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = b.len();
        match *e {
            Edit::Flip(p, bit) if n > 0 => b[p % n] ^= 1 << bit,
            Edit::Set(p, v) if n > 0 => b[p % n] = v,
            Edit::Insert(p, v) => b.insert(p % (n + 1), v),
            Edit::Delete(p) if n > 0 => {
                b.remove(p % n);
            }
            Edit::Truncate(p) => b.truncate(p % (n + 1)),
            _ => {}
        }
    }
    b
}

/// Random bytes, or a valid input from `valid` with 1 to 4 edits.
fn bytes_or_mutated(valid: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        3 => (proptest::sample::select(valid), proptest::collection::vec(edit(), 1..5))
            .prop_map(|(v, e)| mutate(v, &e)),
    ]
}

fn entry(index: u64, term: u64, i: usize) -> Entry {
    let payload = match i % 3 {
        0 => EntryPayload::Noop,
        1 => EntryPayload::Command {
            command: Command::set(format!("k{i}\u{1}\"é"), "v\n".repeat(i)),
        },
        _ => EntryPayload::Command {
            command: Command::delete(format!("k{i}")),
        },
    };
    Entry {
        index,
        term,
        payload,
    }
}

/// Numbers near the edges (0, 1, u64::MAX, ...) or anywhere.
fn edgy() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..8,
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => Just(i64::MAX as u64 + 1),
        1 => any::<u64>(),
    ]
}

/// Well-formed messages with arbitrary numbers: the decoders accept them, so they reach Raft.
fn structured_append() -> impl Strategy<Value = Vec<u8>> {
    (
        edgy(),
        edgy(),
        edgy(),
        edgy(),
        proptest::collection::vec((edgy(), edgy(), 0usize..3), 0..4),
    )
        .prop_map(|(term, prev, prev_term, commit, es)| {
            serde_json::to_vec(&AppendRequest {
                term,
                leader_id: "n2".into(),
                leader_url: "http://127.0.0.1:9".into(),
                prev_log_index: prev,
                prev_log_term: prev_term,
                entries: es.into_iter().map(|(i, t, k)| entry(i, t, k)).collect(),
                leader_commit: commit,
                seq: 1,
            })
            .unwrap()
        })
}

fn structured_vote() -> impl Strategy<Value = Vec<u8>> {
    (edgy(), edgy(), edgy(), any::<bool>()).prop_map(|(term, li, lt, pre)| {
        serde_json::to_vec(&VoteRequest {
            term,
            candidate_id: "n2".into(),
            last_log_index: li,
            last_log_term: lt,
            pre_vote: pre,
            transfer: false,
        })
        .unwrap()
    })
}

/// A snapshot chunk's query with arbitrary numbers, as raw bytes `as_query` keeps as they are.
fn structured_snapshot_query() -> impl Strategy<Value = Vec<u8>> {
    (edgy(), edgy(), edgy(), edgy(), any::<bool>()).prop_map(|(term, index, lt, off, done)| {
        format!(
            "term={term}&leaderId=n2&leaderUrl=http%3A%2F%2F127.0.0.1%3A9&index={index}\
             &lastTerm={lt}&offset={off}&done={done}&seq=1"
        )
        .into_bytes()
    })
}

fn valid_votes() -> Vec<Vec<u8>> {
    (0..4)
        .map(|i| {
            serde_json::to_vec(&VoteRequest {
                term: 2 + i,
                candidate_id: format!("n{i}"),
                last_log_index: i,
                last_log_term: 1,
                pre_vote: i % 2 == 0,
                transfer: false,
            })
            .unwrap()
        })
        .collect()
}

fn valid_appends() -> Vec<Vec<u8>> {
    (0..4)
        .map(|i| {
            serde_json::to_vec(&AppendRequest {
                term: 2 + i,
                leader_id: "n2".into(),
                leader_url: "http://127.0.0.1:9".into(),
                prev_log_index: 0,
                prev_log_term: 0,
                entries: (1..=i).map(|x| entry(x, 2 + i, x as usize)).collect(),
                leader_commit: i,
                seq: i,
            })
            .unwrap()
        })
        .collect()
}

fn valid_snapshot_queries() -> Vec<Vec<u8>> {
    (0..3u64)
        .map(|i| {
            let r = SnapshotRequest {
                term: 2 + i,
                leader_id: "n2".into(),
                leader_url: "http://127.0.0.1:9".into(),
                index: 5,
                last_term: 1,
                offset: i * 10,
                done: i == 2,
                seq: i,
                data: Vec::new(),
            };
            serde_urlencoded_query(&r).into_bytes()
        })
        .collect()
}

/// The query string the transport sends (awc's `.query`, i.e. `serde_urlencoded`).
fn serde_urlencoded_query(r: &SnapshotRequest) -> String {
    let req = awc::Client::new()
        .get("http://x/")
        .query(r)
        .expect("encodes");
    req.get_uri().query().unwrap_or_default().to_owned()
}

/// A query string made of `raw` as URI-safe text: bytes outside the safe set are
/// percent-encoded (and some `%` are left dangling on purpose).
fn as_query(raw: &[u8]) -> String {
    let mut q = String::new();
    for &b in raw {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'&' | b'=' | b'-' | b'.' | b'_' | b'~' => {
                q.push(b as char)
            }
            b'%' => q.push('%'),
            _ => q.push_str(&format!("%{b:02X}")),
        }
    }
    q
}

/// A decoded peer message encodes to JSON that decodes to the same message.
fn round_trips<T>(bytes: &[u8]) -> Result<(), String>
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(m) = serde_json::from_slice::<T>(bytes) {
        let again = serde_json::to_vec(&m).map_err(|e| e.to_string())?;
        let back: T = serde_json::from_slice(&again).map_err(|e| e.to_string())?;
        if back != m {
            return Err(format!("{m:?} came back as {back:?}"));
        }
    }
    Ok(())
}

type Answer = (u16, Vec<u8>);

async fn answer<S, B>(app: &S, req: at::TestRequest) -> Answer
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let (status, _, body) = crate::helpers::call_app(app, req).await;
    (status, body.to_vec())
}

/// Not a 5xx (a 503 "overloaded" or "no leader" is an honest answer, a 500 is not), and every
/// non-2xx in the error shape.
fn well_formed((status, body): &Answer) -> Result<(), String> {
    if *status >= 500 && *status != 503 {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(body)
        ));
    }
    if !(200..300).contains(status) {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            format!(
                "status {status}, not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )
        })?;
        let shaped = v["ok"] == false
            && v["message"].as_str().is_some_and(|m| !m.is_empty())
            && v.as_object().is_some_and(|o| o.len() == 2);
        if !shaped {
            return Err(format!("status {status}, not the error shape: {v}"));
        }
    }
    Ok(())
}

#[actix_web::test]
async fn peer_rpcs() {
    let app = at::init_service(api::app(state_with(Limits::default()))).await;
    let mut f = Fuzz::new("peer_rpcs");
    let chunk = || proptest::collection::vec(any::<u8>(), 0..64);
    let target = prop_oneof![
        (Just(0u8), bytes_or_mutated(valid_votes()), Just(Vec::new())),
        (Just(0u8), structured_vote(), Just(Vec::new())),
        (
            Just(1u8),
            bytes_or_mutated(valid_appends()),
            Just(Vec::new())
        ),
        (Just(1u8), structured_append(), Just(Vec::new())),
        (
            Just(2u8),
            bytes_or_mutated(valid_snapshot_queries()),
            chunk()
        ),
        (Just(2u8), structured_snapshot_query(), chunk()),
    ];
    let mut done = 0;
    while let Some((route, bytes, chunk)) = f.next(done, &target) {
        done += 1;
        let req = match route {
            0 | 1 => {
                let path = if route == 0 {
                    "/raft/vote"
                } else {
                    "/raft/append"
                };
                let trip = if route == 0 {
                    round_trips::<VoteRequest>(&bytes)
                } else {
                    round_trips::<AppendRequest>(&bytes)
                };
                if let Err(e) = trip {
                    f.fail(&String::from_utf8_lossy(&bytes), e);
                }
                at::TestRequest::post()
                    .uri(path)
                    .insert_header((header::CONTENT_TYPE, "application/json"))
                    .set_payload(bytes.clone())
            }
            _ => at::TestRequest::post()
                .uri(&format!("/raft/snapshot?{}", as_query(&bytes)))
                .set_payload(chunk.clone()),
        }
        .insert_header((CLUSTER_HEADER, "standalone"))
        // Without a cluster secret the Raft routes answer loopback sources only.
        .peer_addr("127.0.0.1:40000".parse().unwrap());
        let got = answer(&app, req).await;
        if let Err(e) = well_formed(&got) {
            f.fail(&(route, String::from_utf8_lossy(&bytes), &chunk), e);
        }
        let decodes = match route {
            0 => serde_json::from_slice::<VoteRequest>(&bytes).is_ok(),
            1 => serde_json::from_slice::<AppendRequest>(&bytes).is_ok(),
            _ => kvstore::api::peer::decode_snapshot_query(&as_query(&bytes)).is_ok(),
        };
        if !decodes && !(400..500).contains(&got.0) {
            f.fail(
                &(route, String::from_utf8_lossy(&bytes)),
                format!("garbage answered {}", got.0),
            );
        }
    }
    f.report(done);
}

fn written_records() -> Vec<Record> {
    let mut out = vec![Record::HardState(HardState {
        term: 3,
        voted_for: Some("n1".into()),
    })];
    out.extend((1..=12).map(|i| Record::Entry(entry(i, 3, i as usize))));
    out
}

#[test]
fn wal_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let (mut wal, _) = Wal::open(&wal_dir, 1 << 20, 0).unwrap();
    let records = written_records();
    wal.append(&records).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let segment = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wal"))
        .expect("a segment");
    let mut valid = std::fs::read(&segment).unwrap();
    // The segment is preallocated (1 MiB, zeros after the records): mutate the records and a
    // little of the reserved space after them, not mostly zeros.
    let zeros = valid.iter().rev().take_while(|b| **b == 0).count();
    valid.truncate(valid.len() - zeros + 600);
    let entries: Vec<Entry> = records
        .iter()
        .filter_map(|r| match r {
            Record::Entry(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    let mut f = Fuzz::new("wal_segments");
    let target = (
        proptest::collection::vec(edit(), 1..5),
        proptest::bool::weighted(0.1),
    );
    let mut done = 0;
    while let Some((edits, random)) = f.next(done, &target) {
        done += 1;
        let bytes = if random {
            let mut b = valid[..8].to_vec(); // keep the magic, so the records are read
            b.extend(mutate(valid[8..].to_vec(), &edits).iter().rev());
            b
        } else {
            mutate(valid.clone(), &edits)
        };
        std::fs::write(&segment, &bytes).unwrap();
        if let Ok(scan) = kvstore::storage::wal::scan(&wal_dir, 0) {
            let got = &scan.recovered.entries;
            if got.len() > entries.len() || got[..] != entries[..got.len()] {
                f.fail(
                    &edits,
                    format!(
                        "scan returned {} entries that are not a prefix of what was written",
                        got.len()
                    ),
                );
            }
        }
    }
    f.report(done);
}

#[test]
fn snapshot_files() {
    let pairs: Vec<(String, String)> = (0..20)
        .map(|i| (format!("key-{i}-\u{1F680}"), "v".repeat(i)))
        .collect();
    let meta = SnapshotMeta { index: 9, term: 2 };
    let conf = kvstore::raft::Configuration::with_learners(
        vec![kvstore::raft::Member::new("n1", "http://127.0.0.1:1")],
        vec![kvstore::raft::Member::new("n2", "http://127.0.0.1:2")],
    )
    .expect("a configuration");
    let valid = snapshot::encode_pairs(
        meta,
        Some(&conf),
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let mut f = Fuzz::new("snapshot_files");
    let target = bytes_or_mutated(vec![valid.clone()]);
    let mut done = 0;
    while let Some(bytes) = f.next(done, &target) {
        done += 1;
        if let Ok(s) = snapshot::decode(&bytes) {
            if bytes != valid
                || s.meta != meta
                || s.pairs != pairs
                || s.configuration.as_ref() != Some(&conf)
            {
                f.fail(&bytes, "a changed file decoded".into());
            }
        }
    }
    f.report(done);
}

#[actix_web::test]
async fn client_api() {
    let app = at::init_service(api::app(state_with(Limits {
        max_key_bytes: 64,
        max_value_bytes: 256,
        max_body_bytes: 1024,
    })))
    .await;
    let mut f = Fuzz::new("client_api");
    let valid_bodies: Vec<Vec<u8>> = [
        r#"{"key":"a","value":"b"}"#,
        r#"{"key":"k\u0001","value":"\ud83d\ude80","extra":[1,{"x":null}]}"#,
        r#"{"value":"","key":"é"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let valid_queries: Vec<Vec<u8>> = ["key=a", "key=a&consistency=stale", "key=%F0%9F%9A%80"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let target = prop_oneof![
        (Just(0u8), bytes_or_mutated(valid_bodies)),
        (Just(1u8), bytes_or_mutated(valid_queries.clone())),
        (Just(2u8), bytes_or_mutated(valid_queries)),
    ];
    let mut done = 0;
    while let Some((route, bytes)) = f.next(done, &target) {
        done += 1;
        let req = match route {
            0 => at::TestRequest::put()
                .uri("/set")
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(bytes.clone()),
            1 => at::TestRequest::get().uri(&format!("/get?{}", as_query(&bytes))),
            _ => at::TestRequest::delete().uri(&format!("/delete?{}", as_query(&bytes))),
        };
        let got = answer(&app, req).await;
        if let Err(e) = well_formed(&got) {
            f.fail(&(route, String::from_utf8_lossy(&bytes)), e);
        }
    }
    f.report(done);
}
