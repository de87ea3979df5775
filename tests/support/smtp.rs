//! A real SMTP server on loopback (aiosmtpd, from the test venv), and a
//! test certificate authority for STARTTLS.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use super::ansible_playbook;

/// One message the server accepted: its envelope and its bytes.
#[derive(Debug)]
pub(crate) struct Received {
    pub envelope: Value,
    pub raw: String,
}

impl Received {
    /// The first value of a header (unfolded).
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or_default();
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    /// The decoded text body.
    pub(crate) fn body(&self) -> String {
        let message = mail_parser::MessageParser::default()
            .parse(self.raw.as_bytes())
            .unwrap_or_else(|| panic!("unparsable reply: {}", self.raw));
        message
            .body_text(0)
            .map(|b| b.into_owned())
            .unwrap_or_default()
    }

    /// Fails unless the decoded text body says `text`, with line breaks
    /// and runs of spaces read as one space (the template wraps its lines).
    pub(crate) fn assert_body_says(&self, text: &str) {
        let body = self.body().split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(body.contains(text), "{body}");
    }
}

#[derive(Debug)]
pub(crate) struct SmtpServer {
    child: Child,
    dir: TempDir,
    pub port: u16,
}

impl SmtpServer {
    pub(crate) fn plain() -> Self {
        Self::start(&[])
    }

    /// STARTTLS required, with a certificate from `ca`, and AUTH required.
    pub(crate) fn starttls(ca: &TestCa, user: &str, password: &str) -> Self {
        let cert = ca.server_cert.display().to_string();
        let key = ca.server_key.display().to_string();
        Self::start(&[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--auth",
            &format!("{user}:{password}"),
        ])
    }

    fn start(args: &[&str]) -> Self {
        let python = ansible_playbook().with_file_name("python");
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(&python)
            .arg(super::repo().join("tests/smtp_sink.py"))
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the SMTP server with {}: {e}",
                    python.display()
                )
            });
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the SMTP server did not start (is aiosmtpd in .venv? run scripts/test): {line:?}"));
        Self { child, dir, port }
    }

    /// Everything received so far, in order.
    pub(crate) fn received(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|json| Received {
                envelope: serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap(),
                raw: String::from_utf8_lossy(&std::fs::read(json.with_extension("eml")).unwrap())
                    .into_owned(),
            })
            .collect()
    }

    /// The one message received; fails when there is not exactly one.
    pub(crate) fn only(&self) -> Received {
        let mut all = self.received();
        assert_eq!(
            all.len(),
            1,
            "expected exactly one reply, got {}",
            all.len()
        );
        all.remove(0)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate authority made for one test, and a server certificate it
/// signed for 127.0.0.1.
#[derive(Debug)]
pub(crate) struct TestCa {
    _dir: TempDir,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCa {
    pub(crate) fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "helpdesk test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let server = server_params.signed_by(&server_key, &issuer).unwrap();
        let write = |name: &str, text: String| -> PathBuf {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Self {
            ca_cert: write("ca.pem", ca.pem()),
            server_cert: write("server.pem", server.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
            _dir: dir,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.ca_cert
    }
}
