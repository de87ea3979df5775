//! Issue 11: the `Authentication-Results` headers of the Postfix layout
//! (`authentication.position: above`) written by the real milters, not by
//! hand.
//!
//! What is real, all from Debian (scripts/test installs them), wired by
//! tests/milters/mx-instance under one temporary folder:
//! - **dnsmasq** on `127.53.x.y:53` (an address of its own, so parallel
//!   runs on one machine do not meet) serves the DKIM public key that
//!   `opendkim-genkey` made (`<selector>._domainkey.example.com`) and
//!   `_dmarc.example.com` `v=DMARC1; p=reject`.
//! - **OpenDKIM** (verifying, `AuthservID mx.example.com`, `RemoveARFrom
//!   mx.example.com` with `RemoveARAll`) and **OpenDMARC** (`AuthservID
//!   mx.example.com`) run as milters, each in a private mount namespace
//!   whose `/etc/resolv.conf` names dnsmasq (OpenDMARC's resolver reads
//!   nothing else; OpenDKIM also gets `Nameservers`).
//! - **Postfix** (tests/mta/postfix-instance, `myhostname mx.example.com`)
//!   is the MX: its SMTP listener passes mail through both milters; a second
//!   listener has no milters (a skipped milter, or local submission: the MX
//!   writes no `Authentication-Results`); a third is the sender's outgoing
//!   server, `out.example.com`, whose own OpenDKIM signs for example.com
//!   before Postfix relays the mail to the MX listener; a fourth passes mail
//!   through an OpenDKIM that strips nothing, then the same OpenDMARC.
//! - Mail is sent over SMTP by swaks; the MX's alias pipe writes each
//!   delivered message to a file, and the test feeds those bytes, as
//!   delivered, to the built `helpdesk` (`parse --format json`, and `run`
//!   with the real `ansible-playbook` and a real SMTP sink for replies).
//!
//! Observed with these versions (OpenDKIM 2.11, OpenDMARC 1.4.2): OpenDMARC
//! takes SPF and DKIM results from any incoming `Authentication-Results`
//! with its own authserv-id, so without `RemoveARFrom`/`RemoveARAll` in
//! OpenDKIM (the milter in front of it) a sender's forged `spf=pass` turns
//! into a real `dmarc=pass` written by the MX above its `Received` header,
//! which no header position can tell apart. With them, everything claiming
//! mx.example.com that came with the mail is gone before OpenDMARC looks
//! (the forgery test checks this). Neither milter knows `RemoveOldHeaders`.
//! OpenDMARC's own SPF check (`SPFSelfValidate`) said `spf=pass` for mail
//! from 127.0.0.1 against a record that does not list it, so it is off
//! here: DMARC rests on the DKIM result alone.
//!
//! One MX is shared by the module's tests (it takes a few seconds to
//! start); it stops when the test binary exits, however it exits: the script
//! waits on a pipe that only the test process holds.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use crate::support::smtp::SmtpServer;
use crate::support::{Helpdesk, need, repo, swaks, unique_id, wait_for, wait_or};

const SELECTOR: &str = "helpdesk2026";

/// The trust settings of the operator's guide's Postfix + OpenDKIM/OpenDMARC layout.
const TRUST: &str = "authentication: {authserv_id: [mx.example.com], received_by: [mx.example.com], position: above, require: dmarc}\naccess:\n  - {requests: ['*'], senders: ['*@example.com']}\n";

/// Also forged SPF and DKIM passes: OpenDMARC takes those results from
/// Authentication-Results headers with its own authserv-id.
fn input_forgeries() -> String {
    format!(
        "{FORGED}\nAuthentication-Results: mx.example.com; spf=pass smtp.mailfrom=example.com\nAuthentication-Results: mx.example.com; dkim=pass header.d=example.com header.s={SELECTOR}\n"
    )
}

const FORGED: &str = "Authentication-Results: mx.example.com; dmarc=pass header.from=example.com";

/// `N` distinct free ports (all held until all are known).
fn free_ports<const N: usize>() -> [u16; N] {
    let sockets = [(); N].map(|()| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    sockets.map(|s| s.local_addr().unwrap().port())
}

/// The running MX and its DNS server.
struct Mx {
    dir: PathBuf,
    /// Through OpenDKIM and OpenDMARC.
    port: u16,
    /// No milters.
    bare_port: u16,
    /// The sender's signing server, relaying to `port`.
    submit_port: u16,
    /// Through an OpenDKIM that strips nothing, then OpenDMARC.
    lax_port: u16,
    /// Holds the script's stdin: it stops everything when this closes.
    _script: Mutex<Child>,
}

fn mx() -> &'static Mx {
    static MX: OnceLock<Mx> = OnceLock::new();
    MX.get_or_init(Mx::start)
}

impl Mx {
    fn start() -> Self {
        for tool in [
            "postfix",
            "swaks",
            "opendkim",
            "opendkim-genkey",
            "opendmarc",
            "dnsmasq",
        ] {
            need(tool);
        }
        // The script removes the folder when it stops.
        let dir = tempfile::tempdir().unwrap().keep();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let pid = std::process::id();
        let dns = format!("127.53.{}.{}", (pid >> 8) & 0xff, (pid & 0xff).max(1));
        let [port, bare_port, submit_port, lax_port] = free_ports();
        let stderr = fs::File::create(dir.join("mx-instance.err")).unwrap();
        let mut child = Command::new(repo().join("tests/milters/mx-instance"))
            .arg(&dir)
            .args([port, bare_port, submit_port, lax_port].map(|p| p.to_string()))
            .arg(&dns)
            .arg(SELECTOR)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the MX did not start: {}",
            fs::read_to_string(dir.join("mx-instance.err")).unwrap_or_default()
        );
        let mx = Self {
            dir,
            port,
            bare_port,
            submit_port,
            lax_port,
            _script: Mutex::new(child),
        };
        for p in [port, bare_port, submit_port, lax_port] {
            wait_for("postfix to listen", Duration::from_secs(20), || {
                std::net::TcpStream::connect(("127.0.0.1", p)).is_ok()
            });
        }
        mx
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("maillog")).unwrap_or_default()
    }

    /// Sends `message` with swaks to `port` and returns it as the MX
    /// delivered it.
    fn deliver(&self, port: u16, message_id: &str, message: &str) -> String {
        let file = self.dir.join(format!("outgoing-{message_id}.eml"));
        fs::write(&file, message).unwrap();
        swaks(&[
            "--server",
            &format!("127.0.0.1:{port}"),
            "--from",
            "alice@example.com",
            "--to",
            "helpdesk@helpdesk.test",
            "--data",
            &format!("@{}", file.display()),
        ]);
        let marker = format!("Message-ID: <{message_id}>");
        let mut found = None;
        wait_or(
            "the delivered message",
            Duration::from_secs(30),
            &mut || {
                found = delivered(&self.dir.join("delivered"), &marker);
                found.is_some()
            },
            &|| self.log(),
        );
        found.unwrap()
    }
}

/// The complete delivered message with `marker`, if it is there yet.
fn delivered(dir: &Path, marker: &str) -> Option<String> {
    fs::read_dir(dir).ok()?.find_map(|entry| {
        let text = fs::read_to_string(entry.ok()?.path()).ok()?;
        (text.contains(marker) && text.contains(BODY)).then_some(text)
    })
}

const BODY: &str = "Please give me more space, by 2 gb.";

/// A request from alice@example.com, with `extra` headers on top.
fn request(message_id: &str, extra: &str) -> String {
    format!(
        "{extra}From: Alice <alice@example.com>\nTo: helpdesk@helpdesk.test\nSubject: quota\nDate: Tue, 01 Dec 2026 09:00:00 +0000\nMessage-ID: <{message_id}>\n\n{BODY}\n"
    )
}

/// The header block of a delivered message, unfolded, one header a line.
fn headers(message: &str) -> Vec<String> {
    let head = message.split("\n\n").next().unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for line in head.lines() {
        match out.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => out.push(line.to_owned()),
        }
    }
    out
}

/// The Authentication-Results headers, top first, and where each sits
/// relative to the MX's `Received: ... by mx.example.com` header.
fn results(message: &str) -> (Vec<String>, Vec<String>) {
    let all = headers(message);
    let received = all
        .iter()
        .position(|h| h.starts_with("Received:") && h.contains("by mx.example.com"))
        .unwrap_or_else(|| panic!("no Received header from the MX:\n{message}"));
    let ar = |hs: &[String]| -> Vec<String> {
        hs.iter()
            .filter(|h| {
                h.to_ascii_lowercase()
                    .starts_with("authentication-results:")
            })
            .cloned()
            .collect()
    };
    (ar(&all[..received]), ar(&all[received..]))
}

/// `message` with `header` inserted just below its topmost Received
/// header, the MX's.
fn below_the_mx(message: &str, header: &str) -> String {
    let mut out = String::new();
    let mut state = 0; // 0: before it, 1: inside it, 2: inserted
    for line in message.split_inclusive('\n') {
        if state == 1 && !line.starts_with([' ', '\t']) {
            out.push_str(header);
            out.push('\n');
            state = 2;
        }
        if state == 0 && line.starts_with("Received:") {
            state = 1;
        }
        out.push_str(line);
    }
    assert_eq!(state, 2, "no Received header:\n{message}");
    out
}

/// A request from alice@example.com delivered by the MX through `port`
/// (with `extra` headers on top), its Authentication-Results above and
/// below the MX's Received header, and a helpdesk folder with the Postfix
/// layout's trust settings replying to a sink of its own.
struct Delivered {
    message: String,
    above: Vec<String>,
    below: Vec<String>,
    desk: Helpdesk,
    sink: SmtpServer,
}

fn delivered_request(port: fn(&Mx) -> u16, extra: impl FnOnce() -> String) -> Delivered {
    let mx = mx();
    let sink = SmtpServer::plain();
    let desk = Helpdesk::from_defaults()
        .with_echo_playbooks()
        .trusting(TRUST)
        .replying_to(&sink);
    let id = unique_id();
    let message = mx.deliver(port(mx), &id, &request(&id, &extra()));
    let (above, below) = results(&message);
    Delivered {
        message,
        above,
        below,
        desk,
        sink,
    }
}

/// Whether one of `headers` is the MX's `dmarc=<result>` for example.com.
fn has_dmarc(headers: &[String], result: &str) -> bool {
    let wanted = format!("mx.example.com; dmarc={result}");
    headers
        .iter()
        .any(|h| h.contains(&wanted) && h.contains("header.from=example.com"))
}

/// `parse`'s authentication verdict on `message` starts with `expected`.
fn assert_verdict(desk: &Helpdesk, message: &str, expected: &str) {
    let parsed: Value = desk.parse(message.as_bytes());
    let said = parsed["trust"]["authentication"]
        .as_str()
        .unwrap_or_else(|| panic!("parse has no trust.authentication: {parsed}"));
    assert!(said.starts_with(expected), "{said}");
}

/// `helpdesk run` on the delivered bytes: nothing runs and nothing is
/// answered. (`run` sends its reply before it exits: the journal says
/// none was, and none reached the sink.)
fn assert_refused_silently(desk: &Helpdesk, sink: &SmtpServer, message: &str) {
    let out = desk.run(message.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(desk.received().is_none(), "the playbook ran");
    let rows = desk.log_rows();
    assert!(
        rows[0]["reply"]
            .as_str()
            .is_some_and(|r| r.starts_with("none: ")),
        "{rows:?}"
    );
    assert!(sink.received().is_empty(), "a reply went out");
}

#[test]
fn a_mail_signed_by_example_com_passes_the_real_opendmarc_and_runs() {
    let d = delivered_request(|mx| mx.submit_port, String::new);
    assert!(
        has_dmarc(&d.above, "pass"),
        "OpenDMARC wrote no dmarc=pass:\n{}",
        d.message
    );
    assert!(
        d.above
            .iter()
            .any(|h| h.contains("dkim=pass") && h.contains("header.d=example.com")),
        "OpenDKIM wrote no dkim=pass:\n{}",
        d.message
    );
    assert!(d.below.is_empty(), "{:?}", d.below);
    assert!(
        d.message.contains(&format!("s={SELECTOR};")),
        "{}",
        d.message
    );

    assert_verdict(&d.desk, &d.message, "authenticated: ");
    let out = d.desk.run(d.message.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let received = d
        .desk
        .received()
        .unwrap_or_else(|| panic!("the playbook did not run: {}", out.stderr));
    assert_eq!(received["targets"], "alice");
    wait_for("the reply", Duration::from_secs(10), || {
        !d.sink.received().is_empty()
    });
    assert_eq!(
        d.sink.only().header("Subject").as_deref(),
        Some("Re: quota")
    );
}

#[test]
fn an_unsigned_mail_gets_dmarc_fail_from_the_real_opendmarc_and_no_reply() {
    let d = delivered_request(|mx| mx.port, String::new);
    assert!(
        has_dmarc(&d.above, "fail"),
        "OpenDMARC wrote no dmarc=fail:\n{}",
        d.message
    );
    assert!(
        !d.above.iter().any(|h| h.contains("=pass")),
        "{:?}",
        d.above
    );
    assert_verdict(&d.desk, &d.message, "not authenticated: ");
    assert_refused_silently(&d.desk, &d.sink, &d.message);
}

#[test]
fn issue_11_a_forged_dmarc_pass_sent_with_the_mail_loses_to_the_real_milters() {
    let d = delivered_request(|mx| mx.port, input_forgeries);
    assert!(
        has_dmarc(&d.above, "fail"),
        "OpenDMARC was fooled or wrote nothing:\n{}",
        d.message
    );
    // OpenDKIM's RemoveARFrom/RemoveARAll stripped what came with the mail.
    assert!(
        !d.message.contains(FORGED) && d.below.is_empty(),
        "the forged headers survived the MX:\n{}",
        d.message
    );
    assert_verdict(&d.desk, &d.message, "not authenticated: ");
    assert_refused_silently(&d.desk, &d.sink, &d.message);

    // The same delivered message with the forgery where a milter that
    // strips nothing would have left it, below the MX's Received header
    // (and the real dmarc=fail above it): still not authenticated.
    let kept = below_the_mx(&d.message, FORGED);
    assert_eq!(results(&kept).1, [FORGED], "{kept}");
    assert_verdict(&d.desk, &kept, "not authenticated: ");
}

#[test]
fn issue_11_a_forged_dmarc_pass_counts_for_nothing_when_the_mx_writes_none() {
    let d = delivered_request(|mx| mx.bare_port, || format!("{FORGED}\n"));
    assert!(
        d.above.is_empty(),
        "the MX wrote results: {:?}\n{}",
        d.above,
        d.message
    );
    assert_eq!(d.below, [FORGED], "{}", d.message);
    assert_verdict(&d.desk, &d.message, "not authenticated: ");
    assert_refused_silently(&d.desk, &d.sink, &d.message);
}

/// Why the operator's guide's OpenDKIM settings matter: with an OpenDKIM in front
/// that strips nothing, OpenDMARC believes the forged `spf=pass` and the MX
/// itself writes `dmarc=pass`, where a real one would be. No rule about
/// header positions can catch this; only the MX's configuration can.
#[test]
fn issue_11_without_remove_ar_the_real_opendmarc_turns_a_forged_spf_pass_into_dmarc_pass() {
    let d = delivered_request(|mx| mx.lax_port, input_forgeries);
    assert!(
        has_dmarc(&d.above, "pass"),
        "OpenDMARC was not fooled this time (then the operator's guide can say less):\n{}",
        d.message
    );
    assert!(
        d.below
            .iter()
            .any(|h| h.contains("spf=pass smtp.mailfrom=example.com")),
        "{}",
        d.message
    );
    assert_verdict(&d.desk, &d.message, "authenticated: ");
}
