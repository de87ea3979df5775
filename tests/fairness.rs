//! Issue 14: deliveries waiting for a playbook slot are served first come,
//! first served, `helpdesk log` shows them waiting and their place in
//! line, and a waiter killed while queued blocks no one. Nothing here
//! depends on how fast the machine is: each step waits until the state it
//! needs is seen (the time limits only turn a hang into a failure).

use std::fs;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{Helpdesk, OPEN_TRUST, exec, mail, wait_or};

const LIMIT: Duration = Duration::from_secs(120);

/// One slot, and a playbook command that writes its request's Message-ID
/// to `order` when it starts and then holds the slot while `hold` exists.
fn one_slot_desk() -> Helpdesk {
    let desk = Helpdesk::from_defaults();
    let dir = desk.path().display().to_string();
    let script = format!(
        "#!/bin/sh\nfor a; do case $a in @*) vars=${{a#@}};; esac; done\n\
         sed -n 's/^\"message_id\": \"\\(.*\\)\"$/\\1/p' \"$vars\" >> {dir}/order\n\
         while [ -e {dir}/hold ]; do sleep 0.05; done\n"
    );
    let desk = desk.file("playbook.sh", &script).file("hold", "");
    let command = desk.path().join("playbook.sh");
    let mut mode = fs::metadata(&command).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
    fs::set_permissions(&command, mode).unwrap();
    desk.config(&format!(
        "helpdesk_dir: .\nansible: {{command: {}, timeout: 5m}}\nmax_parallel_runs: 1\n{OPEN_TRUST}",
        command.display()
    ))
}

/// The Message-IDs whose playbook started, in the order they started.
fn started(desk: &Helpdesk) -> Vec<String> {
    fs::read_to_string(desk.path().join("order"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A storage request with its Message-ID.
fn request() -> (Vec<u8>, String) {
    let raw = mail("alice@example.com", "quota", "more for me by 1 gb");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let id = text
        .split("Message-ID: <")
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .unwrap()
        .to_owned();
    (raw, id)
}

fn start_run(desk: &Helpdesk, message: &[u8]) -> Child {
    let mut child = desk
        .command(&["run"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    child
}

/// What `helpdesk log` (text) says in the outcome column of the row of
/// `message_id`, and the row's claimer.
fn shown(desk: &Helpdesk, message_id: &str) -> Option<(String, String)> {
    let row = desk
        .log_rows()
        .into_iter()
        .find(|r| r["message_id"] == message_id)?;
    let id = row["id"].as_i64()?.to_string();
    let table = exec(desk.command(&["log"]), b"").stdout;
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))?;
    // id, received, sender, type, then the outcome column (15 wide).
    let outcome = line.get(6 + 2 + 24 + 2 + 28 + 2 + 16 + 2..)?.get(..15)?;
    let claimer = row["claimed_by"].as_str().unwrap_or_default().to_owned();
    Some((outcome.trim().to_owned(), claimer))
}

fn wait_shown(desk: &Helpdesk, message_id: &str, want: &str) -> String {
    let mut claimer = String::new();
    wait_or(
        &format!("{message_id} shown as {want:?}"),
        LIMIT,
        &mut || match shown(desk, message_id) {
            Some((outcome, by)) if outcome == want => {
                claimer = by;
                true
            }
            _ => false,
        },
        &|| exec(desk.command(&["log"]), b"").stdout,
    );
    claimer
}

/// The process that waits for the slot: its journal row's claimer.
fn kill_claimer(claimer: &str) {
    let pid = claimer.split(':').next().unwrap();
    let status = Command::new("kill").args(["-KILL", pid]).status().unwrap();
    assert!(status.success(), "kill -KILL {pid}");
}

#[test]
fn issue_14_waiters_start_in_arrival_order_and_a_killed_waiter_blocks_no_one() {
    let desk = one_slot_desk();
    let (first, first_id) = request();
    let mut children = vec![start_run(&desk, &first)];
    wait_or(
        "the first playbook to start",
        LIMIT,
        &mut || started(&desk) == [first_id.clone()],
        &|| exec(desk.command(&["log"]), b"").stdout,
    );
    let mut ids = Vec::new();
    let mut claimers = Vec::new();
    for n in 1..=4 {
        let (raw, id) = request();
        children.push(start_run(&desk, &raw));
        claimers.push(wait_shown(&desk, &id, &format!("waiting {n}/{n}")));
        ids.push(id);
    }
    // The second in line dies while queued; the ones behind move up.
    kill_claimer(&claimers[1]);
    wait_shown(&desk, &ids[3], "waiting 3/3");
    wait_shown(&desk, &ids[2], "waiting 2/3");
    // Its ticket is removed by the one behind it, who found it unlocked.
    wait_or(
        "the killed waiter's ticket to go",
        LIMIT,
        &mut || tickets(&desk) == 3,
        &|| format!("{} tickets", tickets(&desk)),
    );
    assert_eq!(
        started(&desk),
        std::slice::from_ref(&first_id),
        "one slot, held"
    );
    fs::remove_file(desk.path().join("hold")).unwrap();
    let killed = children.remove(2);
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(killed.wait_with_output().unwrap());
    // The killed one's message is the spool's: a detached `retry` may run
    // it meanwhile, after the others.
    let order = started(&desk);
    let expected = [first_id, ids[0].clone(), ids[2].clone(), ids[3].clone()];
    assert_eq!(order.get(..4), Some(&expected[..]), "arrival order");
    assert!(order[4..].iter().all(|id| *id == ids[1]), "{order:?}");
}

/// How many tickets are in the queue folder, of waiters alive or dead.
fn tickets(desk: &Helpdesk) -> usize {
    fs::read_dir(desk.path().join("state/slots/queue")).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count()
    })
}
