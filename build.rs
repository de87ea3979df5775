//! Link-time settings for the `helpdesk` binary.
//!
//! Every delivery starts a fresh process, so what the dynamic loader does
//! at start-up is paid once per mail. The binary is position-independent
//! (PIE, for address-space randomisation), which leaves about 31,000
//! relative relocations for the loader to read and apply: 740 KB of
//! relocation records, read at every start. Packed relative relocations
//! (DT_RELR, `-z pack-relative-relocs`) store the same in about 10 KB:
//! peak RSS of `helpdesk parse` drops by about 0.8 MiB (BENCHMARKS.md).
//! Linkers before binutils 2.38 ignore the option with a warning, and a
//! C library without DT_RELR support (glibc before 2.36) makes the linker
//! leave the relocations unpacked, so it is safe to ask for everywhere on
//! Linux with glibc.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
