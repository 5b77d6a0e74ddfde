//! Persistent maps against `std::collections::HashMap`, at 100k and 1M keys: point reads, writes
//! on a map that shares its nodes with a clone (as after a snapshot), iteration (snapshot
//! encoding) and building from pairs (restart). The evaluation behind the store's choice of
//! `imbl::HashMap` (see `src/store/state.rs`); figures in BENCHMARKS.md.
//!
//! Run: `cargo bench --bench maps` (about 3 minutes).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use std::time::Duration;

fn k(i: u64) -> String {
    format!("key-{i:08}")
}

fn maps(c: &mut Criterion) {
    for n in [100_000u64, 1_000_000] {
        let mut g = c.benchmark_group(format!("maps{n}"));
        g.measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(300))
            .sample_size(20);
        let v = "v".repeat(100);
        let mut std_map = std::collections::HashMap::new();
        let mut ord: imbl::OrdMap<Arc<str>, Arc<str>> = imbl::OrdMap::new();
        let mut ih: imbl::HashMap<Arc<str>, Arc<str>> = imbl::HashMap::new();
        for i in 0..n {
            std_map.insert(k(i), v.clone());
            ord.insert(k(i).into(), v.as_str().into());
            ih.insert(k(i).into(), v.as_str().into());
        }
        macro_rules! get {
            ($name:expr, $m:expr) => {
                g.bench_function($name, |b| {
                    let mut i = 0u64;
                    b.iter(|| {
                        i = (i + 7919) % n;
                        black_box($m.get(k(i).as_str()).map(|s| s.len()));
                    })
                });
            };
        }
        get!("get/std_hash", std_map);
        get!("get/imbl_ord_arc", ord);
        get!("get/imbl_hash_arc", ih);
        g.bench_function("set/std_hash", |b| {
            let mut m = std_map.clone();
            let mut i = 0u64;
            b.iter(|| {
                i = (i + 7919) % n;
                m.insert(k(i), "w".repeat(100));
            })
        });
        g.bench_function("set/imbl_ord_arc", |b| {
            let mut m = ord.clone();
            let mut i = 0u64;
            b.iter(|| {
                i = (i + 7919) % n;
                m.insert(k(i).into(), "w".repeat(100).into());
            })
        });
        g.bench_function("set/imbl_ord_arc_unshared", |b| {
            let mut m = ord.clone();
            for i in 0..n {
                m.insert(k(i).into(), "w".repeat(100).into());
            }
            let mut i = 0u64;
            b.iter(|| {
                i = (i + 7919) % n;
                m.insert(k(i).into(), "w".repeat(100).into());
            })
        });
        g.bench_function("set/imbl_hash_arc", |b| {
            let mut m = ih.clone();
            let mut i = 0u64;
            b.iter(|| {
                i = (i + 7919) % n;
                m.insert(k(i).into(), "w".repeat(100).into());
            })
        });
        g.finish();
        let t = std::time::Instant::now();
        let cnt: usize = ord.iter().map(|(a, b)| a.len() + b.len()).sum();
        eprintln!("{n} imbl_ord_arc iterate {:?} {cnt}", t.elapsed());
        let t = std::time::Instant::now();
        let cnt: usize = ih.iter().map(|(a, b)| a.len() + b.len()).sum();
        eprintln!("{n} imbl_hash_arc iterate {:?} {cnt}", t.elapsed());
        let pairs: Vec<(String, String)> = (0..n).map(|i| (k(i), v.clone())).collect();
        let t = std::time::Instant::now();
        let m: imbl::OrdMap<Arc<str>, Arc<str>> = pairs
            .clone()
            .into_iter()
            .map(|(a, b)| (Arc::<str>::from(a), Arc::<str>::from(b)))
            .collect();
        eprintln!("{n} imbl_ord_arc build {:?} {}", t.elapsed(), m.len());
        let t = std::time::Instant::now();
        let m: std::collections::HashMap<String, String> = pairs.into_iter().collect();
        eprintln!("{n} std build {:?} {}", t.elapsed(), m.len());
    }
}
/// The store's own state (issue #15: revisions in each entry, an ordered key set beside the hash
/// map) against the old shape (`imbl::HashMap<Arc<str>, Arc<str>>` alone): point reads,
/// overwrites (the ordered set untouched) and create+delete (the set touched), on a state
/// shared with a clone (as after a snapshot). The ordered set must cost point operations
/// under 10%.
fn state(c: &mut Criterion) {
    use kvstore::store::{Command, KvState};
    for n in [100_000u64, 1_000_000] {
        let mut g = c.benchmark_group(format!("state{n}"));
        g.measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(300))
            .sample_size(20);
        let v = "v".repeat(100);
        let pairs: Vec<(String, String)> = (0..n).map(|i| (k(i), v.clone())).collect();
        let st = KvState::from_pairs(1, pairs);
        let old: imbl::HashMap<Arc<str>, Arc<str>> = (0..n)
            .map(|i| (Arc::<str>::from(k(i)), Arc::<str>::from(v.as_str())))
            .collect();
        g.bench_function("get/old_shape", |b| {
            let mut i = 0u64;
            b.iter(|| {
                i = (i + 7919) % n;
                black_box(old.get(k(i).as_str()).map(|s| s.len()));
            })
        });
        g.bench_function("get/kvstate", |b| {
            let mut i = 0u64;
            b.iter(|| {
                i = (i + 7919) % n;
                black_box(st.get(k(i).as_str()).map(str::len));
            })
        });
        g.bench_function("overwrite/old_shape", |b| {
            let mut m = old.clone();
            let mut i = 0u64;
            b.iter(|| {
                i = (i + 7919) % n;
                m.insert(k(i).into(), "w".repeat(100).into());
            })
        });
        g.bench_function("overwrite/kvstate", |b| {
            let mut s = st.clone();
            let mut i = 0u64;
            let mut index = s.last_applied();
            b.iter(|| {
                i = (i + 7919) % n;
                index += 1;
                black_box(s.apply(index, Command::set(k(i), "w".repeat(100))).unwrap());
            })
        });
        g.bench_function("create_delete/old_shape", |b| {
            let mut m = old.clone();
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                let key: Arc<str> = format!("new-{i}").into();
                m.insert(key.clone(), "w".repeat(100).into());
                m.remove(&key);
            })
        });
        g.bench_function("create_delete/kvstate", |b| {
            let mut s = st.clone();
            let mut i = 0u64;
            let mut index = s.last_applied();
            b.iter(|| {
                i += 1;
                let key = format!("new-{i}");
                s.apply(index + 1, Command::set(key.clone(), "w".repeat(100)))
                    .unwrap();
                s.apply(index + 2, Command::delete(key)).unwrap();
                index += 2;
            })
        });
        g.finish();
    }
}

criterion_group!(benches, maps, state);
criterion_main!(benches);
