//! `helpdesk setup`: from nothing to a working helpdesk folder.
//!
//! Answers come from the interactive wizard (dialoguer prompts on a
//! terminal), from flags (`--non-interactive`) or from a YAML file
//! (`--answers`), all into one [`Answers`]. Nothing is written until every
//! answer is in, so Ctrl-C at any prompt leaves nothing behind; a new
//! folder is assembled next to its final place and renamed into it. In an
//! existing folder, files the user changed are kept (or, when asked, saved
//! as `.bak` and replaced), and config.yaml is rewritten from the new
//! answers with the old one kept as config.yaml.bak.

use std::fs;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use dialoguer::theme::{ColorfulTheme, Theme};
use dialoguer::{Confirm, Input, Password, Select};
use serde::{Deserialize, Deserializer};

use crate::commands::account;
use crate::desk;
use crate::desk::config::{Config, Position, Require, Security};

/// `setup`'s flags: where the answers come from, the answers themselves
/// (see [`Answers`]), and what to do with
/// changed files.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SetupArgs {
    /// Take every answer from flags (or --answers); never prompt
    #[arg(long)]
    pub non_interactive: bool,
    /// Take the answers from a YAML file (keys as the flags, with _)
    #[arg(long, value_name = "FILE")]
    pub answers: Option<PathBuf>,
    #[command(flatten)]
    pub given: Answers,
    /// In an existing folder, save changed default files as .bak and replace them (default: keep them)
    #[arg(long)]
    pub replace_changed: bool,
}

/// Everything the wizard asks. The same answers come as flags or as a
/// YAML file whose keys are the fields (`senders`, `admins` and
/// `own_account_only` where the flags say `--sender`, `--admin` and
/// `--any-account`); the doc comments are the flags' help.
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub(crate) struct Answers {
    /// The helpdesk folder to create or update (the wizard's default: /etc/helpdesk as root, else ~/helpdesk)
    #[arg(long)]
    #[serde(deserialize_with = "given")]
    pub dir: Option<PathBuf>,
    /// The organisation's mail domain, e.g. example.com (stored lower-case; the wizard's default)
    #[arg(long)]
    #[serde(deserialize_with = "given")]
    pub domain: Option<String>,
    /// The helpdesk's address, the From of its replies (default: helpdesk@DOMAIN)
    #[arg(long)]
    pub address: Option<String>,
    /// Where mail comes in: mta (the MTA pipes it into `helpdesk run`; default), imap (a mailbox `helpdesk fetch` reads, with IDLE) or maildir (a Maildir on this host `helpdesk fetch` reads)
    #[arg(
        long,
        value_enum,
        value_name = "mta|imap|maildir",
        hide_possible_values = true
    )]
    pub intake: Option<IntakeChoice>,
    /// The mailbox to read, for --intake imap: imaps://HOST[:PORT]/MAILBOX, or imap:// for STARTTLS (default: imaps://mail.DOMAIN/INBOX)
    #[arg(long, value_name = "URL")]
    pub imap_url: Option<String>,
    /// The IMAP login, for --intake imap (default: the helpdesk address)
    #[arg(long, value_name = "USER")]
    pub imap_user: Option<String>,
    /// A file holding the IMAP password, for --intake imap (mode 600; default: imap.secret in the folder)
    #[arg(long, value_name = "FILE")]
    pub imap_password_file: Option<PathBuf>,
    /// The CA certificate (PEM) the IMAP server's certificate is checked against, for --intake imap with a private CA (default: the public web roots)
    #[arg(long, value_name = "FILE")]
    pub imap_ca_file: Option<PathBuf>,
    // Only from the prompt, like smtp_password: kept in imap.secret.
    #[arg(skip)]
    #[serde(skip)]
    pub imap_password: Option<String>,
    /// The Maildir to read, for --intake maildir (its new/ is read, handled mail moves to cur/)
    #[arg(long, value_name = "PATH")]
    pub maildir: Option<PathBuf>,
    /// How replies leave: an SMTP server (default), the local sendmail, or a folder of .eml files
    #[arg(long, value_enum, hide_possible_values = true)]
    pub transport: Option<TransportChoice>,
    /// The SMTP server: a host name or address, without :PORT (default: localhost)
    #[arg(long, value_name = "HOST")]
    pub smtp_host: Option<String>,
    /// The SMTP server's port (default: 587 for starttls, 465 for tls, 25 for none)
    #[arg(long, value_name = "PORT")]
    pub smtp_port: Option<u16>,
    /// The SMTP encryption: starttls (default), tls or none (a relay on loopback only)
    #[arg(long, value_enum, value_name = "MODE", hide_possible_values = true)]
    pub smtp_security: Option<Security>,
    /// Log in to the SMTP server as this user, with the password in --smtp-password-file (default: no login)
    #[arg(long, value_name = "USER")]
    pub smtp_user: Option<String>,
    /// A file holding the SMTP password, for --smtp-user (mode 600)
    #[arg(long, value_name = "FILE")]
    pub smtp_password_file: Option<PathBuf>,
    // Only from the prompt: stored in a 0600 secret file, never in
    // config.yaml, and never a flag (others can read a command line).
    #[arg(skip)]
    #[serde(skip)]
    pub smtp_password: Option<String>,
    /// The sendmail command, for --transport sendmail (default: /usr/sbin/sendmail)
    #[arg(long, value_name = "COMMAND")]
    pub sendmail: Option<String>,
    /// Who may send requests: an address, *@DOMAIN or * (repeat; default *@DOMAIN)
    #[arg(long = "sender", value_name = "PATTERN")]
    #[serde(default)]
    pub senders: Vec<String>,
    /// Let senders act on any account, not only their own
    #[arg(long)]
    #[serde(rename = "own_account_only", default, deserialize_with = "negated")]
    pub any_account: bool,
    /// Administrators, who may ask for anything about any account (repeat; default admin@DOMAIN)
    #[arg(long = "admin", value_name = "ADDRESS")]
    #[serde(default)]
    pub admins: Vec<String>,
    /// The authserv-id of your MX, whose Authentication-Results count (default: mx.DOMAIN)
    #[arg(long, value_name = "HOST")]
    pub authserv_id: Option<String>,
    /// What the MX's verdict must pass: dmarc (default), dkim, spf or none (a closed internal relay only)
    #[arg(long, value_enum, value_name = "METHOD", hide_possible_values = true)]
    pub require: Option<Require>,
    /// Where the MX writes Authentication-Results: above its Received header (Postfix with OpenDKIM/OpenDMARC, rspamd; default) or below it (Gmail)
    #[arg(
        long,
        value_enum,
        value_name = "above|below",
        hide_possible_values = true
    )]
    pub position: Option<Position>,
    /// Path of ansible-playbook (default: the one found on PATH)
    #[arg(long, value_name = "PATH")]
    pub ansible: Option<String>,
    /// The user the mail system runs helpdesk as; as root, created if missing and given the folder (the wizard's default: helpdesk)
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Playbooks run without sudo: sets helpdesk_become=false (default: they become root with sudo)
    #[arg(long)]
    #[serde(default)]
    pub no_become: bool,
    /// Write the sudoers drop-in /etc/sudoers.d/NAME, checked with visudo -c (default: print it)
    #[arg(long, requires = "user", conflicts_with = "no_become")]
    #[serde(default)]
    pub write_sudoers: bool,
}

/// A key the answers file must have, though its flag may be left out (the
/// wizard asks for it).
fn given<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `own_account_only: false` is `--any-account`.
fn negated<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    bool::deserialize(d).map(|own_account_only| !own_account_only)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TransportChoice {
    #[default]
    Smtp,
    Sendmail,
    Folder,
}

/// Where mail comes in (`--intake`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum IntakeChoice {
    /// The MTA (or procmail, fdm) pipes each message into `helpdesk run`.
    #[default]
    Mta,
    /// `helpdesk fetch` reads an IMAP mailbox.
    Imap,
    /// `helpdesk fetch` reads a Maildir on this host.
    Maildir,
}

/// The word a flag and config.yaml use for `value`.
fn word(value: impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

impl Answers {
    /// The folder and the domain, the two answers without a default; the
    /// flag of the first one missing.
    pub(crate) fn required(&self) -> Result<(&Path, &str), &'static str> {
        match (&self.dir, &self.domain) {
            (None, _) => Err("--dir"),
            (_, None) => Err("--domain"),
            (Some(dir), Some(domain)) => Ok((dir, domain)),
        }
    }

    /// Empty only before `validate`, which refuses that.
    fn domain(&self) -> &str {
        self.domain.as_deref().unwrap_or_default()
    }
    fn address(&self) -> String {
        self.address
            .clone()
            .unwrap_or_else(|| format!("helpdesk@{}", self.domain()))
    }
    fn senders(&self) -> Vec<String> {
        if self.senders.is_empty() {
            vec![format!("*@{}", self.domain())]
        } else {
            self.senders.clone()
        }
    }
    fn admins(&self) -> Vec<String> {
        if self.admins.is_empty() {
            vec![format!("admin@{}", self.domain())]
        } else {
            self.admins.clone()
        }
    }
    fn authserv_id(&self) -> String {
        self.authserv_id
            .clone()
            .unwrap_or_else(|| format!("mx.{}", self.domain()))
    }
    fn security(&self) -> Security {
        self.smtp_security.unwrap_or(Security::Starttls)
    }
    fn port(&self) -> u16 {
        self.smtp_port
            .unwrap_or_else(|| self.security().default_port())
    }
    fn intake(&self) -> IntakeChoice {
        self.intake.unwrap_or_default()
    }
    fn imap_url(&self) -> String {
        self.imap_url
            .clone()
            .unwrap_or_else(|| format!("imaps://mail.{}/INBOX", self.domain()))
    }
    fn imap_user(&self) -> String {
        self.imap_user.clone().unwrap_or_else(|| self.address())
    }
    /// The file config.yaml names for the IMAP password: imap.secret when
    /// the wizard was told the password, else the given file (or
    /// imap.secret, for the operator to fill in).
    fn imap_password_file(&self) -> PathBuf {
        match (&self.imap_password, &self.imap_password_file) {
            (None, Some(file)) => file.clone(),
            _ => PathBuf::from(IMAP_SECRET),
        }
    }

    /// config.yaml's `sources:` for the intake (none for the MTA's pipe).
    fn sources_yaml(&self) -> Option<String> {
        match self.intake() {
            IntakeChoice::Mta => None,
            IntakeChoice::Imap => Some(format!(
                "# Where mail comes in: `helpdesk fetch` reads this mailbox (IDLE) and moves\n# what it handled to done, what it quarantined to failed (made when missing;\n# these are the defaults).\nsources:\n  - name: inbox\n    imap:\n      url: {}\n      username: {}\n      # mode 600; a file others can read is refused\n      password_file: {}\n{}    # done: Helpdesk/Done\n    # failed: Helpdesk/Failed\n\n",
                q(&self.imap_url()),
                q(&self.imap_user()),
                q(&self.imap_password_file().display().to_string()),
                match &self.imap_ca_file {
                    Some(ca) => format!("      ca_file: {}\n", q(&ca.display().to_string())),
                    None => "      # a private CA's certificate (PEM); the public web roots without it\n      # ca_file: /etc/helpdesk/imap-ca.pem\n".to_owned(),
                }
            )),
            IntakeChoice::Maildir => Some(format!(
                "# Where mail comes in: `helpdesk fetch` reads new/ of this Maildir and moves\n# what it handled to cur/ (seen; flagged too when it was quarantined).\nsources:\n  - name: mailbox\n    maildir: {}\n\n",
                q(&self
                    .maildir
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
                    .to_string())
            )),
        }
    }

    /// The intake's answers, validated as config.yaml's `sources:` is
    /// (the same code): an error names the flag to fix.
    fn valid_intake(&self) -> Result<(), String> {
        #[derive(Deserialize)]
        struct Only {
            sources: Vec<crate::desk::sources::RawSource>,
        }
        let imap_only = [
            ("--imap-url", self.imap_url.is_some()),
            ("--imap-user", self.imap_user.is_some()),
            ("--imap-password-file", self.imap_password_file.is_some()),
            ("--imap-ca-file", self.imap_ca_file.is_some()),
        ];
        let maildir_only = [("--maildir", self.maildir.is_some())];
        let not_for_this = match self.intake() {
            IntakeChoice::Mta => [&imap_only[..], &maildir_only[..]].concat(),
            IntakeChoice::Imap => maildir_only.to_vec(),
            IntakeChoice::Maildir => imap_only.to_vec(),
        };
        if let Some((flag, _)) = not_for_this.iter().find(|(_, given)| *given) {
            let wanted = if flag.starts_with("--imap") {
                "imap"
            } else {
                "maildir"
            };
            return Err(format!(
                "{flag} is for --intake {wanted}, and the intake is {}: give --intake {wanted} too, or leave {flag} out",
                word(self.intake())
            ));
        }
        if self.intake() == IntakeChoice::Maildir && self.maildir.is_none() {
            return Err("--intake maildir needs --maildir PATH: the Maildir to read".into());
        }
        let Some(yaml) = self.sources_yaml() else {
            return Ok(());
        };
        let base = self.dir.as_deref().map_or_else(PathBuf::new, |d| {
            std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf())
        });
        let only: Only = serde_saphyr::from_str(&yaml).map_err(|e| format!("--intake: {e}"))?;
        crate::desk::sources::sources(only.sources, &base)
            .map(drop)
            .map_err(|e| intake_error(&e))
    }

    fn ansible(&self) -> String {
        self.ansible
            .clone()
            .or_else(detect_ansible)
            .unwrap_or_else(|| "ansible-playbook".into())
    }

    /// Mail domains are case-insensitive, and helpdesk compares them so:
    /// stored lower-case (in addresses, the part after the @), one
    /// spelling throughout config.yaml and the example mails.
    fn lower_cased(mut self) -> Self {
        self.domain = self.domain.map(|d| d.trim().to_ascii_lowercase());
        self.address = self.address.map(|a| lower_domain(&a));
        self.authserv_id = self.authserv_id.map(|id| id.trim().to_ascii_lowercase());
        for address in self.senders.iter_mut().chain(&mut self.admins) {
            *address = lower_domain(address);
        }
        self
    }

    fn paths_from_here(mut self) -> Self {
        self.imap_password_file = from_here(self.imap_password_file);
        self.imap_ca_file = from_here(self.imap_ca_file);
        self.maildir = from_here(self.maildir);
        self
    }

    /// An address the sender grant allows (`alice@` the domain of a
    /// `*@DOMAIN` pattern, or of `*`), else the first administrator: who
    /// the self-service example mails are from.
    fn a_sender(&self) -> String {
        let senders = self.senders();
        let pattern = senders.first().map(String::as_str).unwrap_or_default();
        match pattern.strip_prefix("*@") {
            Some(domain) => format!("alice@{domain}"),
            None if pattern == "*" => format!("alice@{}", self.domain()),
            None if pattern.contains('@') && !pattern.contains('*') => pattern.to_owned(),
            None => self.an_admin(),
        }
    }
    fn an_admin(&self) -> String {
        let first = self.admins().into_iter().next();
        first.unwrap_or_else(|| format!("admin@{}", self.domain()))
    }

    /// Checks what a prompt's validator would, for answers from flags or a file.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        let (_, domain) = self
            .required()
            .map_err(|flag| anyhow!("no answer for {flag}"))?;
        valid_domain(domain).map_err(|e| anyhow!("domain {domain:?}: {e}"))?;
        valid_address(&self.address()).map_err(|e| anyhow!("address: {e}"))?;
        if let Some(host) = &self.smtp_host {
            valid_smtp_host(host)
                .map_err(|e| anyhow!("--smtp-host {host:?}: {e}, with --smtp-port"))?;
        }
        for admin in self.admins() {
            valid_address(&admin).map_err(|e| anyhow!("admin: {e}"))?;
        }
        self.valid_intake().map_err(|e| anyhow!(e))?;
        if let Some(user) = &self.user {
            account::valid_user(user).map_err(|e| anyhow!("--user: {e}"))?;
            let root = rustix::process::geteuid().is_root();
            if !root && std::env::var("USER").ok().as_deref() != Some(user) {
                bail!(
                    "--user {user}: only root can create that account and give it the folder; run helpdesk setup with sudo, or leave --user out"
                );
            }
        }
        if self.write_sudoers && !rustix::process::geteuid().is_root() {
            bail!(
                "--write-sudoers: only root can write /etc/sudoers.d; run helpdesk setup with sudo, or leave it out to have the drop-in printed"
            );
        }
        Ok(())
    }
}

/// The answers `args` ask for: from the file, the flags, or the wizard.
pub(crate) fn answers(args: &SetupArgs) -> anyhow::Result<Answers> {
    if let Some(file) = &args.answers {
        let text = fs::read_to_string(file).map_err(|e| anyhow!("{}: {e}", file.display()))?;
        serde_saphyr::from_str::<Answers>(&text)
            .map(Answers::lower_cased)
            .map(Answers::paths_from_here)
            .map_err(|e| anyhow!("{}: {e}", file.display()))
    } else if args.non_interactive {
        args.given
            .required()
            .map_err(|flag| anyhow!("--non-interactive needs {flag}"))?;
        Ok(args.given.clone().lower_cased().paths_from_here())
    } else {
        require_terminal()?;
        let default_dir = args.given.dir.clone().unwrap_or_else(default_dir);
        ask(&default_dir, &args.given.clone().paths_from_here()).map(Answers::lower_cased)
    }
}

/// The file the wizard keeps the IMAP password in.
const IMAP_SECRET: &str = "imap.secret";

/// An error of `sources:` in the words of setup's flags: `sources[1]
/// ("inbox"): imap.url "x": why` is `--imap-url "x": why`.
fn intake_error(error: &str) -> String {
    let error = error.split_once("): ").map_or(error, |(_, rest)| rest);
    for (key, flag) in [
        ("imap.url", "--imap-url"),
        ("imap.username", "--imap-user"),
        ("imap.password_file", "--imap-password-file"),
        ("imap.ca_file", "--imap-ca-file"),
        ("maildir", "--maildir"),
    ] {
        if let Some(rest) = error.strip_prefix(key) {
            return format!("{flag}{rest}");
        }
    }
    format!("--intake: {error}")
}

/// Relative paths in flags and answers files are the caller's, from the
/// working folder; config.yaml's would start at its own folder.
fn from_here(path: Option<PathBuf>) -> Option<PathBuf> {
    path.map(|p| std::path::absolute(&p).unwrap_or(p))
}

/// `/etc/helpdesk` for root, else `~/helpdesk`.
fn default_dir() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        PathBuf::from("/etc/helpdesk")
    } else {
        std::env::var_os("HOME").map_or_else(
            || PathBuf::from("helpdesk"),
            |h| PathBuf::from(h).join("helpdesk"),
        )
    }
}

/// `address` with the part after its last @ lower-cased.
fn lower_domain(address: &str) -> String {
    let address = address.trim();
    match address.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => address.to_owned(),
    }
}

pub(crate) fn valid_domain(domain: &str) -> Result<(), String> {
    let labels: Vec<&str> = domain.split('.').collect();
    let ok = labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err("not a mail domain: write it like example.com".into())
    }
}

/// A host without `:PORT`, which config.yaml would take as part of the
/// host name.
fn valid_smtp_host(host: &str) -> Result<(), String> {
    match crate::commands::check::host_and_port(host) {
        Some((host, port)) => Err(format!(
            "write the host without its port ({host}) and the port ({port}) on its own"
        )),
        None => Ok(()),
    }
}

pub(crate) fn valid_address(address: &str) -> Result<(), String> {
    address.parse::<lettre::Address>().map(|_| ()).map_err(|_| {
        format!("{address:?} is not a mail address: write it like helpdesk@example.com")
    })
}

/// `ansible-playbook` on PATH, or next to a Python virtual environment.
fn detect_ansible() -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("ansible-playbook"))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// The wizard's choices: what a prompt shows, and what it means.
const TRANSPORTS: &[(&str, TransportChoice)] = &[
    ("an SMTP server", TransportChoice::Smtp),
    (
        "the local sendmail (helpdesk runs on the mail host)",
        TransportChoice::Sendmail,
    ),
    (
        "a folder of .eml files (for trying it out)",
        TransportChoice::Folder,
    ),
];
const ENCRYPTIONS: &[(&str, Security)] = &[
    ("starttls (port 587)", Security::Starttls),
    ("tls (port 465)", Security::Tls),
    (
        "none (plain text: a relay on loopback only)",
        Security::None,
    ),
];
const REQUIREMENTS: &[(&str, Require)] = &[
    ("dmarc (recommended)", Require::Dmarc),
    ("dkim", Require::Dkim),
    ("spf", Require::Spf),
    ("none (a closed internal relay only)", Require::None),
];
const POSITIONS: &[(&str, Position)] = &[
    (
        "above: the MX writes Authentication-Results above its own Received header (Postfix with OpenDKIM/OpenDMARC, rspamd)",
        Position::Above,
    ),
    (
        "below: directly below its Received header (Gmail, mail fetched by fdm)",
        Position::Below,
    ),
];

const INTAKES: &[(&str, IntakeChoice)] = &[
    (
        "the MTA pipes it into `helpdesk run` (Postfix, procmail, fdm)",
        IntakeChoice::Mta,
    ),
    (
        "a mailbox helpdesk reads itself (IMAP, with IDLE)",
        IntakeChoice::Imap,
    ),
    ("a Maildir on this host", IntakeChoice::Maildir),
];

/// Whether the SMTP server wants a login; "none" first, so that Enter
/// never leads to a password prompt with nothing to type.
const LOGINS: &[(&str, bool)] = &[
    (
        "none: the server takes mail from this host without one",
        false,
    ),
    (
        "a user and password (the password is kept in smtp.secret, mode 600)",
        true,
    ),
];

/// The interactive wizard. The default domain is `--domain`, else the one
/// of an existing folder's config.yaml; `given` flags are the defaults of
/// the account questions too.
pub(crate) fn ask(default_dir: &Path, given: &Answers) -> anyhow::Result<Answers> {
    let default_domain = given.domain.as_deref();
    let theme = ColorfulTheme::default();
    let dir = PathBuf::from(line(
        &theme,
        "Helpdesk folder",
        default_dir.display().to_string(),
    )?);
    let last_question = format!("Write {} now?", dir.display());
    let mut domain_prompt = Input::<String>::with_theme(&theme)
        .with_prompt("Your organisation's mail domain")
        .validate_with(|d: &String| valid_domain(d.trim()));
    if let Some(default) = default_domain
        .map(str::to_owned)
        .or_else(|| previous_domain(&dir))
    {
        domain_prompt = domain_prompt.default(default.trim().to_ascii_lowercase());
    }
    let domain = domain_prompt.interact_text()?.trim().to_ascii_lowercase();
    let address: String = Input::with_theme(&theme)
        .with_prompt("The helpdesk's own address")
        .default(format!("helpdesk@{domain}"))
        .validate_with(|a: &String| valid_address(a.trim()))
        .interact_text()?;
    let address = lower_domain(&address);
    let mut answers = Answers {
        dir: Some(dir),
        domain: Some(domain),
        address: Some(address.clone()),
        ..Answers::default()
    };
    ask_intake(&theme, &mut answers, given)?;
    let transport = select(&theme, "How do replies leave?", TRANSPORTS)?;
    answers.transport = Some(transport);
    match transport {
        TransportChoice::Smtp => ask_smtp(&theme, &mut answers, &address)?,
        TransportChoice::Sendmail => {
            answers.sendmail = Some(line(
                &theme,
                "sendmail command",
                "/usr/sbin/sendmail".into(),
            )?);
        }
        TransportChoice::Folder => {}
    }
    ask_grants(&theme, &mut answers)?;
    ask_authentication(&theme, &mut answers)?;
    ask_ansible(&theme, &mut answers)?;
    ask_account(&theme, &mut answers, given)?;
    if !Confirm::with_theme(&theme)
        .with_prompt(last_question)
        .default(true)
        .interact()?
    {
        bail!("nothing written");
    }
    Ok(answers)
}

/// A line of text; `default` when left empty.
fn line(theme: &dyn Theme, prompt: &str, default: String) -> anyhow::Result<String> {
    Ok(Input::with_theme(theme)
        .with_prompt(prompt)
        .default(default)
        .interact_text()?)
}

/// One of `choices` (what the prompt shows, what it means); the first is
/// the default.
fn select<T: Copy>(theme: &dyn Theme, prompt: &str, choices: &[(&str, T)]) -> anyhow::Result<T> {
    select_at(theme, prompt, choices, 0)
}

/// One of `choices`, the one at `default` chosen by Enter.
fn select_at<T: Copy>(
    theme: &dyn Theme,
    prompt: &str,
    choices: &[(&str, T)],
    default: usize,
) -> anyhow::Result<T> {
    let chosen = Select::with_theme(theme)
        .with_prompt(prompt)
        .items(choices.iter().map(|(shown, _)| shown))
        .default(default)
        .interact()?;
    choices
        .get(chosen)
        .map(|(_, value)| *value)
        .ok_or_else(|| anyhow!("{prompt}: no choice {chosen}"))
}

/// Server, encryption, port, and a login (user and password) or none;
/// `address` is the default user.
fn ask_smtp(theme: &dyn Theme, answers: &mut Answers, address: &str) -> anyhow::Result<()> {
    let host: String = Input::with_theme(theme)
        .with_prompt("SMTP server (the port is the next question)")
        .default(format!("mail.{}", answers.domain()))
        .validate_with(|h: &String| valid_smtp_host(h.trim()))
        .interact_text()?;
    answers.smtp_host = Some(host.trim().to_owned());
    answers.smtp_security = Some(select(theme, "Encryption", ENCRYPTIONS)?);
    answers.smtp_port = Some(
        Input::with_theme(theme)
            .with_prompt("Port")
            .default(answers.port())
            .interact_text()?,
    );
    if select(theme, "Does the SMTP server need a login?", LOGINS)? {
        let user: String = Input::with_theme(theme)
            .with_prompt("SMTP user")
            .default(address.to_owned())
            .interact_text()?;
        answers.smtp_user = Some(user.trim().to_owned());
        answers.smtp_password = Some(
            Password::with_theme(theme)
                .with_prompt("SMTP password (kept in smtp.secret, mode 600)")
                .interact()?,
        );
    }
    Ok(())
}

/// Who may send requests, for which accounts, and the administrators.
fn ask_grants(theme: &dyn Theme, answers: &mut Answers) -> anyhow::Result<()> {
    let domain = answers.domain().to_owned();
    println!("\nWho may send requests? A list of addresses, *@domain or *, separated by spaces.");
    let senders = line(theme, "Senders", format!("*@{domain}"))?;
    answers.senders = senders.split_whitespace().map(str::to_owned).collect();
    answers.any_account = !Confirm::with_theme(theme)
        .with_prompt(
            "Only self-service on their own account: password reset, failed logins, quota and account info (scope: self)?",
        )
        .default(true)
        .interact()?;
    let admins: String = Input::with_theme(theme)
        .with_prompt("Administrators (may manage users and act on any account)")
        .default(format!("admin@{domain}"))
        .validate_with(|a: &String| a.split_whitespace().try_for_each(valid_address))
        .interact_text()?;
    answers.admins = admins.split_whitespace().map(str::to_owned).collect();
    Ok(())
}

/// Whose Authentication-Results count, what they must say, and where.
fn ask_authentication(theme: &dyn Theme, answers: &mut Answers) -> anyhow::Result<()> {
    println!(
        "\nThe From header is easy to forge. helpdesk trusts it only when the Authentication-Results"
    );
    println!(
        "header your mail server (or Gmail: mx.google.com) added says the mail passed DMARC, DKIM or SPF."
    );
    answers.authserv_id = Some(line(
        theme,
        "authserv-id of your MX",
        format!("mx.{}", answers.domain()),
    )?);
    answers.require = Some(select(theme, "Require", REQUIREMENTS)?);
    answers.position = Some(select(
        theme,
        "Where does your MX write its Authentication-Results?",
        POSITIONS,
    )?);
    Ok(())
}

fn ask_ansible(theme: &dyn Theme, answers: &mut Answers) -> anyhow::Result<()> {
    let detected = detect_ansible();
    if detected.is_none() {
        println!(
            "\nansible-playbook is not on PATH: install ansible-core (pip install ansible-core) or give its path."
        );
    }
    answers.ansible = Some(line(
        theme,
        "ansible-playbook",
        detected.unwrap_or_else(|| "ansible-playbook".into()),
    )?);
    Ok(())
}

/// As root, the account the mail system runs helpdesk as (otherwise
/// that is whoever runs setup); whether playbooks may use sudo, and, as
/// root, whether to write the sudoers drop-in for it.
fn ask_account(theme: &dyn Theme, answers: &mut Answers, given: &Answers) -> anyhow::Result<()> {
    let root = rustix::process::geteuid().is_root();
    if root {
        println!(
            "\nThe mail system runs helpdesk as a user of its own: it reads this folder, owns the state folder, and nobody else reads the secrets."
        );
        let user: String = Input::with_theme(theme)
            .with_prompt("User the mail system runs helpdesk as (created if missing)")
            .default(
                given
                    .user
                    .clone()
                    .or_else(|| answers.dir.as_deref().and_then(account::previous_user))
                    .unwrap_or_else(|| "helpdesk".into()),
            )
            .validate_with(|u: &String| account::valid_user(u.trim()))
            .interact_text()?;
        answers.user = Some(user.trim().to_owned());
    }
    println!(
        "\nThe shipped playbooks change accounts, passwords and quotas: they become root with sudo on the hosts they manage."
    );
    answers.no_become = !Confirm::with_theme(theme)
        .with_prompt(
            "May the playbooks use sudo (become)? (no: they run with helpdesk_become=false)",
        )
        .default(!given.no_become)
        .interact()?;
    if let (true, false, Some(user)) = (root, answers.no_become, &answers.user) {
        answers.write_sudoers = Confirm::with_theme(theme)
            .with_prompt(format!(
                "Write {} (checked with visudo) so that {user} may? (no: it is printed for you)",
                account::sudoers_path(user).display()
            ))
            .default(given.write_sudoers)
            .interact()?;
    }
    Ok(())
}

/// Where mail comes in and, for a mailbox, its URL, login and password
/// (kept in imap.secret), or the Maildir's path. The defaults are the
/// flags given, else what the folder's config.yaml says (a re-run), and
/// Enter at the password keeps the file an earlier run named.
fn ask_intake(theme: &dyn Theme, answers: &mut Answers, given: &Answers) -> anyhow::Result<()> {
    let previous = answers
        .dir
        .as_deref()
        .and_then(previous_intake)
        .unwrap_or_default();
    let earlier = given.intake.or(previous.intake).unwrap_or_default();
    let at = INTAKES.iter().position(|(_, i)| *i == earlier);
    let intake = select_at(theme, "Where does mail come in?", INTAKES, at.unwrap_or(0))?;
    answers.intake = Some(intake);
    let valid = |a: &Answers| a.valid_intake();
    match intake {
        IntakeChoice::Mta => {}
        IntakeChoice::Imap => {
            let mut probe = answers.clone();
            let url: String = Input::with_theme(theme)
                .with_prompt("Mailbox URL (imaps://HOST/MAILBOX, or imap:// for STARTTLS)")
                .default(
                    given
                        .imap_url
                        .clone()
                        .or(previous.imap_url)
                        .unwrap_or_else(|| answers.imap_url()),
                )
                .validate_with(|u: &String| {
                    probe.imap_url = Some(u.trim().to_owned());
                    valid(&probe)
                })
                .interact_text()?;
            answers.imap_url = Some(url.trim().to_owned());
            let user: String = Input::with_theme(theme)
                .with_prompt("IMAP user")
                .default(
                    given
                        .imap_user
                        .clone()
                        .or(previous.imap_user)
                        .unwrap_or_else(|| answers.imap_user()),
                )
                .interact_text()?;
            answers.imap_user = Some(user.trim().to_owned());
            // Only from the flag (or kept from an earlier run).
            answers.imap_ca_file = given.imap_ca_file.clone().or(previous.imap_ca_file);
            ask_imap_password(
                theme,
                answers,
                given
                    .imap_password_file
                    .clone()
                    .or(previous.imap_password_file),
            )?;
        }
        IntakeChoice::Maildir => {
            let mut probe = answers.clone();
            let default = given
                .maildir
                .clone()
                .or(previous.maildir)
                .unwrap_or_else(|| PathBuf::from("/var/mail/helpdesk"));
            let path: String = Input::with_theme(theme)
                .with_prompt("Maildir (its new/ is read, handled mail moves to cur/)")
                .default(default.display().to_string())
                .validate_with(|p: &String| {
                    probe.maildir = Some(PathBuf::from(p.trim()));
                    valid(&probe)
                })
                .interact_text()?;
            answers.maildir = from_here(Some(PathBuf::from(path.trim())));
        }
    }
    Ok(())
}

/// The IMAP password, kept in imap.secret; with a file already named
/// (`--imap-password-file`, or an earlier run's), Enter keeps that file.
fn ask_imap_password(
    theme: &dyn Theme,
    answers: &mut Answers,
    earlier: Option<PathBuf>,
) -> anyhow::Result<()> {
    let prompt = match &earlier {
        Some(file) => format!(
            "IMAP password (kept in {IMAP_SECRET}, mode 600; Enter keeps the one in {})",
            file.display()
        ),
        None => format!("IMAP password (kept in {IMAP_SECRET}, mode 600)"),
    };
    let password = Password::with_theme(theme)
        .with_prompt(prompt)
        .allow_empty_password(earlier.is_some())
        .interact()?;
    if password.is_empty() {
        answers.imap_password_file = earlier;
    } else {
        answers.imap_password = Some(password);
    }
    Ok(())
}

/// The intake an existing folder's config.yaml has (written by setup:
/// one source), when re-run.
fn previous_intake(dir: &Path) -> Option<Answers> {
    #[derive(Deserialize)]
    struct Previous {
        #[serde(default)]
        sources: Vec<Source>,
    }
    #[derive(Deserialize)]
    struct Source {
        imap: Option<Imap>,
        maildir: Option<PathBuf>,
    }
    #[derive(Deserialize)]
    struct Imap {
        url: String,
        username: String,
        password_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
    }
    let text = fs::read_to_string(dir.join("config.yaml")).ok()?;
    let previous: Previous = serde_saphyr::from_str(&text).ok()?;
    let mut answers = Answers {
        intake: Some(IntakeChoice::Mta),
        ..Answers::default()
    };
    match previous.sources.into_iter().next() {
        None => {}
        Some(Source {
            imap: Some(imap), ..
        }) => {
            answers.intake = Some(IntakeChoice::Imap);
            answers.imap_url = Some(imap.url);
            answers.imap_user = Some(imap.username);
            answers.imap_password_file = imap.password_file;
            answers.imap_ca_file = imap.ca_file;
        }
        Some(Source { maildir, .. }) => {
            answers.intake = Some(IntakeChoice::Maildir);
            answers.maildir = maildir;
        }
    }
    Some(answers)
}

/// The domain of an existing folder's helpdesk address, when re-run.
fn previous_domain(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join("config.yaml")).ok()?;
    let address = text
        .lines()
        .find_map(|l| l.strip_prefix("helpdesk_address: "))?
        .trim()
        .trim_matches('"');
    Some(address.rsplit_once('@')?.1.to_owned())
}

/// What to do with a default file the user changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Changed {
    Keep,
    BackUpAndReplace,
}

/// Writes the folder; `decide` is asked about each changed default file.
/// Returns the folder's absolute path and what was done.
pub(crate) fn write(
    answers: &Answers,
    decide: &mut dyn FnMut(&Path) -> Changed,
) -> anyhow::Result<(PathBuf, Vec<String>)> {
    answers.validate()?;
    let (dir, _) = answers
        .required()
        .map_err(|flag| anyhow!("no answer for {flag}"))?;
    let target = absolute(dir)?;
    let mut notes = Vec::new();
    if target.exists() {
        for (relative, text) in folder_files(answers) {
            let path = target.join(&relative);
            match fs::read_to_string(&path) {
                Ok(current) if current == text => {}
                Ok(_) => match decide(&path) {
                    Changed::Keep => notes.push(format!("kept your {relative}")),
                    Changed::BackUpAndReplace => {
                        fs::rename(&path, backup(&path))
                            .with_context(|| path.display().to_string())?;
                        write_file(&path, text.as_bytes(), 0o644)?;
                        notes.push(format!("replaced {relative} (yours is {relative}.bak)"));
                    }
                },
                Err(_) => write_file(&path, text.as_bytes(), 0o644)?,
            }
        }
        let config = target.join("config.yaml");
        if config.exists() {
            fs::copy(&config, backup(&config))?;
            notes.push(
                "config.yaml rewritten from your answers (the old one is config.yaml.bak)".into(),
            );
        }
        write_secret_and_config(answers, &target)?;
    } else {
        // Assemble next to the target and rename: a folder is either
        // complete or absent.
        let parent = target
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent folder", target.display()))?;
        fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
        let staging = tempfile::Builder::new()
            .prefix(".helpdesk-setup-")
            .tempdir_in(parent)?;
        for (relative, text) in folder_files(answers) {
            write_file(&staging.path().join(relative), text.as_bytes(), 0o644)?;
        }
        write_secret_and_config(answers, staging.path())?;
        fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o750))?;
        let staged = staging.keep();
        fs::rename(&staged, &target)
            .with_context(|| format!("cannot move the new folder to {}", target.display()))?;
        notes.push(format!("created {}", target.display()));
    }
    Ok((target, notes))
}

/// The files of a helpdesk folder: the built-in ones, with the example
/// mails written for these answers.
fn folder_files(answers: &Answers) -> Vec<(String, String)> {
    desk::builtin_files()
        .into_iter()
        .map(|(relative, text)| {
            let text = match relative.strip_prefix("examples/") {
                Some(name) => example_mail(answers, name, text),
                None => text.to_owned(),
            };
            (relative, text)
        })
        .collect()
}

/// The shipped example mails that only an administrator may send (more
/// quota, a new account); the others are self-service.
const ADMIN_EXAMPLES: &[&str] = &["storage.eml", "new_user.eml"];

/// A shipped example mail (on example.com) as an allowed sender would send
/// it to this helpdesk through the configured MX: its Received header and
/// passing verdict where `authentication.position` looks for them, so
/// that a dry run of it shows an allowed request.
fn example_mail(answers: &Answers, name: &str, shipped: &str) -> String {
    let from = if ADMIN_EXAMPLES.contains(&name) {
        answers.an_admin()
    } else {
        answers.a_sender()
    };
    let (local, domain) = from.rsplit_once('@').unwrap_or((&from, answers.domain()));
    let (mx, address) = (answers.authserv_id(), answers.address());
    let received = format!(
        "Received: from mail.{domain} (mail.{domain} [192.0.2.25])\n\tby {mx} with ESMTPS id 4711\n\tfor <{address}>; Mon, 03 Mar 2025 09:15:43 +0000\n"
    );
    let verdict = format!(
        "Authentication-Results: {mx};\n\tdkim=pass header.d={domain};\n\tspf=pass smtp.mailfrom={from};\n\tdmarc=pass header.from={domain}\n"
    );
    let mut out = match answers.position.unwrap_or_default() {
        Position::Above => verdict + &received,
        Position::Below => received + &verdict,
    };
    let (head, body) = shipped.split_once("\n\n").unwrap_or((shipped, ""));
    for header in head.lines() {
        let (field, _) = header.split_once(':').unwrap_or_default();
        let header = match field.to_ascii_lowercase().as_str() {
            "from" => format!("From: {from}"),
            "to" => format!("To: IT Helpdesk <{address}>"),
            _ => header.replace("example.com", domain),
        };
        out.push_str(&header);
        out.push('\n');
    }
    out.push('\n');
    // The self-service password reset is about the sender's own account.
    out.push_str(&body.replace("username: alice", &format!("username: {local}")));
    out
}

fn backup(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".bak");
    PathBuf::from(name)
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(path)?)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{} has no folder", path.display()))?;
    fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let mut file = tempfile::Builder::new()
        .prefix(".setup-")
        .tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    file.persist(path)
        .map_err(|e| anyhow!("{}: {}", path.display(), e.error))?;
    Ok(())
}

/// `password` in the folder's file `name`, mode 600 from the start.
fn write_secret(dir: &Path, name: &str, password: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(password.as_bytes())?;
    file.write_all(b"\n")?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    Ok(())
}

fn write_secret_and_config(answers: &Answers, dir: &Path) -> anyhow::Result<()> {
    let mut password_file = answers.smtp_password_file.clone();
    if let Some(password) = &answers.smtp_password {
        write_secret(dir, "smtp.secret", password)?;
        password_file = Some(PathBuf::from("smtp.secret"));
    }
    if let Some(password) = &answers.imap_password {
        write_secret(dir, IMAP_SECRET, password)?;
    }
    write_file(
        &dir.join("config.yaml"),
        config_yaml(answers, password_file.as_deref()).as_bytes(),
        0o640,
    )
}

/// A YAML scalar: JSON strings are valid YAML.
fn q(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|i| q(i)).collect::<Vec<_>>().join(", ")
    )
}

/// The config file, with comments; `config.example.yaml` documents more.
pub(crate) fn config_yaml(answers: &Answers, password_file: Option<&Path>) -> String {
    let mut out = String::from(
        "# config.yaml for helpdesk, written by `helpdesk setup` (re-run it to change the\n# answers; config.example.yaml in the helpdesk sources documents every key).\n\n",
    );
    out.push_str("# The folder with keywords.txt, phrasebooks/, playbooks/, help_templates/.\nhelpdesk_dir: .\n\n");
    out.push_str(&format!(
        "# The From of every reply, and the X-Loop mark on it.\nhelpdesk_address: {}\n\n",
        q(&answers.address())
    ));
    out.push_str(&answers.sources_yaml().unwrap_or_default());
    out.push_str("mail:\n");
    match answers.transport.unwrap_or_default() {
        TransportChoice::Smtp => {
            out.push_str("  transport: smtp\n  smtp:\n");
            out.push_str(&format!(
                "    host: {}\n    port: {}\n",
                q(answers.smtp_host.as_deref().unwrap_or("localhost")),
                answers.port()
            ));
            out.push_str(&format!(
                "    # starttls, tls, or none (a relay on loopback only)\n    security: {}\n",
                word(answers.security())
            ));
            if let Some(user) = &answers.smtp_user {
                out.push_str(&format!("    username: {}\n", q(user)));
                let file = password_file
                    .map_or_else(|| "smtp.secret".to_owned(), |p| p.display().to_string());
                out.push_str(&format!(
                    "    # mode 600; a file others can read is refused\n    password_file: {}\n",
                    q(&file)
                ));
            }
        }
        TransportChoice::Sendmail => {
            out.push_str(&format!(
                "  transport: sendmail\n  sendmail: {}\n",
                q(answers.sendmail.as_deref().unwrap_or("/usr/sbin/sendmail"))
            ));
        }
        TransportChoice::Folder => out.push_str("  transport: folder\n  folder: replies/\n"),
    }
    out.push_str("  reply_limit_per_hour: 10\n\n");
    out.push_str("# The From address counts only with this MX's Authentication-Results verdict.\n");
    if answers.intake() == IntakeChoice::Imap {
        out.push_str("# Gmail and Google Workspace mailboxes: their MX is mx.google.com, and it\n# writes Authentication-Results below its Received header (position: below).\n");
    }
    out.push_str("authentication:\n");
    out.push_str(&format!("  authserv_id: [{}]\n  # dmarc, dkim, spf, or none (a closed internal relay only)\n  require: {}\n  # where the MX writes its Authentication-Results: above its own Received\n  # header (Postfix with OpenDKIM/OpenDMARC, rspamd) or below it (Gmail);\n  # results anywhere else never count\n  position: {}\n\n", q(&answers.authserv_id()), word(answers.require.unwrap_or(Require::Dmarc)), word(answers.position.unwrap_or_default())));
    out.push_str("# Who may ask for what (default deny). A sender gets what the most generous\n# grant that matches them gives.\naccess:\n");
    if !answers.any_account {
        out.push_str(SELF_SERVICE_COMMENT);
    } else {
        out.push_str(
            "  # These senders may ask for anything, about any account (no scope: self).\n",
        );
    }
    out.push_str(&format!(
        "  - requests: [\"*\"]\n    senders: {}\n",
        list(&answers.senders())
    ));
    if !answers.any_account {
        out.push_str("    scope: self\n");
    }
    out.push_str(&format!(
        "  # Administrators: every request, about any account.\n  - requests: [\"*\"]\n    senders: {}\n\n",
        list(&answers.admins())
    ));
    out.push_str(&format!(
        "ansible:\n  command: {}\n  inventory: inventory\n  timeout: {}m\n",
        q(&answers.ansible()),
        ANSIBLE_TIMEOUT_MINUTES
    ));
    if answers.user.is_some() {
        let home = answers.dir.as_deref().map_or_else(
            || PathBuf::from("state"),
            |dir| {
                std::path::absolute(dir)
                    .unwrap_or_else(|_| dir.to_path_buf())
                    .join("state")
            },
        );
        out.push_str(&format!(
            "  # Ansible keeps its temporary files under HOME; the user helpdesk runs as\n  # has none of its own.\n  environment: {{HOME: {}}}\n",
            q(&home.display().to_string())
        ));
    }
    if answers.no_become {
        out.push_str("  # Playbooks run without sudo (the shipped ones read helpdesk_become).\n  extra_args: [--extra-vars, helpdesk_become=false]\n");
    }
    out.push_str("\n# Journal, spool and run logs; the user helpdesk runs as must write it (0700).\nstate_dir: state\n");
    out
}

/// `ansible.timeout` as setup writes it; Postfix's pipe gets longer.
const ANSIBLE_TIMEOUT_MINUTES: u64 = 30;

/// What the written `scope: self` grant allows, in the config's own words:
/// an operator reading config.yaml should not need the README to know it.
const SELF_SERVICE_COMMENT: &str = concat!(
    "  # Self-service: a request must be about the sender's own account (their\n",
    "  # address's local part) and may set only what its phrasebook lists under\n",
    "  # *self*. With the shipped phrasebooks: reset their own password, clear\n",
    "  # their own failed logins, check their own quota, look up their own\n",
    "  # account. Groups, shell, lock/unlock, rename, quota changes and\n",
    "  # creating or deleting accounts are refused (only administrators).\n",
);

/// Asks whether to keep a changed default file, unless `--replace-changed`
/// said (replace) or nobody is at a terminal to answer (keep).
pub(crate) fn keep_or_replace(path: &Path, replace: bool, interactive: bool) -> Changed {
    if replace {
        return Changed::BackUpAndReplace;
    }
    if !interactive {
        return Changed::Keep;
    }
    let keep = Confirm::new()
        .with_prompt(format!(
            "{} differs from the default: keep yours? (no: save it as .bak and replace it)",
            path.display()
        ))
        .default(true)
        .interact()
        .unwrap_or(true);
    if keep {
        Changed::Keep
    } else {
        Changed::BackUpAndReplace
    }
}

/// The dry run of the folder's example mail through it, when its config
/// loads: what `parse` would say of examples/storage.eml, down to whether
/// its sender may ask for it.
pub(crate) fn dry_run(config_path: &Path) -> Result<String, desk::DeskError> {
    const SAMPLE: &str = "examples/storage.eml";
    let Ok(config) = Config::load(config_path) else {
        return Ok(String::new());
    };
    let Some(sample) = config.desk.read(SAMPLE)? else {
        return Ok(String::new());
    };
    let mail = crate::mail::read(sample.as_bytes(), &config.sender_header);
    let keywords = config.desk.keywords()?;
    let decision = crate::decide::decide(&config, &keywords, &mail)?;
    let access = decision
        .access
        .map_or_else(|| "nothing to allow".to_owned(), |a| a.to_string());
    // The mail may have been edited: its words pass through the
    // terminal escaping, like everything `parse` prints.
    let said = format!(
        "(from {}): request type {}, {}, {access}",
        mail.sender.as_deref().unwrap_or("nobody"),
        decision.request_type.as_deref().unwrap_or("none"),
        decision.authentication,
    );
    Ok(format!(
        "\nDry run of {SAMPLE} {}.\nSee all of it: helpdesk --config {} parse --explain {}\n",
        crate::commands::terminal::escape(&said),
        config_path.display(),
        config.desk.display(SAMPLE),
    ))
}

/// As root with `--user`: the account, created if missing, is given the
/// folder (and, with `--write-sudoers`, its sudoers drop-in). What was
/// done, for the operator.
pub(crate) fn settle_account(answers: &Answers, dir: &Path) -> anyhow::Result<Vec<String>> {
    let root = rustix::process::geteuid().is_root();
    let Some(user) = answers.user.as_deref().filter(|_| root) else {
        return Ok(if root {
            vec![format!(
                "warning: {} belongs to root, and the user your mail system runs helpdesk as cannot read it: re-run setup with --user NAME (created if missing)",
                dir.display()
            )]
        } else {
            Vec::new()
        });
    };
    let state = dir.join("state");
    let (account, created) = account::ensure(user, &state)?;
    let secrets: Vec<PathBuf> = [PathBuf::from("smtp.secret"), PathBuf::from(IMAP_SECRET)]
        .into_iter()
        .chain(answers.smtp_password_file.clone())
        .chain(answers.imap_password_file.clone())
        .map(|file| dir.join(file))
        .filter(|path| path.starts_with(dir) && path.exists())
        .collect();
    let mut writable = vec![state];
    if answers.transport == Some(TransportChoice::Folder) {
        writable.push(dir.join("replies"));
    }
    account::hand_over(dir, &account, &secrets, &writable)?;
    let mut notes = Vec::new();
    if created {
        notes.push(format!(
            "created the system user {user} (no login shell; home {})",
            account.home.display()
        ));
    }
    notes.push(format!(
        "gave {} to {user}: it reads the folder (root:{user}, 0750/0640), owns state/ (0700) and the secrets (0600)",
        dir.display()
    ));
    if answers.write_sudoers {
        let path = account::write_sudoers(user)?;
        notes.push(format!(
            "wrote {} (checked with visudo -c): {user} may become root for the playbooks",
            path.display()
        ));
    }
    Ok(notes)
}

/// The snippets to paste, for this install: for the MTA's pipe, the
/// master.cf pipe running as the helpdesk user first (the route that
/// works with the folder's modes), then the others with their caveats;
/// for a mailbox or Maildir, how to run `fetch`; then what the
/// playbooks' sudo needs.
pub(crate) fn snippets(binary: &Path, config: &Path, answers: &Answers) -> String {
    let user = answers
        .user
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "helpdesk".into());
    let mut out = match answers.intake() {
        IntakeChoice::Mta => {
            let command = format!("{} --config {} run", binary.display(), config.display());
            pipe_snippets(&command, &user, &answers.address())
        }
        IntakeChoice::Imap | IntakeChoice::Maildir => {
            fetch_snippets(binary, config, &user, answers)
        }
    };
    if answers.no_become {
        out.push_str("Playbooks run without sudo (helpdesk_become=false): on each host, connect as a user\nthat may make the changes (ansible_user=root in inventory).\n");
    } else if !answers.write_sudoers {
        out.push_str(&format!(
            "The playbooks become root with sudo: on each host they run on (localhost included),\n{user} needs this drop-in (write it with visudo -f {}, or re-run setup with --write-sudoers):\n",
            account::sudoers_path(&user).display()
        ));
        for line in account::sudoers(&user)
            .lines()
            .filter(|l| !l.starts_with('#'))
        {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}

/// Where the MTA pipes mail into `run`: Postfix (as the helpdesk user,
/// or through aliases), procmail, fdm.
fn pipe_snippets(command: &str, user: &str, address: &str) -> String {
    let limit = ANSIBLE_TIMEOUT_MINUTES * 60 + 300;
    let mut out = format!(
        "Postfix, running helpdesk as {user} (recommended):\n  /etc/postfix/master.cf (add at the end):\n    helpdesk  unix  -  n  n  -  -  pipe\n      flags=RX null_sender= user={user} argv={command}\n  /etc/postfix/main.cf (where these maps are set already, add to their lists):\n    virtual_alias_maps = hash:/etc/postfix/helpdesk_virtual\n    transport_maps = hash:/etc/postfix/helpdesk_transport\n    helpdesk_time_limit = {limit}s\n  /etc/postfix/helpdesk_virtual:\n    {address}  helpdesk@helpdesk.invalid\n  /etc/postfix/helpdesk_transport:\n    helpdesk.invalid  helpdesk:\n  then: postmap /etc/postfix/helpdesk_virtual /etc/postfix/helpdesk_transport && postfix reload\n\n"
    );
    out.push_str(&format!(
        "Postfix through /etc/aliases (then newaliases): runs as nobody unless the aliases file\nbelongs to {user}, and nobody cannot read this folder; prefer the route above.\n    helpdesk: \"|{command}\"\n\n"
    ));
    out.push_str(&format!(
        "procmail (~{user}/.procmailrc, as {user}):\n    :0 w\n    | {command}\n\nfdm (~{user}/.fdm.conf, as {user}):\n    action \"helpdesk\" pipe \"{command}\"\n    match all action \"helpdesk\"\n\n"
    ));
    out
}

/// For a mailbox or a Maildir: `helpdesk fetch` as a service (the shipped
/// unit, with this install's paths and user) or from cron, and how to try
/// the login first.
fn fetch_snippets(binary: &Path, config: &Path, user: &str, answers: &Answers) -> String {
    let helpdesk = format!("{} --config {}", binary.display(), config.display());
    let what = match answers.intake() {
        IntakeChoice::Imap => "mailbox",
        _ => "Maildir",
    };
    let mut out = format!(
        "helpdesk reads the {what} itself: run `helpdesk fetch` as {user}, either as a service that\nstays connected: contrib/helpdesk-fetch.service (in the helpdesk sources) copied to\n/etc/systemd/system/, with these lines in its [Service] section:\n    ExecStart={helpdesk} fetch\n    User={user}\n  then: systemctl daemon-reload && systemctl enable --now helpdesk-fetch.service\nor from cron (crontab -e -u {user}), every minute:\n    * * * * * {helpdesk} fetch --once\n\n"
    );
    if answers.intake() == IntakeChoice::Imap {
        out.push_str(&format!(
            "Try the login to {} first: {helpdesk} check --online\n\n",
            crate::commands::terminal::escape(&answers.imap_url())
        ));
    } else {
        out.push_str(&format!(
            "{user} must be able to write the Maildir's new/ and cur/: fetch moves what it handled to cur/.\n\n"
        ));
    }
    out
}

/// Refuses to prompt without a terminal.
pub(crate) fn require_terminal() -> anyhow::Result<()> {
    if std::io::stdin().is_terminal() {
        Ok(())
    } else {
        bail!(
            "standard input is not a terminal: run helpdesk setup in one, or use --non-interactive with flags (--dir, --domain, ...) or --answers FILE"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(domain: &str) -> Answers {
        Answers {
            dir: Some(PathBuf::from("desk")),
            domain: Some(domain.into()),
            transport: Some(TransportChoice::Folder),
            ..Answers::default()
        }
    }

    /// Every example mail setup writes is, for its folder's own config, an
    /// authenticated request its sender may make: whatever the MX layout,
    /// the method required and who the senders are.
    #[test]
    fn the_example_mails_are_allowed_requests() {
        let variants = [
            answers("Example.ORG"),
            Answers {
                position: Some(Position::Below),
                require: Some(Require::Dkim),
                authserv_id: Some("mx.google.com".into()),
                ..answers("example.net")
            },
            Answers {
                senders: vec!["Bob@Example.NET".into()],
                admins: vec!["root@other.example".into()],
                require: Some(Require::Spf),
                ..answers("example.net")
            },
            Answers {
                senders: vec!["*".into()],
                any_account: true,
                ..answers("example.com")
            },
            Answers {
                intake: Some(IntakeChoice::Imap),
                imap_password: Some("s3cret".into()),
                ..answers("example.com")
            },
            Answers {
                intake: Some(IntakeChoice::Maildir),
                maildir: Some("/var/mail/helpdesk".into()),
                ..answers("example.com")
            },
        ];
        for variant in variants {
            let parent = tempfile::tempdir().unwrap();
            let variant = Answers {
                dir: Some(parent.path().join("desk")),
                ..variant
            }
            .lower_cased();
            let (dir, _) = write(&variant, &mut |_| Changed::Keep).unwrap();
            let config = Config::load(&dir.join("config.yaml")).unwrap();
            let keywords = config.desk.keywords().unwrap();
            for name in ["help", "new_user", "reset_password", "storage"] {
                let raw = fs::read(dir.join(format!("examples/{name}.eml"))).unwrap();
                let mail = crate::mail::read(&raw, &config.sender_header);
                let decision = crate::decide::decide(&config, &keywords, &mail).unwrap();
                let access = decision.access.as_ref().map(ToString::to_string);
                assert!(
                    decision.authentication.is_yes()
                        && decision.access.as_ref().is_some_and(|a| a.is_allowed()),
                    "{name} for {variant:?}: {} / {access:?}\n{}",
                    decision.authentication,
                    String::from_utf8_lossy(&raw)
                );
                assert!(
                    !String::from_utf8_lossy(&raw).contains("example.com")
                        || variant.domain() == "example.com"
                );
            }
        }
    }

    /// The intake's answers go through `sources:`'s own validation, and
    /// its errors name setup's flags.
    #[test]
    fn intake_answers_are_validated_as_sources_are() {
        let imap = |url: &str| Answers {
            intake: Some(IntakeChoice::Imap),
            imap_url: Some(url.into()),
            ..answers("example.org")
        };
        assert_eq!(imap("imaps://127.0.0.1:9993/INBOX").valid_intake(), Ok(()));
        let error = imap("https://mail.example.org/INBOX")
            .valid_intake()
            .unwrap_err();
        assert!(
            error.starts_with("--imap-url \"https://mail.example.org/INBOX\": not an imap://"),
            "{error}"
        );
        assert!(
            imap("imaps://u:p@h/")
                .valid_intake()
                .unwrap_err()
                .starts_with("--imap-url")
        );
        let error = Answers {
            imap_user: Some("u".into()),
            ..answers("example.org")
        }
        .valid_intake()
        .unwrap_err();
        assert!(
            error.contains("--imap-user is for --intake imap"),
            "{error}"
        );
        let error = Answers {
            intake: Some(IntakeChoice::Maildir),
            ..answers("example.org")
        }
        .valid_intake()
        .unwrap_err();
        assert!(error.contains("needs --maildir"), "{error}");
        let yaml = config_yaml(&imap("imaps://mx.example.org/Help%20desk"), None);
        assert!(yaml.contains("position: below"), "{yaml}");
        assert!(yaml.contains("password_file: \"imap.secret\""), "{yaml}");
        let mta = config_yaml(&answers("example.org"), None);
        assert!(
            !mta.contains("sources:") && !mta.contains("Gmail and"),
            "{mta}"
        );
    }

    #[test]
    fn domains_are_lower_cased() {
        let given = Answers {
            address: Some("Help.Desk@Example.ORG".into()),
            senders: vec!["*@Example.ORG".into(), "Bob@Sub.Example.ORG".into()],
            admins: vec!["Root@Example.ORG".into()],
            authserv_id: Some("MX.Example.ORG".into()),
            ..answers(" Example.ORG ")
        }
        .lower_cased();
        assert_eq!(given.domain(), "example.org");
        assert_eq!(given.address(), "Help.Desk@example.org");
        assert_eq!(given.senders(), ["*@example.org", "Bob@sub.example.org"]);
        assert_eq!(given.admins(), ["Root@example.org"]);
        assert_eq!(given.authserv_id(), "mx.example.org");
        let yaml = config_yaml(&given, None);
        assert!(!yaml.contains("Example"), "{yaml}");
    }
}
