//! Criterion benches of the store: `KvState` operations (pure) and a `StoreActor` round trip
//! (one message from another thread's view: send, handle, reply).
//!
//! Run: `cargo bench --bench store`. Figures go to BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kvstore::store::actor::{ApplyEntries, Get, StoreActor};
use kvstore::store::{Command, KvState};

fn filled(n: usize) -> KvState {
    let mut s = KvState::new();
    for i in 0..n {
        s.apply(
            i as u64 + 1,
            Command::set(format!("key-{i:08}"), "v".repeat(100)),
        )
        .unwrap();
    }
    s
}

fn kv_state(c: &mut Criterion) {
    let mut g = c.benchmark_group("kv_state");
    g.throughput(Throughput::Elements(1));
    let state = filled(100_000);
    g.bench_function("get_hit_100k_keys", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 7919) % 100_000;
            black_box(state.get(&format!("key-{i:08}")));
        })
    });
    g.bench_function("set_overwrite_100k_keys", |b| {
        let mut s = state.clone();
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 7919) % 100_000;
            let idx = s.last_applied() + 1;
            s.apply(idx, Command::set(format!("key-{i:08}"), "w".repeat(100)))
                .unwrap();
        })
    });
    g.bench_function("set_then_delete_fresh_key", |b| {
        b.iter_batched_ref(
            || filled(1_000),
            |s| {
                let idx = s.last_applied() + 1;
                s.apply(idx, Command::set("fresh", "v")).unwrap();
                s.apply(idx + 1, Command::delete("fresh")).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn store_actor(c: &mut Criterion) {
    use actix::Actor;
    use kvstore::store::actor::Committed;
    let mut g = c.benchmark_group("store_actor");
    g.throughput(Throughput::Elements(1));
    let sys = actix::System::new();
    let addr = sys.block_on(async { StoreActor::new().start() });
    let mut index = 0u64;
    let mut set = move || {
        index += 1;
        ApplyEntries(vec![Committed {
            index,
            term: 1,
            command: Some(Command::set("k", "v".repeat(100))),
        }])
    };
    sys.block_on(addr.send(set())).unwrap().unwrap();
    g.bench_function("get_round_trip", |b| {
        b.iter(|| {
            sys.block_on(async { black_box(addr.send(Get { key: "k".into() }).await.unwrap()) })
        })
    });
    g.bench_function("apply_one_set_round_trip", |b| {
        b.iter(|| sys.block_on(addr.send(set())).unwrap().unwrap())
    });
    g.bench_function("get_64_in_flight", |b| {
        b.iter(|| {
            sys.block_on(async {
                let reqs: Vec<_> = (0..64)
                    .map(|_| addr.send(Get { key: "k".into() }))
                    .collect();
                for r in reqs {
                    black_box(r.await.unwrap());
                }
            })
        })
    });
    g.finish();
}

criterion_group!(benches, kv_state, store_actor);
criterion_main!(benches);
