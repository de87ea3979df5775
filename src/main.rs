//! The `helpdesk` binary. Everything it does is in the library, behind
//! `helpdesk::main` (src/commands/mod.rs); see docs/ARCHITECTURE.md.

fn main() -> std::process::ExitCode {
    helpdesk::main()
}
