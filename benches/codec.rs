//! Criterion benches of the peer codec and of one `SET` on the leader.
//!
//! - `peer_codec/*`: encode and decode an AppendEntries of 64 entries (16-byte keys, 100-byte
//!   values) in JSON and binary.
//! - `set_path/*`: what the leader does with one value between the request and the map:
//!   command → log entry → the copy handed to the WAL writer → WAL record → one AppendEntries
//!   encoding per follower (two) → the copy handed to apply. `shared` is this code (the value
//!   an `Arc<str>`, peers in binary); `copied_json` redoes the value copies the code made before
//!   (a deep copy per clone of the entry) with JSON to the peers.
//!
//! Before the timings it prints heap allocations and bytes per `SET` path of each variant
//! (a counting allocator), which are exact and do not depend on a quiet machine.
//!
//! Run: `cargo bench --bench codec`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kvstore::codec::peer::{decode, encode, Format, Kind};
use kvstore::codec::wal::{encode_record, Record};
use kvstore::raft::log::{Entry, EntryPayload};
use kvstore::raft::rpc::AppendRequest;
use kvstore::raft::Message;
use kvstore::store::Command;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn entry(i: u64, value: &str) -> Entry {
    Entry {
        index: i,
        term: 1,
        payload: EntryPayload::Command {
            command: Command::set(format!("key-{i:012}"), value),
        },
    }
}

fn batch(n: u64) -> Message {
    let value = "v".repeat(100);
    Message::AppendRequest(AppendRequest {
        term: 1,
        leader_id: "node-1".into(),
        leader_url: "http://127.0.0.1:8001".into(),
        prev_log_index: 0,
        prev_log_term: 0,
        entries: (1..=n).map(|i| entry(i, &value)).collect(),
        leader_commit: 0,
        seq: 1,
    })
}

fn peer_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("peer_codec");
    g.throughput(Throughput::Elements(64));
    let msg = batch(64);
    for format in [Format::Json, Format::Binary] {
        let bytes = encode(&msg, format).unwrap();
        println!(
            "AppendEntries of 64 entries, {format:?}: {} bytes",
            bytes.len()
        );
        g.bench_function(format!("encode_append_64_{format:?}"), |b| {
            b.iter(|| black_box(encode(black_box(&msg), format).unwrap()))
        });
        g.bench_function(format!("decode_append_64_{format:?}"), |b| {
            b.iter(|| black_box(decode(black_box(&bytes), format, Kind::AppendRequest).unwrap()))
        });
    }
    g.finish();
}

/// A deep copy of an entry (the value copied too), as cloning an entry did before.
fn deep_clone(e: &Entry) -> Entry {
    let mut e = e.clone();
    if let EntryPayload::Command {
        command: Command::Set { value, .. },
    } = &mut e.payload
    {
        *value = Arc::from(String::from(&**value));
    }
    e
}

/// One `SET` of `value` through the leader (see the module header); returns what was made so
/// nothing is optimized away.
fn set_path(value: &str, shared: bool, wal: &mut Vec<u8>) -> usize {
    let (format, clone): (Format, fn(&Entry) -> Entry) = if shared {
        (Format::Binary, Entry::clone)
    } else {
        (Format::Json, deep_clone)
    };
    // The request body's string, then the command (before: a String moved in; now: decoded
    // straight into the Arc).
    let value: Arc<str> = if shared {
        Arc::from(value)
    } else {
        Arc::from(String::from(value))
    };
    let log_entry = Entry {
        index: 7,
        term: 1,
        payload: EntryPayload::Command {
            command: Command::set("key-000000000007", value),
        },
    };
    // To the WAL writer.
    wal.clear();
    encode_record(&Record::Entry(clone(&log_entry)), wal);
    // To two followers.
    let mut sent = 0;
    for _ in 0..2 {
        let msg = Message::AppendRequest(AppendRequest {
            term: 1,
            leader_id: "node-1".into(),
            leader_url: "http://127.0.0.1:8001".into(),
            entries: vec![clone(&log_entry)],
            seq: 1,
            ..AppendRequest::default()
        });
        sent += encode(&msg, format).unwrap().len();
    }
    // To apply (the map then holds the value's Arc).
    let applied = clone(&log_entry);
    sent + wal.len() + black_box(applied).index as usize
}

fn set_path_bench(c: &mut Criterion) {
    let value = "x".repeat(1024);
    let mut wal = Vec::with_capacity(4096);
    for shared in [false, true] {
        let name = if shared { "shared" } else { "copied_json" };
        set_path(&value, shared, &mut wal);
        let (a0, b0) = (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        let rounds = 1000;
        for _ in 0..rounds {
            black_box(set_path(&value, shared, &mut wal));
        }
        let (a1, b1) = (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        println!(
            "SET path of a 1 KiB value, {name}: {} allocations, {} bytes allocated per write",
            (a1 - a0) / rounds,
            (b1 - b0) / rounds
        );
    }
    let mut g = c.benchmark_group("set_path");
    g.throughput(Throughput::Elements(1));
    for shared in [false, true] {
        let name = if shared { "shared" } else { "copied_json" };
        g.bench_function(format!("1KiB_value_{name}"), |b| {
            b.iter(|| black_box(set_path(black_box(&value), shared, &mut wal)))
        });
    }
    g.finish();
}

criterion_group!(benches, peer_codec, set_path_bench);
criterion_main!(benches);
