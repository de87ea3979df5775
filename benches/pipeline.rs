//! read → classify → extract, in process (Criterion). The corpus comes
//! from `cargo run --release --example gen_corpus` (benches/measure runs
//! it first); its folder is `BENCH_CORPUS` or target/bench-corpus.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use helpdesk::fuzzing::Bench;

fn corpus() -> PathBuf {
    std::env::var_os("BENCH_CORPUS")
        .map_or_else(|| PathBuf::from("target/bench-corpus"), PathBuf::from)
}

fn read(name: &str) -> Vec<u8> {
    let path = corpus().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run benches/measure (or the gen_corpus example) first",
            path.display()
        )
    })
}

fn pipeline(c: &mut Criterion) {
    let typical = read("typical.eml");
    let big = read("big.eml");
    let load = |name: &str| {
        Bench::load(&corpus().join(name).join("config.yaml")).unwrap_or_else(|e| panic!("{e}"))
    };
    let default = load("default");
    let large = load("large");

    let mut group = c.benchmark_group("decide");
    for (label, bench) in [("default folder", &default), ("1000-type folder", &large)] {
        bench.with_decider(|decide| {
            group.bench_function(format!("typical mail, {label}"), |b| {
                b.iter(|| black_box(decide(black_box(&typical))));
            });
        });
        group.bench_function(format!("load keywords.txt, {label}"), |b| {
            b.iter(|| black_box(bench.load_keywords()));
        });
    }
    group.sample_size(10);
    default.with_decider(|decide| {
        group.bench_function("25 MB mail, default folder", |b| {
            b.iter(|| black_box(decide(black_box(&big))));
        });
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
