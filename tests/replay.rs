//! Issue 7: `helpdesk replay` over an mbox and a Maildir with a known mix,
//! `--diff` between two folders, and the progress bar (on a real terminal
//! in tmux, never in a pipe).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Helpdesk, exec, fixture, fresh, wait_or};

/// The mix: 3 storage requests, 2 new users, 1 help, 2 unclassified,
/// 1 reply lacking the username, 1 automatic reply.
fn mix() -> Vec<Vec<u8>> {
    let auto = b"From: alice@example.com\r\nAuto-Submitted: auto-replied\r\nSubject: Re: quota\r\nMessage-ID: <auto-1@example.com>\r\n\r\nI am out of the office.\r\n".to_vec();
    vec![
        fixture("storage_self.eml"),
        fixture("storage_for_user.eml"),
        fixture("storage_windows1252.eml"),
        fixture("new_user.eml"),
        fixture("new_user_html_only.eml"),
        fixture("help_storage.eml"),
        fixture("renewal.eml"),
        fresh(&fixture("renewal.eml")),
        fixture("reply_quoted.eml"),
        auto,
    ]
}

const EXPECTED: &[(&str, usize)] = &[
    ("help", 1),
    ("ignored: automatic mail", 1),
    ("missing information", 1),
    ("runs manage_users", 2),
    ("runs storage", 3),
    ("unclassified", 2),
];

fn counts(stdout: &str) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for line in stdout.lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        if value.get("changed").is_none() {
            *counts
                .entry(value["verdict"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
    }
    counts.into_iter().collect()
}

fn replay(desk: &Helpdesk, args: &[&str], path: &Path) -> crate::support::Output {
    let mut command = desk.command(&["replay"]);
    command.args(args).arg(path);
    exec(command, b"")
}

#[test]
fn replay_an_mbox_and_a_maildir_with_a_known_mix() {
    let desk = Helpdesk::from_defaults();
    let mbox = desk.path().join("mail.mbox");
    let mut text = Vec::new();
    for message in mix() {
        text.extend_from_slice(b"From sender@example.com Sun Nov 22 09:00:00 2026\n");
        text.extend(
            String::from_utf8_lossy(&message)
                .replace("\r\n", "\n")
                .replace("\nFrom ", "\n>From ")
                .into_bytes(),
        );
        text.extend_from_slice(b"\n");
    }
    fs::write(&mbox, text).unwrap();
    let maildir = desk.path().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for (n, message) in mix().into_iter().enumerate() {
        let folder = if n % 2 == 0 { "new" } else { "cur" };
        fs::write(maildir.join(folder).join(format!("{n}.host:2,S")), message).unwrap();
    }
    // Not messages of the Maildir: one still being delivered (tmp/) and a
    // dot file.
    fs::write(maildir.join("tmp/99.host"), fixture("storage_self.eml")).unwrap();
    fs::write(maildir.join("cur/.leftover"), fixture("storage_self.eml")).unwrap();
    let expected: Vec<(String, usize)> = EXPECTED
        .iter()
        .map(|(v, n)| ((*v).to_owned(), *n))
        .collect();
    for source in [&mbox, &maildir] {
        let out = replay(&desk, &["--jsonl"], source);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(out.stdout.lines().count(), 10, "{}", out.stdout);
        assert_eq!(counts(&out.stdout), expected, "{}", source.display());
        // The summary table goes to stderr with --jsonl, to stdout without.
        assert!(out.stderr.contains("      10  in all"), "{}", out.stderr);
        assert!(
            out.stderr.contains("       3  runs storage"),
            "{}",
            out.stderr
        );
        let out = replay(&desk, &[], source);
        assert!(
            out.stdout.contains("       2  unclassified"),
            "{}",
            out.stdout
        );
    }
    // Nothing ran, nothing was journaled.
    assert!(!desk.path().join("state/journal.sqlite").exists());
}

#[test]
fn replay_diff_lists_the_messages_a_phrasebook_edit_changes() {
    let desk = Helpdesk::from_defaults();
    let folder = desk.path().join("mails");
    fs::create_dir_all(&folder).unwrap();
    for (n, message) in mix().into_iter().enumerate() {
        fs::write(folder.join(format!("{n:02}.eml")), message).unwrap();
    }
    // The edit: "quota" no longer selects storage, and "new" no longer
    // selects manage_users.
    let other = Helpdesk::from_defaults();
    let keywords = fs::read_to_string(other.path().join("keywords.txt")).unwrap();
    let edited = keywords
        .replace("storage space quota", "storage space")
        .replace("\nnew 'new user'", "\n'new user'");
    assert_ne!(edited, keywords);
    let other = other.file("keywords.txt", &edited);
    let out = replay(
        &desk,
        &["--diff", &other.config_path().display().to_string()],
        &folder,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("message(s) decided differently with"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("06.eml: unclassified -> runs manage_users")
            || out.stdout.contains("02.eml: runs storage -> unclassified"),
        "{}",
        out.stdout
    );
    let out = replay(
        &desk,
        &[
            "--jsonl",
            "--diff",
            &other.config_path().display().to_string(),
        ],
        &folder,
    );
    let changed: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|v| v.get("changed").cloned())
        .collect();
    // storage_windows1252 has Subject "quota": storage -> unclassified.
    assert!(
        changed
            .iter()
            .any(|c| c["source"].as_str().unwrap().ends_with("02.eml")
                && c["before"] == "runs storage"
                && c["after"] == "unclassified"),
        "{changed:?}"
    );
    // renewal's body says "new user", but only the subject counts: no change there.
    assert!(
        !changed
            .iter()
            .any(|c| c["source"].as_str().unwrap().ends_with("06.eml")),
        "{changed:?}"
    );
}

#[test]
fn the_progress_bar_shows_on_a_terminal_and_never_in_a_pipe() {
    let desk = Helpdesk::from_defaults();
    let folder = desk.path().join("many");
    fs::create_dir_all(&folder).unwrap();
    let sample = fixture("new_user_multipart_attachment.eml");
    for n in 0..20_000 {
        fs::write(folder.join(format!("{n:05}.eml")), &sample).unwrap();
    }
    // Piped: no bar, no carriage returns, no escape codes on stderr.
    let out = replay(&desk, &[], &folder);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        !out.stderr.contains("messages,")
            && !out.stderr.contains('\r')
            && !out.stderr.contains('\x1b'),
        "{:?}",
        out.stderr
    );
    assert!(
        out.stdout.contains("   20000  runs manage_users"),
        "{}",
        out.stdout
    );

    // On a real terminal: tmux, with everything the pane shows recorded
    // (pipe-pane) from before replay starts, so the bar is seen however
    // briefly it stood there. replay waits for the go-ahead until the
    // recording runs.
    let session = format!("helpdesk-replay-{}", std::process::id());
    let recording = desk.path().join("terminal.log");
    let command = format!(
        "tmux wait-for {session}-go; {} --config {} replay {}",
        env!("CARGO_BIN_EXE_helpdesk"),
        desk.config_path().display(),
        folder.display()
    );
    let tmux = |args: &[&str]| {
        let status = Command::new("tmux")
            .args(args)
            .status()
            .expect("tmux is not installed: run scripts/test");
        assert!(status.success(), "tmux {args:?}: {status}");
    };
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "20",
        &command,
    ]);
    let _session = KillOnDrop(session.clone());
    tmux(&["set-option", "-t", &session, "remain-on-exit", "on"]);
    tmux(&[
        "pipe-pane",
        "-o",
        "-t",
        &session,
        &format!("cat >> '{}'", recording.display()),
    ]);
    tmux(&["wait-for", "-S", &format!("{session}-go")]);
    let seen = || String::from_utf8_lossy(&fs::read(&recording).unwrap_or_default()).into_owned();
    // The summary's last line comes after the bar is cleared.
    wait_or(
        "replay to finish on the terminal",
        Duration::from_secs(60),
        &mut || seen().contains("in all"),
        &seen,
    );
    assert!(
        seen().contains("/20000 messages,"),
        "no progress bar on the terminal:\n{}",
        seen()
    );
}

/// Ends a tmux session however the test ends.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}
