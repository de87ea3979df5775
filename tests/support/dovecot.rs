//! A throw-away Dovecot (Debian's `dovecot-imapd`, 2.3) on loopback, one
//! per test or test module, for the `helpdesk fetch` tests.
//!
//! Each [`Dovecot`] has its own temporary folder holding everything the
//! server writes: its configuration, `base_dir` (sockets, `master.pid`),
//! `state_dir`, the log, the passwd-file and the user's Maildir. Nothing
//! reads or writes `/etc/dovecot`, and the system instance is never
//! started, so many instances run side by side.
//!
//! - **Listeners.** `imaps_url` is implicit TLS on 127.0.0.1.
//!   `starttls_url` is plain IMAP that needs STARTTLS before LOGIN
//!   (`ssl = required`). Dovecot counts a connection whose remote address
//!   equals its local one as secured and would allow LOGIN on it without
//!   TLS, and on 127.0.0.1 the two are always equal. So the STARTTLS
//!   listener is on 127.0.0.2, and a byte relay in this process listens on
//!   127.0.0.1 for it: Dovecot then sees 127.0.0.1 talking to 127.0.0.2 and
//!   says LOGINDISABLED until STARTTLS, as for a remote client.
//! - **TLS.** A test CA made with `rcgen` ([`super::smtp::TestCa`]) signs
//!   the server certificate for `localhost` and 127.0.0.1; `ca_file` is
//!   its PEM.
//! - **The mail user.** One passwd-file user, `helpdesk@example.test`,
//!   password in `{PLAIN}`. Dovecot will not access mail as uid 0 (nor any
//!   uid under `first_valid_uid`, 500 by default), and the tests run as
//!   root, so the user's mail is stored as `nobody` (65534:65534), which
//!   every Debian has: no account is created, `first_valid_uid` keeps its
//!   default, and only the home folder inside the instance's folder is
//!   chowned to it.
//! - **IDLE.** `mailbox_idle_check_interval` and
//!   `imap_idle_notify_interval` are 1 s, so mail appended by `doveadm`
//!   reaches an idling client within a second.
//! - **Lines.** `mail_save_crlf = yes`: mail is stored with CRLF, so what
//!   [`Dovecot::messages`] returns is byte for byte what an IMAP FETCH
//!   sends.
//!
//! `append`, `count`, `messages` and `flags` run `doveadm -c` against this
//! instance's configuration. doveadm asks the server's auth process for the
//! user, so they need the server running: after `stop`, `restart` first.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::need;
use super::smtp::TestCa;

const USER: &str = "helpdesk@example.test";
const PASSWORD: &str = "hunter2-for-tests";
/// `nobody:nogroup`: see the module docs for why mail is not stored as root.
const MAIL_UID: u32 = 65534;
const MAIL_GID: u32 = 65534;
/// Where the STARTTLS listener really is (see the module docs).
const BACKEND_IP: &str = "127.0.0.2";
const LIMIT: Duration = Duration::from_secs(10);

/// One running (or stopped) Dovecot. Drop stops it and removes its folder.
#[derive(Debug)]
pub(crate) struct Dovecot {
    dir: TempDir,
    ca: TestCa,
    /// A copy of the CA's PEM that any user can read (the tests may run
    /// helpdesk as nobody).
    ca_file: PathBuf,
    imaps_port: u16,
    /// The relay's port on 127.0.0.1, the one in `starttls_url`.
    starttls_port: u16,
    /// Dovecot's own STARTTLS listener, on [`BACKEND_IP`].
    backend_port: u16,
    child: Option<Child>,
    relay: Option<Relay>,
}

impl Dovecot {
    /// A fresh instance with its own folder, configuration and free ports,
    /// accepting connections on both listeners when this returns.
    pub(crate) fn start() -> Dovecot {
        need("dovecot");
        need("doveadm");
        let dir = tempfile::tempdir().unwrap();
        // The auth process (user dovecot) reads the passwd-file and the
        // mail processes (nobody) reach the Maildir through this folder.
        set_mode(dir.path(), 0o755);
        let ca = TestCa::new();
        let ca_file = dir.path().join("ca.pem");
        fs::copy(ca.path(), &ca_file).unwrap();
        set_mode(&ca_file, 0o644);
        let imaps = TcpListener::bind("127.0.0.1:0").unwrap();
        let backend = TcpListener::bind(format!("{BACKEND_IP}:0")).unwrap();
        let relay = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = |l: &TcpListener| l.local_addr().unwrap().port();
        let mut dovecot = Dovecot {
            imaps_port: port(&imaps),
            starttls_port: port(&relay),
            backend_port: port(&backend),
            dir,
            ca,
            ca_file,
            child: None,
            relay: None,
        };
        drop((imaps, backend));
        dovecot.write_files();
        dovecot.launch(relay);
        dovecot
    }

    /// `imaps://localhost:PORT/MAILBOX`: implicit TLS.
    pub(crate) fn imaps_url(&self, mailbox: &str) -> String {
        format!("imaps://localhost:{}/{mailbox}", self.imaps_port)
    }

    /// `imap://localhost:PORT/MAILBOX`: STARTTLS required before LOGIN.
    pub(crate) fn starttls_url(&self, mailbox: &str) -> String {
        format!("imap://localhost:{}/{mailbox}", self.starttls_port)
    }

    /// The PEM of the test CA that signed the server certificate.
    pub(crate) fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    pub(crate) fn user(&self) -> &str {
        USER
    }

    pub(crate) fn password(&self) -> &str {
        PASSWORD
    }

    /// Saves `raw` into `mailbox` (`doveadm save`), creating the mailbox
    /// when it is missing. A bare LF is stored (and so read back) as CRLF,
    /// as IMAP sends it.
    pub(crate) fn append(&self, mailbox: &str, raw: &[u8]) {
        self.create(mailbox);
        self.doveadm_ok(&["save", "-u", USER, "-m", mailbox], raw);
    }

    /// Appends `raws` in order, fast: they are written to a scratch Maildir
    /// whose file names sort in that order, then `doveadm import`ed in one
    /// call (3 to 6 s for 1,000 small mails). For a plain mailbox name (no
    /// hierarchy separator), as `mailbox` names the folder of the scratch
    /// Maildir.
    pub(crate) fn append_many(&self, mailbox: &str, raws: &[Vec<u8>]) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        self.create(mailbox);
        let source = self
            .dir
            .path()
            .join(format!("import-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        // With LAYOUT=fs the source's INBOX is its root and any other
        // mailbox the folder of that name.
        let folder = if mailbox.eq_ignore_ascii_case("INBOX") {
            source.clone()
        } else {
            source.join(mailbox)
        };
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(folder.join(sub)).unwrap();
        }
        for (i, raw) in raws.iter().enumerate() {
            // Dovecot gives new files their UIDs in the order of the time
            // stamp their names start with.
            let name = format!("{}.helpdesk{i}.test", 1_000_000_000 + i);
            fs::write(folder.join("new").join(name), raw).unwrap();
        }
        chown_tree(&source);
        let location = format!("maildir:{}:LAYOUT=fs:INDEX=MEMORY", source.display());
        let query = ["mailbox", mailbox, "all"];
        self.doveadm_ok(
            &[&["import", "-u", USER, &location, ""][..], &query].concat(),
            b"",
        );
        fs::remove_dir_all(&source).unwrap();
    }

    /// How many messages `mailbox` holds; 0 when it does not exist.
    pub(crate) fn count(&self, mailbox: &str) -> usize {
        let out = self.doveadm(
            &[
                "-f", "tab", "mailbox", "status", "-u", USER, "messages", mailbox,
            ],
            b"",
        );
        if out.status.code() == Some(DOES_NOT_EXIST) {
            return 0;
        }
        let text = self.checked(out, "mailbox status");
        // "mailbox\tmessages" and then "NAME\tN".
        let last = text.lines().last().unwrap_or_default();
        last.rsplit('\t')
            .next()
            .unwrap_or_default()
            .parse()
            .unwrap_or_else(|e| panic!("doveadm mailbox status said {text:?}: {e}"))
    }

    /// The raw bytes of every message in `mailbox`, in UID order, as IMAP
    /// sends them; empty when the mailbox does not exist.
    pub(crate) fn messages(&self, mailbox: &str) -> Vec<Vec<u8>> {
        let Some(out) = self.fetch(mailbox, "uid size.physical text") else {
            return Vec::new();
        };
        parse_texts(&out).unwrap_or_else(|| {
            panic!(
                "unexpected doveadm fetch output: {:?}",
                String::from_utf8_lossy(&out)
            )
        })
    }

    /// The flags of every message in `mailbox` in UID order, each as one
    /// space-separated string (`\Seen \Flagged`, or "" for none), without
    /// the per-session `\Recent`.
    pub(crate) fn flags(&self, mailbox: &str) -> Vec<String> {
        let Some(out) = self.fetch(mailbox, "uid flags") else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|line| line.strip_prefix("flags:"))
            .map(|flags| {
                flags
                    .split_whitespace()
                    .filter(|f| *f != "\\Recent")
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    /// Stops the server: when this returns the processes are gone, both
    /// ports refuse connections and every open connection is closed.
    pub(crate) fn stop(&mut self) {
        let closed = self.halt();
        assert!(
            closed,
            "Dovecot's ports are still open 10 s after it stopped:\n{}",
            self.log()
        );
    }

    /// Starts the stopped server again on the same ports, with the same
    /// mail.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let relay = TcpListener::bind(("127.0.0.1", self.starttls_port))
            .unwrap_or_else(|e| panic!("cannot listen on port {} again: {e}", self.starttls_port));
        self.launch(relay);
    }

    /// Dovecot's log (and what the master wrote to stderr), for assertion
    /// messages.
    pub(crate) fn log(&self) -> String {
        let read = |name| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("dovecot.log"), read("master.out"))
    }

    /// [`Self::stop`] without panicking (Drop runs it while a failed test
    /// unwinds): false when the ports have not closed in 10 s.
    fn halt(&mut self) -> bool {
        if let Some(relay) = self.relay.take() {
            relay.stop();
        }
        let Some(mut child) = self.child.take() else {
            return true;
        };
        terminate(&mut child);
        let deadline = Instant::now() + LIMIT;
        while self.dovecot_addrs().iter().any(accepts) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("dovecot.conf")
    }

    fn dovecot_addrs(&self) -> [SocketAddr; 2] {
        [
            SocketAddr::from(([127, 0, 0, 1], self.imaps_port)),
            format!("{BACKEND_IP}:{}", self.backend_port)
                .parse()
                .unwrap(),
        ]
    }

    /// Runs the master in the foreground and waits for both listeners.
    fn launch(&mut self, relay: TcpListener) {
        let out = fs::File::create(self.dir.path().join("master.out")).unwrap();
        // A process group of its own, so that stopping it takes its login
        // processes too (they would go on proxying open TLS connections),
        // as systemd stopping dovecot.service does.
        let mut child = Command::new(need("dovecot"))
            .process_group(0)
            .arg("-F")
            .arg("-c")
            .arg(self.conf())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dovecot: {e}"));
        self.relay = Some(Relay::start(relay, self.dovecot_addrs()[1]));
        let deadline = Instant::now() + LIMIT;
        while !self.dovecot_addrs().iter().all(accepts) {
            let exited = child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                terminate(&mut child);
                panic!("Dovecot did not come up ({exited:?}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// The configuration, the passwd-file and the user's home.
    fn write_files(&self) {
        let dir = self.dir.path();
        let home = dir.join("home");
        fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(MAIL_UID), Some(MAIL_GID)).unwrap();
        let users = dir.join("users");
        fs::write(
            &users,
            format!(
                "{USER}:{{PLAIN}}{PASSWORD}:{MAIL_UID}:{MAIL_GID}::{}::\n",
                home.display()
            ),
        )
        .unwrap();
        set_mode(&users, 0o644);
        fs::write(self.conf(), self.config(&users)).unwrap();
    }

    /// dovecot.conf: everything inside the instance's folder, both
    /// listeners on loopback only.
    fn config(&self, users: &Path) -> String {
        let dir = self.dir.path().display();
        let name = self.dir.path().file_name().unwrap().to_string_lossy();
        let (cert, key) = (self.ca.server_cert.display(), self.ca.server_key.display());
        let users = users.display();
        let (imaps, backend) = (self.imaps_port, self.backend_port);
        format!(
            r#"instance_name = helpdesk-test-{name}
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain login
auth_verbose = yes
mail_location = maildir:~/Maildir
mail_save_crlf = yes
mailbox_idle_check_interval = 1 secs
imap_idle_notify_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {users}
}}
service imap-login {{
  inet_listener imap {{
    address = {BACKEND_IP}
    port = {backend}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
"#
        )
    }

    /// `doveadm save` needs the mailbox; INBOX always exists.
    fn create(&self, mailbox: &str) {
        if mailbox.eq_ignore_ascii_case("INBOX") {
            return;
        }
        let out = self.doveadm(&["mailbox", "create", "-u", USER, mailbox], b"");
        if out.status.code() != Some(ALREADY_EXISTS) {
            self.checked(out, "mailbox create");
        }
    }

    /// `doveadm fetch FIELDS` of every message; `None` when the mailbox
    /// does not exist.
    fn fetch(&self, mailbox: &str, fields: &str) -> Option<Vec<u8>> {
        let out = self.doveadm(
            &[
                "-f", "pager", "fetch", "-u", USER, fields, "mailbox", mailbox, "all",
            ],
            b"",
        );
        if out.status.code() == Some(DOES_NOT_EXIST) {
            return None;
        }
        Some(self.checked(out, "fetch").into_bytes())
    }

    fn doveadm(&self, args: &[&str], stdin: &[u8]) -> std::process::Output {
        assert!(
            self.child.is_some(),
            "Dovecot is stopped, and doveadm needs its auth process: restart() first"
        );
        let mut child = Command::new(need("doveadm"))
            .arg("-c")
            .arg(self.conf())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run doveadm: {e}"));
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    fn doveadm_ok(&self, args: &[&str], stdin: &[u8]) {
        let out = self.doveadm(args, stdin);
        self.checked(out, &args.join(" "));
    }

    /// stdout of a doveadm run that succeeded; else fails with the log,
    /// where doveadm writes its errors.
    fn checked(&self, out: std::process::Output, what: &str) -> String {
        assert!(
            out.status.success(),
            "doveadm {what}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.halt();
    }
}

/// doveadm's exit statuses for a missing mailbox and for one that is there.
const DOES_NOT_EXIST: i32 = 68;
const ALREADY_EXISTS: i32 = 65;

/// SIGTERM, on which the master stops every process it started (imap,
/// imap-login, auth) before it exits; SIGKILL if it has not after 10 s.
fn terminate(child: &mut Child) {
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + LIMIT;
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // What is left of the instance (login processes serving connections).
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

fn accepts(addr: &SocketAddr) -> bool {
    TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Gives a scratch Maildir to the mail user, who reads it during import.
fn chown_tree(path: &Path) {
    std::os::unix::fs::chown(path, Some(MAIL_UID), Some(MAIL_GID)).unwrap();
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path());
        }
    }
}

/// Splits `doveadm -f pager fetch "uid size.physical text"` output into
/// the texts, by their sizes (a text may contain anything, even the form
/// feed that separates the records).
fn parse_texts(mut out: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut texts = Vec::new();
    while !out.is_empty() {
        out = out.strip_prefix(b"\x0c\n").unwrap_or(out);
        let (_uid, rest) = field_line(out, "uid: ")?;
        let (size, rest) = field_line(rest, "size.physical: ")?;
        let rest = rest.strip_prefix(b"text:\n")?;
        let size: usize = size.parse().ok()?;
        texts.push(rest.get(..size)?.to_vec());
        out = &rest[size..];
        out = out.strip_prefix(b"\n").unwrap_or(out);
    }
    Some(texts)
}

/// The value of a `name: value\n` line at the start of `out`, and the rest.
fn field_line<'a>(out: &'a [u8], name: &str) -> Option<(String, &'a [u8])> {
    let rest = out.strip_prefix(name.as_bytes())?;
    let end = rest.iter().position(|b| *b == b'\n')?;
    Some((
        String::from_utf8_lossy(&rest[..end]).into_owned(),
        &rest[end + 1..],
    ))
}

/// Relays 127.0.0.1:PORT to Dovecot's STARTTLS listener byte for byte.
#[derive(Debug)]
struct Relay {
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    thread: JoinHandle<()>,
}

impl Relay {
    fn start(listener: TcpListener, to: SocketAddr) -> Relay {
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (stopping, opened) = (stop.clone(), open.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => relay_one(client, to, &opened),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => return,
                }
            }
        });
        Relay { stop, open, thread }
    }

    /// Closes the listener and every relayed connection.
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        if let Ok(mut open) = self.open.lock() {
            for stream in open.drain(..) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

fn relay_one(client: TcpStream, to: SocketAddr, open: &Mutex<Vec<TcpStream>>) {
    let Ok(server) = TcpStream::connect(to) else {
        return; // the client sees the connection closed, as with no server
    };
    let _ = client.set_nonblocking(false);
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
        open.lock().unwrap().extend([c, s]);
    }
    std::thread::spawn(move || pipe(client, server));
    std::thread::spawn(move || pipe(server2, client2));
}

/// Copies `from` to `to` until either closes, then closes `to` for writing.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// The harness itself, checked with real clients: curl (IMAP over TLS and
/// STARTTLS) and a few lines of Python for IDLE.
#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::Dovecot;
    use crate::support::{mail, need};

    /// curl with the test CA and the user's login; stdout, or the exit
    /// status and stderr when it failed.
    fn curl(dovecot: &Dovecot, args: &[&str]) -> Result<String, String> {
        let out = Command::new(need("curl"))
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(dovecot.ca_file())
            .arg("--user")
            .arg(format!("{}:{}", dovecot.user(), dovecot.password()))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("{}: {stderr}", out.status))
        }
    }

    #[test]
    fn dovecot_starts_and_offers_idle_move_and_uidplus_over_tls() {
        let started = Instant::now();
        let dovecot = Dovecot::start();
        eprintln!("Dovecot::start took {:?}", started.elapsed());
        let url = dovecot.imaps_url("");
        let caps = curl(&dovecot, &["-X", "CAPABILITY", &url]).unwrap();
        for cap in ["IDLE", "MOVE", "UIDPLUS"] {
            assert!(caps.split_whitespace().any(|c| c == cap), "{caps}");
        }
    }

    #[test]
    fn dovecot_starttls_listener_refuses_login_before_starttls() {
        let dovecot = Dovecot::start();
        let url = dovecot.starttls_url("");
        let plain = curl(&dovecot, &["-v", &url]);
        let refused = plain.expect_err("LOGIN without STARTTLS was accepted");
        assert!(refused.contains("LOGINDISABLED"), "{refused}");
        // And a client that ignores LOGINDISABLED is refused too.
        let mut tcp =
            BufReader::new(TcpStream::connect(("127.0.0.1", dovecot.starttls_port)).unwrap());
        let mut line = String::new();
        tcp.read_line(&mut line).unwrap();
        let login = format!(
            "a LOGIN \"{}\" \"{}\"\r\n",
            dovecot.user(),
            dovecot.password()
        );
        tcp.get_mut().write_all(login.as_bytes()).unwrap();
        // "* BAD [ALERT] Plaintext authentication not allowed", then:
        let mut said = String::new();
        while !said.lines().any(|l| l.starts_with("a ")) {
            assert_ne!(tcp.read_line(&mut said).unwrap(), 0, "{said}");
        }
        assert!(said.contains("a NO [PRIVACYREQUIRED]"), "{said}");
        let listed = curl(&dovecot, &["--ssl-reqd", &url]).unwrap();
        assert!(listed.contains("INBOX"), "{listed}");
    }

    #[test]
    fn dovecot_refuses_a_wrong_password() {
        let dovecot = Dovecot::start();
        let out = Command::new(need("curl"))
            .args(["-sS", "--cacert"])
            .arg(dovecot.ca_file())
            .args(["--user", &format!("{}:wrong", dovecot.user())])
            .arg(dovecot.imaps_url(""))
            .output()
            .unwrap();
        // 67: CURLE_LOGIN_DENIED.
        assert_eq!(out.status.code(), Some(67), "{out:?}");
        assert!(
            dovecot.log().contains("Password mismatch"),
            "{}",
            dovecot.log()
        );
    }

    #[test]
    fn dovecot_append_shows_in_count_messages_flags_and_over_imap() {
        let dovecot = Dovecot::start();
        assert_eq!(dovecot.count("Helpdesk"), 0);
        assert!(dovecot.messages("Helpdesk").is_empty());
        let raw = mail("alice@example.com", "disk full", "please\nhelp");
        dovecot.append("Helpdesk", &raw);
        assert_eq!(dovecot.count("Helpdesk"), 1);
        assert_eq!(dovecot.messages("Helpdesk"), vec![raw.clone()]);
        assert_eq!(dovecot.flags("Helpdesk"), vec![String::new()]);
        // An IMAP client fetches the same bytes (and so marks it \Seen).
        let fetched = curl(
            &dovecot,
            &[&format!("{};UID=1", dovecot.imaps_url("Helpdesk"))],
        );
        assert_eq!(fetched.unwrap().as_bytes(), &raw[..]);
        assert_eq!(dovecot.flags("Helpdesk"), vec!["\\Seen".to_owned()]);
    }

    #[test]
    fn dovecot_restart_keeps_mail_and_ports() {
        let mut dovecot = Dovecot::start();
        let raw = mail("bob@example.com", "hello", "again");
        dovecot.append("INBOX", &raw);
        let (imaps, starttls) = (dovecot.imaps_url("INBOX"), dovecot.starttls_url("INBOX"));
        let open = TcpStream::connect(("127.0.0.1", dovecot.imaps_port)).unwrap();
        dovecot.stop();
        for port in [dovecot.imaps_port, dovecot.starttls_port] {
            assert!(
                TcpStream::connect(("127.0.0.1", port)).is_err(),
                "{port} still open"
            );
        }
        let mut byte = [0u8; 1];
        assert!(matches!(
            std::io::Read::read(&mut &open, &mut byte),
            Ok(0) | Err(_)
        ));
        dovecot.restart();
        assert_eq!(
            (dovecot.imaps_url("INBOX"), dovecot.starttls_url("INBOX")),
            (imaps, starttls)
        );
        assert_eq!(dovecot.messages("INBOX"), vec![raw]);
        let listed = curl(&dovecot, &["--ssl-reqd", &dovecot.starttls_url("")]).unwrap();
        assert!(listed.contains("INBOX"), "{listed}");
    }

    #[test]
    fn dovecot_append_many_keeps_order_and_is_fast() {
        let dovecot = Dovecot::start();
        let raws: Vec<Vec<u8>> = (0..1000)
            .map(|i| mail("carol@example.com", &format!("mail {i}"), "body"))
            .collect();
        let started = Instant::now();
        dovecot.append_many("Bulk", &raws);
        let took = started.elapsed();
        eprintln!("append_many(1000) took {took:?}");
        assert!(took < Duration::from_secs(30), "{took:?}");
        assert_eq!(dovecot.count("Bulk"), 1000);
        assert!(
            dovecot.messages("Bulk") == raws,
            "the mails differ or are out of order"
        );
        dovecot.append_many("INBOX", &raws[..2]);
        assert_eq!(dovecot.messages("INBOX"), raws[..2]);
    }

    /// Logs in over TLS, IDLEs on INBOX, prints IDLING, then the first
    /// EXISTS it is told about.
    const IDLER: &str = r#"
import socket, ssl, sys
ca, port, user, password = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("localhost", int(port))), server_hostname="localhost")
f = s.makefile("rwb")
def say(line):
    f.write(line.encode() + b"\r\n"); f.flush()
def until(text):
    while True:
        line = f.readline()
        if not line: sys.exit("connection closed")
        if text.encode() in line: return line.decode().strip()
until("* OK")
say('a LOGIN "%s" "%s"' % (user, password)); until("a OK")
say("b SELECT INBOX"); until("b OK")
say("c IDLE"); until("+ idling")
print("IDLING", flush=True)
s.settimeout(10)
print(until(" EXISTS"), flush=True)
say("DONE"); until("c OK")
"#;

    #[test]
    fn dovecot_tells_an_idling_client_of_new_mail_at_once() {
        let dovecot = Dovecot::start();
        let mut idler = Command::new(need("python3"))
            .args(["-c", IDLER])
            .arg(dovecot.ca_file())
            .arg(dovecot.imaps_port.to_string())
            .args([dovecot.user(), dovecot.password()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(idler.stdout.take().unwrap()).lines();
        assert_eq!(
            lines.next().unwrap().unwrap(),
            "IDLING",
            "{}",
            dovecot.log()
        );
        let started = Instant::now();
        dovecot.append("INBOX", &mail("dave@example.com", "new", "mail"));
        let told = lines.next().unwrap().unwrap();
        assert_eq!(told, "* 1 EXISTS");
        // Well under the 30 s Dovecot waits by default, with room for a
        // loaded machine.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(idler.wait().unwrap().success());
    }
}
