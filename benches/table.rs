//! Which map holds the records: lookups per structure at 1k, 100k and 1M names, alone and
//! while a writer keeps changing the table.
//!
//! - `arcswap`: an immutable `HashMap` snapshot behind `arc_swap::ArcSwap` (what clusterdns uses);
//!   the writer builds a new snapshot and swaps it in.
//! - `arcswap_imbl`: a persistent (HAMT) map snapshot behind `ArcSwap`; the writer clones it in
//!   O(1), changes one name in O(log n) and swaps it in.
//! - `dashmap`: a sharded `RwLock` map; the writer inserts in place.
//! - `papaya`: a lock-free concurrent map; the writer inserts in place.
//!
//! `cargo bench --bench table`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use arc_swap::ArcSwap;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("svc-{i}.ns{}.svc.cluster.local.", i % 20))
        .collect()
}

/// Probes: every 7th key, so lookups jump around the table.
fn probes(keys: &[String]) -> Vec<String> {
    keys.iter().step_by(7).take(4096).cloned().collect()
}

fn lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    for &n in &[1_000usize, 100_000, 1_000_000] {
        let keys = keys(n);
        let probes = probes(&keys);
        let snapshot: HashMap<String, u32> = keys.iter().cloned().zip(0..).collect();
        let swap = ArcSwap::from_pointee(snapshot);
        let dash: dashmap::DashMap<String, u32> = keys.iter().cloned().zip(0..).collect();
        let papaya: papaya::HashMap<String, u32> = keys.iter().cloned().zip(0..).collect();
        group.bench_with_input(BenchmarkId::new("arcswap", n), &probes, |b, probes| {
            b.iter(|| {
                let mut sum = 0u32;
                for p in probes {
                    let snap = swap.load();
                    sum = sum.wrapping_add(*snap.get(p.as_str()).unwrap());
                }
                black_box(sum)
            })
        });
        let persistent = ArcSwap::from_pointee(
            keys.iter()
                .cloned()
                .zip(0..)
                .collect::<imbl::HashMap<String, u32>>(),
        );
        group.bench_with_input(BenchmarkId::new("arcswap_imbl", n), &probes, |b, probes| {
            b.iter(|| {
                let mut sum = 0u32;
                for p in probes {
                    let snap = persistent.load();
                    sum = sum.wrapping_add(*snap.get(p.as_str()).unwrap());
                }
                black_box(sum)
            })
        });
        group.bench_with_input(BenchmarkId::new("dashmap", n), &probes, |b, probes| {
            b.iter(|| {
                let mut sum = 0u32;
                for p in probes {
                    sum = sum.wrapping_add(*dash.get(p.as_str()).unwrap());
                }
                black_box(sum)
            })
        });
        group.bench_with_input(BenchmarkId::new("papaya", n), &probes, |b, probes| {
            b.iter(|| {
                let mut sum = 0u32;
                let map = papaya.pin();
                for p in probes {
                    sum = sum.wrapping_add(*map.get(p.as_str()).unwrap());
                }
                black_box(sum)
            })
        });
    }
    group.finish();
}

/// Lookups at 100k names while another thread changes the table as fast as it can: for
/// arc-swap a whole new 100k-name snapshot per change swapped in, for the others single
/// inserts in place.
fn under_churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup_under_churn");
    let n = 100_000;
    let keys = keys(n);
    let probes = probes(&keys);
    let stop = Arc::new(AtomicBool::new(false));

    let swap = Arc::new(ArcSwap::from_pointee(
        keys.iter()
            .cloned()
            .zip(0..)
            .collect::<HashMap<String, u32>>(),
    ));
    let writer = {
        let (swap, stop, keys) = (Arc::clone(&swap), Arc::clone(&stop), keys.clone());
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut next = HashMap::clone(&swap.load());
                next.insert(keys[i % keys.len()].clone(), i as u32);
                swap.store(Arc::new(next));
                i += 1;
            }
        })
    };
    group.bench_function("arcswap", |b| {
        b.iter(|| {
            let mut sum = 0u32;
            for p in &probes {
                sum = sum.wrapping_add(*swap.load().get(p.as_str()).unwrap());
            }
            black_box(sum)
        })
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    stop.store(false, Ordering::Relaxed);

    let persistent = Arc::new(ArcSwap::from_pointee(
        keys.iter()
            .cloned()
            .zip(0..)
            .collect::<imbl::HashMap<String, u32>>(),
    ));
    let writer = {
        let (persistent, stop, keys) = (Arc::clone(&persistent), Arc::clone(&stop), keys.clone());
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut next = imbl::HashMap::clone(&persistent.load());
                next.insert(keys[i % keys.len()].clone(), i as u32);
                persistent.store(Arc::new(next));
                i += 1;
            }
        })
    };
    group.bench_function("arcswap_imbl", |b| {
        b.iter(|| {
            let mut sum = 0u32;
            for p in &probes {
                sum = sum.wrapping_add(*persistent.load().get(p.as_str()).unwrap());
            }
            black_box(sum)
        })
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    stop.store(false, Ordering::Relaxed);

    let dash = Arc::new(
        keys.iter()
            .cloned()
            .zip(0..)
            .collect::<dashmap::DashMap<String, u32>>(),
    );
    let writer = {
        let (dash, stop, keys) = (Arc::clone(&dash), Arc::clone(&stop), keys.clone());
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                dash.insert(keys[i % keys.len()].clone(), i as u32);
                i += 1;
            }
        })
    };
    group.bench_function("dashmap", |b| {
        b.iter(|| {
            let mut sum = 0u32;
            for p in &probes {
                sum = sum.wrapping_add(*dash.get(p.as_str()).unwrap());
            }
            black_box(sum)
        })
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    stop.store(false, Ordering::Relaxed);

    let papaya = Arc::new(
        keys.iter()
            .cloned()
            .zip(0..)
            .collect::<papaya::HashMap<String, u32>>(),
    );
    let writer = {
        let (papaya, stop, keys) = (Arc::clone(&papaya), Arc::clone(&stop), keys.clone());
        thread::spawn(move || {
            let mut i = 0;
            let map = papaya.pin_owned();
            while !stop.load(Ordering::Relaxed) {
                map.insert(keys[i % keys.len()].clone(), i as u32);
                i += 1;
            }
        })
    };
    group.bench_function("papaya", |b| {
        b.iter(|| {
            let mut sum = 0u32;
            let map = papaya.pin();
            for p in &probes {
                sum = sum.wrapping_add(*map.get(p.as_str()).unwrap());
            }
            black_box(sum)
        })
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    group.finish();
}

criterion_group!(benches, lookups, under_churn);
criterion_main!(benches);
