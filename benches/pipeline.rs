//! read → classify → extract, in process (Criterion). The corpus comes
//! from `cargo run --release --example gen_corpus` (benches/measure runs
//! it first); its folder is `BENCH_CORPUS` or target/bench-corpus.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use helpdesk::decide::Decider;
use helpdesk::desk::config::Config;
use helpdesk::mail;

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
    let default =
        Config::load(&corpus().join("default/config.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let large = Config::load(&corpus().join("large/config.yaml")).unwrap_or_else(|e| panic!("{e}"));

    let mut group = c.benchmark_group("decide");
    for (label, config) in [("default folder", &default), ("1000-type folder", &large)] {
        let keywords = config.desk.keywords().unwrap_or_else(|e| panic!("{e}"));
        let decider = Decider::new(config, &keywords);
        group.bench_function(format!("typical mail, {label}"), |b| {
            b.iter(|| {
                let mail = mail::read(black_box(&typical), "From");
                black_box(decider.decide(&mail).ok());
            });
        });
        group.bench_function(format!("load keywords.txt, {label}"), |b| {
            b.iter(|| black_box(config.desk.keywords().ok()));
        });
    }
    group.sample_size(10);
    let keywords = default.desk.keywords().unwrap_or_else(|e| panic!("{e}"));
    let decider = Decider::new(&default, &keywords);
    group.bench_function("25 MB mail, default folder", |b| {
        b.iter(|| {
            let mail = mail::read(black_box(&big), "From");
            black_box(decider.decide(&mail).ok());
        });
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
