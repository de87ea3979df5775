//! `config.yaml` → a validated `Config` the rest of the program trusts.
//!
//! Relative paths are resolved here, once: `helpdesk_dir` and `state_dir`
//! against the config file's folder, `ansible.inventory` against
//! `helpdesk_dir`. Unknown keys are errors, so a typo cannot silently fall
//! back to a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::desk::maintenance::MaintenanceConfig;
use crate::desk::sources::{self, RawSource, Source};
use crate::desk::{Desk, Located};

/// Everything the pipeline needs to know, validated.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The file this came from; `None` for the built-in defaults.
    pub file: Option<PathBuf>,
    pub desk: Desk,
    pub sender_header: String,
    pub ansible: Ansible,
    /// Run logs and temporary vars files live here.
    pub state_dir: PathBuf,
    /// `metrics_file:` the Prometheus text file, the one file helpdesk
    /// writes for others to read (0644); by default `state_dir/metrics.prom`,
    /// which the 0700 state folder keeps from everyone but its owner.
    pub metrics_file: PathBuf,
    /// The helpdesk's own address: From of replies, and its X-Loop mark.
    pub helpdesk_address: Option<String>,
    /// `control_address:` mail sent to it (To or Cc) is a list of
    /// commands for operators (`delivery::control`), not a request.
    pub control_address: Option<String>,
    /// How replies leave; `None` when config.yaml has no `mail:`.
    pub mail: Option<MailSettings>,
    /// How a sender proves the From address; `None`: nothing is proven.
    pub authentication: Option<Authentication>,
    /// Who may ask for what; `None`: nobody may ask for anything.
    pub access: Option<Vec<Grant>>,
    /// `approvals:` requests that wait for someone else's sign-off.
    pub approvals: Vec<ApprovalRule>,
    /// `sources:` the mailboxes `helpdesk fetch` reads.
    pub sources: Vec<Source>,
    /// `maintenance:` providers whose mail is a maintenance notice.
    pub maintenance: MaintenanceConfig,
    pub limits: Limits,
    pub delivery: Delivery,
    /// Playbooks running at once, across all deliveries.
    pub max_parallel_runs: usize,
    /// How long to wait for the journal when other deliveries hold it.
    pub journal_timeout: Duration,
    pub archive: Archive,
}

/// `delivery:` what `run` does once the message is safely spooled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Delivery {
    /// Run the playbook, then exit.
    #[default]
    Inline,
    /// Exit at once and leave the run to a detached `helpdesk retry` (or a
    /// `helpdesk worker` service).
    Queue,
}

/// Raw messages kept after they were handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Archive {
    /// Larger messages are not kept (the journal row stays).
    pub max_size: u64,
    pub keep: Duration,
}

/// The `authentication:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authentication {
    /// Authentication-Results headers count only with one of these ids.
    pub authserv_id: Vec<String>,
    /// Hosts whose `Received: ... by <host>` marks the trusted MX; by
    /// default the authserv-ids.
    pub received_by: Vec<String>,
    pub require: Require,
    /// Where the trusted MX writes its own Authentication-Results; `None`:
    /// not set in config.yaml, [`Position::Above`] is assumed (`check`
    /// says so).
    pub position: Option<Position>,
}

impl Authentication {
    /// The layout in effect.
    pub(crate) fn position(&self) -> Position {
        self.position.unwrap_or_default()
    }
}

/// `authentication.position`: where the trusted MX puts its own
/// Authentication-Results relative to its own `Received` header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Position {
    /// Above it (RFC 8601 section 4): Postfix with OpenDKIM/OpenDMARC at
    /// index 0, rspamd.
    #[default]
    Above,
    /// Directly below it, above the headers that came with the mail:
    /// Gmail. (Microsoft 365 writes no authserv-id, so it cannot be trusted yet.)
    Below,
}

impl Position {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Above => "above",
            Self::Below => "below",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Require {
    Dmarc,
    Dkim,
    Spf,
    /// A closed internal relay: the From address is taken as it is.
    None,
}

/// One access grant: these senders may ask for these request types.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Grant {
    /// Request type names, or `*`.
    pub requests: Vec<String>,
    /// Exact addresses, `*@domain`, or `*`.
    pub senders: Vec<String>,
    #[serde(default)]
    pub scope: Scope,
}

/// One `approvals:` rule: these senders' requests of these types run only
/// once `required` distinct approvers named here said yes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApprovalRule {
    /// Request type names, or `*`.
    pub requests: Vec<String>,
    /// Whose requests wait: exact addresses, `*@domain`, or `*`.
    pub senders: Vec<String>,
    /// Who may approve: exact addresses (who are mailed) or `*@domain`.
    pub approvers: Vec<String>,
    pub required: u32,
    /// How long a request waits before it ends unapproved.
    pub expires: Duration,
}

impl ApprovalRule {
    /// Whether a request of `request_type` from `sender` waits for this
    /// rule's approvers.
    pub(crate) fn covers(&self, request_type: &str, sender: &str) -> bool {
        self.requests.iter().any(|r| r == "*" || r == request_type)
            && self
                .senders
                .iter()
                .any(|p| crate::decide::trust::sender_matches(p, sender))
    }

    /// The approvers that are one address each: who the approval request
    /// mail goes to.
    pub(crate) fn mailed(&self) -> impl Iterator<Item = &str> {
        self.approvers
            .iter()
            .map(String::as_str)
            .filter(|a| !a.contains('*'))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprovalRule {
    requests: Vec<String>,
    #[serde(default = "everyone")]
    senders: Vec<String>,
    approvers: Vec<String>,
    #[serde(default = "one")]
    required: u32,
    expires: Option<String>,
}

fn everyone() -> Vec<String> {
    vec!["*".into()]
}

const fn one() -> u32 {
    1
}

/// How long a request waits for approval unless `expires:` says.
const DEFAULT_EXPIRES: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scope {
    #[default]
    Any,
    /// May only act on their own account: `targets`, when set, must be
    /// the sender's local part.
    #[serde(rename = "self")]
    OwnAccount,
}

/// Bounds on what a mail may bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Bytes; larger messages run nothing.
    pub message_size: u64,
    /// Characters in one captured value.
    pub value_length: usize,
    /// Variables handed to a playbook.
    pub variables: usize,
    /// Playbook runs one authenticated sender may start in an hour; more
    /// are refused (outcome `limited`).
    pub runs_per_sender_per_hour: u32,
    /// CPU time, memory (address space) and wall-clock time the decision
    /// of one mail may take before anything of it is authenticated; a
    /// mail over one of them is quarantined (see `delivery`).
    pub decision_cpu: Duration,
    pub decision_memory: u64,
    pub decision_wall: Duration,
    /// How long a message whose playbook keeps failing to start stays in
    /// the spool (queue mode) before it is set aside (quarantined), like
    /// Postfix's `maximal_queue_lifetime`.
    pub queue_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            message_size: 10 * 1024 * 1024,
            value_length: 1024,
            variables: 100,
            runs_per_sender_per_hour: 20,
            decision_cpu: Duration::from_secs(5),
            // Address space, not resident memory: the program and its
            // libraries take about 16 MiB of it before reading anything,
            // and a 10 MiB plain-text mail decides in under 192 MiB.
            decision_memory: 512 * 1024 * 1024,
            decision_wall: Duration::from_secs(60),
            queue_lifetime: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

/// Below this no decision fits in `limits.decision_memory`: the program
/// alone maps about 16 MiB (32 MiB built without optimisation).
const MIN_DECISION_MEMORY: u64 = 32 * 1024 * 1024;

/// The `mail:` section.
#[derive(Debug, Clone)]
pub(crate) struct MailSettings {
    pub transport: Transport,
    pub reply_limit_per_hour: u32,
    /// Request types whose playbooks mail the result themselves.
    pub no_result_reply: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transport {
    Smtp(Smtp),
    /// The local sendmail command.
    Sendmail(PathBuf),
    /// Replies written as .eml files into a folder.
    Folder(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<PasswordSource>,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Security {
    /// Implicit TLS (SMTPS, port 465).
    Tls,
    /// STARTTLS, required (submission, port 587).
    Starttls,
    /// Plain text, for a relay on loopback.
    None,
}

impl Security {
    /// The port its name goes with: 465 for SMTPS, 587 for submission,
    /// 25 for a plain relay.
    pub(crate) fn default_port(self) -> u16 {
        match self {
            Self::Tls => 465,
            Self::Starttls => 587,
            Self::None => 25,
        }
    }
}

/// Where the SMTP password is read from, at send time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PasswordSource {
    File(PathBuf),
    Env(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Ansible {
    /// Program name (looked up on PATH) or path.
    pub command: String,
    pub inventory: String,
    pub timeout: Duration,
    pub extra_args: Vec<String>,
    /// Extra environment for ansible-playbook (e.g. HOME or ANSIBLE_CONFIG
    /// when the MTA runs helpdesk as a user without a home).
    pub environment: Vec<(String, String)>,
}

/// What is wrong with config.yaml, and where.
pub(crate) type ConfigError = Located<ConfigErrorKind>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigErrorKind {
    #[error("cannot read config: {0}")]
    Read(std::io::Error),
    /// Not YAML, or not config.yaml's keys and types (the parser's words).
    #[error("{0}")]
    Yaml(String),
    /// A value the parser took but that cannot work.
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    helpdesk_dir: Option<PathBuf>,
    sender_header: Option<String>,
    state_dir: Option<PathBuf>,
    metrics_file: Option<PathBuf>,
    #[serde(default)]
    ansible: RawAnsible,
    helpdesk_address: Option<String>,
    control_address: Option<String>,
    mail: Option<RawMail>,
    authentication: Option<RawAuthentication>,
    access: Option<Vec<Grant>>,
    #[serde(default)]
    approvals: Vec<RawApprovalRule>,
    #[serde(default)]
    sources: Vec<RawSource>,
    maintenance: Option<crate::desk::maintenance::RawMaintenance>,
    #[serde(default)]
    limits: RawLimits,
    delivery: Option<Delivery>,
    max_parallel_runs: Option<usize>,
    journal_timeout: Option<String>,
    #[serde(default)]
    archive: RawArchive,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArchive {
    max_size: Option<String>,
    keep: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthentication {
    #[serde(default)]
    authserv_id: OneOrMany,
    #[serde(default)]
    received_by: OneOrMany,
    require: Option<Require>,
    position: Option<Position>,
}

/// `key: value` or `key: [value, ...]`.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
        .into_iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    message_size: Option<String>,
    value_length: Option<usize>,
    variables: Option<usize>,
    runs_per_sender_per_hour: Option<u32>,
    decision_cpu: Option<String>,
    decision_memory: Option<String>,
    decision_wall: Option<String>,
    queue_lifetime: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    transport: Option<String>,
    smtp: Option<RawSmtp>,
    sendmail: Option<PathBuf>,
    folder: Option<PathBuf>,
    reply_limit_per_hour: Option<u32>,
    #[serde(default)]
    no_result_reply: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<u16>,
    security: Option<Security>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    ca_file: Option<PathBuf>,
    timeout: Option<String>,
    /// Refused: passwords do not belong in config.yaml.
    password: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnsible {
    command: Option<String>,
    inventory: Option<String>,
    timeout: Option<String>,
    extra_args: Option<Vec<String>>,
    #[serde(default)]
    environment: std::collections::BTreeMap<String, String>,
}

const DEFAULT_COMMAND: &str = "ansible-playbook";
const DEFAULT_INVENTORY: &str = "inventory";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DEFAULT_SENDER_HEADER: &str = "From";
const DEFAULT_JOURNAL_TIMEOUT: Duration = Duration::from_secs(60);
/// `metrics_file` unless set: in the state folder.
const METRICS_FILE: &str = "metrics.prom";
const DEFAULT_ARCHIVE: Archive = Archive {
    max_size: 10 * 1024 * 1024,
    keep: Duration::from_secs(30 * 86400),
};

impl Config {
    /// The configuration used when no config file is given: the built-in
    /// helpdesk folder, good for `parse` but not for `run`.
    pub(crate) fn builtin() -> Self {
        Self {
            file: None,
            desk: Desk::Builtin,
            sender_header: DEFAULT_SENDER_HEADER.into(),
            ansible: Ansible {
                command: DEFAULT_COMMAND.into(),
                inventory: Desk::Builtin.display(DEFAULT_INVENTORY),
                timeout: DEFAULT_TIMEOUT,
                extra_args: Vec::new(),
                environment: Vec::new(),
            },
            state_dir: PathBuf::from("state"),
            metrics_file: PathBuf::from("state").join(METRICS_FILE),
            helpdesk_address: None,
            control_address: None,
            mail: None,
            // The built-in defaults are a demonstration for `parse`: every
            // sender counts as proven and allowed. `run` needs a file.
            authentication: Some(Authentication {
                authserv_id: Vec::new(),
                received_by: Vec::new(),
                require: Require::None,
                position: None,
            }),
            access: Some(vec![Grant {
                requests: vec!["*".into()],
                senders: vec!["*".into()],
                scope: Scope::Any,
            }]),
            approvals: Vec::new(),
            sources: Vec::new(),
            maintenance: MaintenanceConfig::default(),
            limits: Limits::default(),
            delivery: Delivery::Inline,
            max_parallel_runs: 2,
            journal_timeout: DEFAULT_JOURNAL_TIMEOUT,
            archive: DEFAULT_ARCHIVE,
        }
    }

    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let unreadable = |cause| ConfigError::in_file(&shown, ConfigErrorKind::Read(cause));
        let text = std::fs::read_to_string(path).map_err(unreadable)?;
        let absolute = std::path::absolute(path).map_err(unreadable)?;
        let base = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
        Self::from_yaml(&text, &shown, &base).map(|mut config| {
            config.file = Some(absolute);
            config
        })
    }

    /// Parses config text; relative paths resolve against `base`.
    pub(crate) fn from_yaml(text: &str, shown: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| yaml_error(shown, &e))?
        };
        Self::from_raw(raw, base)
            .map_err(|message| ConfigError::in_file(shown, ConfigErrorKind::Invalid(message)))
    }

    /// Validates and resolves what serde read; the first wrong value is
    /// the error.
    fn from_raw(raw: RawConfig, base: &Path) -> Result<Self, String> {
        let helpdesk_dir = normalize(&base.join(raw.helpdesk_dir.unwrap_or_else(|| ".".into())));
        if !helpdesk_dir.is_dir() {
            return Err(format!(
                "helpdesk_dir {} is not a folder: create it or fix the path (relative paths start at the config file's folder)",
                helpdesk_dir.display()
            ));
        }
        let sender_header = sender_header(raw.sender_header)?;
        let ansible = ansible(raw.ansible, base, &helpdesk_dir)?;
        let helpdesk_address = raw.helpdesk_address.map(helpdesk_address).transpose()?;
        let control_address = raw
            .control_address
            .map(|a| helpdesk_address_for("control_address", a))
            .transpose()?
            .map(|a| a.to_lowercase());
        let mail = raw
            .mail
            .map(|m| mail_settings(m, base, helpdesk_address.is_some()))
            .transpose()?;
        let authentication = raw.authentication.map(authentication).transpose()?;
        if let Some(grants) = &raw.access {
            check_grants(grants)?;
        }
        let approvals = approval_rules(raw.approvals)?;
        let sources = sources::sources(raw.sources, base)?;
        let maintenance =
            crate::desk::maintenance::maintenance(raw.maintenance, base, &helpdesk_dir)?;
        let limits = limits(raw.limits)?;
        let max_parallel_runs = raw.max_parallel_runs.unwrap_or(2);
        if max_parallel_runs == 0 {
            return Err("max_parallel_runs must be at least 1".into());
        }
        let journal_timeout = duration(
            "journal_timeout",
            raw.journal_timeout,
            DEFAULT_JOURNAL_TIMEOUT,
        )?;
        let archive = archive(raw.archive)?;
        let state_dir = normalize(&base.join(raw.state_dir.unwrap_or_else(|| "state".into())));
        Ok(Self {
            file: None,
            helpdesk_address,
            control_address,
            mail,
            authentication,
            access: raw.access,
            approvals,
            sources,
            maintenance,
            limits,
            delivery: raw.delivery.unwrap_or_default(),
            max_parallel_runs,
            journal_timeout,
            archive,
            desk: Desk::Folder(helpdesk_dir),
            sender_header,
            ansible,
            metrics_file: normalize(&match raw.metrics_file {
                Some(path) => base.join(path),
                None => state_dir.join(METRICS_FILE),
            }),
            state_dir,
        })
    }
}

fn sender_header(raw: Option<String>) -> Result<String, String> {
    let sender_header = raw.unwrap_or_else(|| DEFAULT_SENDER_HEADER.into());
    if sender_header.is_empty()
        || !sender_header
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b':')
    {
        return Err(format!(
            "sender_header {sender_header:?} is not a header name: use e.g. From or X-Original-Sender"
        ));
    }
    Ok(sender_header)
}

/// `ansible:`; a command with a slash resolves against `base`, the
/// inventory against the helpdesk folder.
fn ansible(raw: RawAnsible, base: &Path, helpdesk_dir: &Path) -> Result<Ansible, String> {
    let timeout = duration("ansible.timeout", raw.timeout, DEFAULT_TIMEOUT)?;
    let command = raw.command.unwrap_or_else(|| DEFAULT_COMMAND.into());
    if command.trim().is_empty() {
        return Err("ansible.command is empty: name ansible-playbook or give its path".into());
    }
    // A bare name is looked up on PATH; anything with a slash is a path.
    let command = if command.contains('/') {
        normalize(&base.join(&command)).display().to_string()
    } else {
        command
    };
    let inventory = raw.inventory.unwrap_or_else(|| DEFAULT_INVENTORY.into());
    let inventory = if inventory.contains(',') {
        // An inline host list such as `localhost,` is passed as is.
        inventory
    } else {
        normalize(&helpdesk_dir.join(inventory))
            .display()
            .to_string()
    };
    Ok(Ansible {
        command,
        inventory,
        timeout,
        extra_args: raw.extra_args.unwrap_or_default(),
        environment: raw.environment.into_iter().collect(),
    })
}

fn helpdesk_address(raw: String) -> Result<String, String> {
    helpdesk_address_for("helpdesk_address", raw)
}

/// The address `key` gives, checked.
fn helpdesk_address_for(key: &str, raw: String) -> Result<String, String> {
    let address = raw.trim().to_owned();
    match address.parse::<lettre::Address>() {
        Ok(_) => Ok(address),
        Err(e) => Err(format!(
            "{key} {address:?} is not an address ({e}): write e.g. helpdesk@example.com"
        )),
    }
}

fn archive(raw: RawArchive) -> Result<Archive, String> {
    Ok(Archive {
        max_size: match raw.max_size {
            None => DEFAULT_ARCHIVE.max_size,
            Some(text) => parse_size(&text).ok_or_else(|| {
                format!("archive.max_size {text:?} is not a size: write e.g. 10MiB")
            })?,
        },
        keep: duration("archive.keep", raw.keep, DEFAULT_ARCHIVE.keep)?,
    })
}

pub(crate) fn duration(
    key: &str,
    text: Option<String>,
    default: Duration,
) -> Result<Duration, String> {
    let Some(text) = text else { return Ok(default) };
    let parsed = humantime::parse_duration(&text)
        .map_err(|e| format!("{key} {text:?}: {e}: write a duration such as 90s, 30m or 2h"))?;
    if parsed.is_zero() {
        return Err(format!("{key} must be more than zero"));
    }
    Ok(parsed)
}

fn mail_settings(raw: RawMail, base: &Path, has_address: bool) -> Result<MailSettings, String> {
    if !has_address {
        return Err("mail: needs helpdesk_address (the From of replies), e.g. helpdesk_address: helpdesk@example.com".into());
    }
    let transport = match raw.transport.as_deref().unwrap_or("smtp") {
        "smtp" => Transport::Smtp(smtp(raw.smtp.unwrap_or_default(), base)?),
        "sendmail" => Transport::Sendmail(
            raw.sendmail
                .map(|p| normalize(&base.join(p)))
                .unwrap_or_else(|| PathBuf::from("/usr/sbin/sendmail")),
        ),
        "folder" => Transport::Folder(normalize(
            &base.join(raw.folder.unwrap_or_else(|| PathBuf::from("replies"))),
        )),
        other => {
            return Err(format!(
                "mail.transport {other:?} is not one of smtp, sendmail, folder"
            ));
        }
    };
    Ok(MailSettings {
        transport,
        reply_limit_per_hour: raw.reply_limit_per_hour.unwrap_or(10),
        no_result_reply: raw.no_result_reply,
    })
}

fn smtp(raw: RawSmtp, base: &Path) -> Result<Smtp, String> {
    if raw.password.is_some() {
        return Err("mail.smtp.password: passwords do not belong in config.yaml: put it in a file only helpdesk can read (chmod 600) and name it in password_file, or name an environment variable in password_env".into());
    }
    let security = raw.security.unwrap_or(Security::Starttls);
    let password = match (raw.password_file, raw.password_env) {
        (Some(_), Some(_)) => {
            return Err("mail.smtp: give password_file or password_env, not both".into());
        }
        (Some(file), None) => Some(PasswordSource::File(normalize(&base.join(file)))),
        (None, Some(var)) => Some(PasswordSource::Env(var)),
        (None, None) => None,
    };
    if raw.username.is_some() != password.is_some() {
        return Err(
            "mail.smtp: username and a password (password_file or password_env) go together".into(),
        );
    }
    Ok(Smtp {
        host: raw.host.unwrap_or_else(|| "127.0.0.1".into()),
        port: raw.port.unwrap_or(security.default_port()),
        security,
        username: raw.username,
        password,
        ca_file: raw.ca_file.map(|p| normalize(&base.join(p))),
        timeout: duration("mail.smtp.timeout", raw.timeout, Duration::from_secs(30))?,
    })
}

fn authentication(raw: RawAuthentication) -> Result<Authentication, String> {
    let require = raw.require.unwrap_or(Require::Dmarc);
    let authserv_id = raw.authserv_id.into_vec();
    if require != Require::None && authserv_id.is_empty() {
        return Err("authentication.authserv_id is empty: name the host that writes the Authentication-Results you trust (your MX, or mx.google.com for mail fetched from Gmail), or set require: none for a closed internal relay".into());
    }
    let received_by = match raw.received_by.into_vec() {
        hosts if hosts.is_empty() => authserv_id.clone(),
        hosts => hosts,
    };
    Ok(Authentication {
        authserv_id,
        received_by,
        require,
        position: raw.position,
    })
}

fn check_grants(grants: &[Grant]) -> Result<(), String> {
    for (number, grant) in grants.iter().enumerate() {
        let number = number + 1;
        if grant.requests.is_empty() || grant.senders.is_empty() {
            return Err(format!(
                "access grant {number} needs both requests: and senders:"
            ));
        }
        for sender in &grant.senders {
            if !is_address_pattern(sender) {
                return Err(format!(
                    "access grant {number}: sender {sender:?} is not an address, *@domain or *"
                ));
            }
        }
    }
    Ok(())
}

/// An exact address, `*@domain` or `*`.
fn is_address_pattern(pattern: &str) -> bool {
    pattern == "*"
        || pattern
            .strip_prefix("*@")
            .is_some_and(|d| !d.is_empty() && !d.contains(['@', '*']))
        || (pattern.contains('@')
            && !pattern.contains('*')
            && pattern.parse::<lettre::Address>().is_ok())
}

/// Validates the `approvals:` rules, numbered from 1 in the errors.
fn approval_rules(raw: Vec<RawApprovalRule>) -> Result<Vec<ApprovalRule>, String> {
    let mut rules = Vec::with_capacity(raw.len());
    for (number, rule) in raw.into_iter().enumerate() {
        let number = number + 1;
        let at = format!("approvals rule {number}");
        if rule.requests.is_empty() || rule.approvers.is_empty() || rule.senders.is_empty() {
            return Err(format!(
                "{at} needs requests: and approvers: (and senders:, when given, not empty)"
            ));
        }
        for (key, pattern) in rule
            .senders
            .iter()
            .map(|s| ("sender", s))
            .chain(rule.approvers.iter().map(|a| ("approver", a)))
        {
            if !is_address_pattern(pattern) || (key == "approver" && pattern == "*") {
                return Err(format!(
                    "{at}: {key} {pattern:?} is not an address or *@domain{}",
                    if key == "sender" { " or *" } else { "" }
                ));
            }
        }
        let exact = rule.approvers.iter().filter(|a| !a.contains('*')).count();
        let wildcard = exact < rule.approvers.len();
        if rule.required == 0
            || (!wildcard && usize::try_from(rule.required).unwrap_or(usize::MAX) > exact)
        {
            return Err(format!(
                "{at}: required: {} cannot be met: it must be at least 1 and at most the {exact} approver address(es) named",
                rule.required
            ));
        }
        let expires = duration(&format!("{at}: expires"), rule.expires, DEFAULT_EXPIRES)?;
        rules.push(ApprovalRule {
            requests: rule.requests,
            senders: rule.senders,
            approvers: rule.approvers,
            required: rule.required,
            expires,
        });
    }
    Ok(rules)
}

fn limits(raw: RawLimits) -> Result<Limits, String> {
    let defaults = Limits::default();
    let message_size = match raw.message_size {
        None => defaults.message_size,
        Some(text) => parse_size(&text).ok_or_else(|| {
            format!(
                "limits.message_size {text:?} is not a size: write e.g. 10MiB, 500KiB or 2000000"
            )
        })?,
    };
    let runs_per_sender_per_hour = raw
        .runs_per_sender_per_hour
        .unwrap_or(defaults.runs_per_sender_per_hour);
    if runs_per_sender_per_hour == 0 {
        return Err(
            "limits.runs_per_sender_per_hour is 0, which would refuse every request: give at least 1 (to stop all runs, remove the access: grants)"
                .into(),
        );
    }
    let decision_memory = match raw.decision_memory {
        None => defaults.decision_memory,
        Some(text) => parse_size(&text).ok_or_else(|| {
            format!("limits.decision_memory {text:?} is not a size: write e.g. 512MiB or 1GiB")
        })?,
    };
    if decision_memory < MIN_DECISION_MEMORY {
        return Err(format!(
            "limits.decision_memory is {} MiB, less than the program itself needs, so every mail would be quarantined: give at least {} MiB (default 512MiB)",
            decision_memory / (1024 * 1024),
            MIN_DECISION_MEMORY / (1024 * 1024)
        ));
    }
    Ok(Limits {
        message_size,
        value_length: raw.value_length.unwrap_or(defaults.value_length),
        variables: raw.variables.unwrap_or(defaults.variables),
        runs_per_sender_per_hour,
        decision_cpu: duration(
            "limits.decision_cpu",
            raw.decision_cpu,
            defaults.decision_cpu,
        )?,
        decision_memory,
        decision_wall: duration(
            "limits.decision_wall",
            raw.decision_wall,
            defaults.decision_wall,
        )?,
        queue_lifetime: duration(
            "limits.queue_lifetime",
            raw.queue_lifetime,
            defaults.queue_lifetime,
        )?,
    })
}

/// `10MiB`, `10 MB` (taken as MiB), `512KiB`, or plain bytes.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(factor)
}

fn yaml_error(shown: &str, error: &serde_saphyr::Error) -> ConfigError {
    let location = error.location();
    let message = error.to_string();
    // The crate puts the location into its message too; keep one copy.
    let first = message.lines().next().unwrap_or_default();
    // The crate starts its message with the location again.
    let message = first
        .strip_prefix("error: ")
        .unwrap_or(first)
        .split_once(": ")
        .filter(|(head, _)| head.starts_with("line "))
        .map_or(first, |(_, rest)| rest)
        .to_owned();
    ConfigError {
        line: Some(location.as_ref().map_or(0, |l| l.line())),
        column: Some(location.as_ref().map_or(0, |l| l.column())),
        ..ConfigError::in_file(shown, ConfigErrorKind::Yaml(message))
    }
}

/// Removes `.` and `..` components without touching the file system, so
/// paths print the way a person would write them.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let base = std::env::temp_dir();
        Config::from_yaml(text, "config.yaml", &base)
    }

    #[test]
    fn defaults_resolve_against_the_config_folder() {
        let config = load("").unwrap_or_else(|e| panic!("{e}"));
        let base = normalize(&std::env::temp_dir());
        assert_eq!(config.desk, Desk::Folder(base.clone()));
        assert_eq!(
            config.ansible.inventory,
            base.join("inventory").display().to_string()
        );
        assert_eq!(config.ansible.timeout, Duration::from_secs(1800));
        assert_eq!(config.sender_header, "From");
        assert_eq!(config.state_dir, base.join("state"));
        assert_eq!(config.metrics_file, base.join("state/metrics.prom"));
    }

    #[test]
    fn metrics_file_resolves_against_the_config_folder() {
        let base = normalize(&std::env::temp_dir());
        let config = load("state_dir: /var/lib/helpdesk\nmetrics_file: metrics/helpdesk.prom\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.metrics_file, base.join("metrics/helpdesk.prom"));
        let config = load("state_dir: /var/lib/helpdesk\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.metrics_file,
            PathBuf::from("/var/lib/helpdesk/metrics.prom")
        );
    }

    #[test]
    fn full_example() {
        let config = load("helpdesk_dir: .\nsender_header: X-Original-Sender\nansible:\n  command: ./bin/ansible-playbook\n  inventory: hosts.ini\n  timeout: 90s\n  extra_args: [--diff]\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.sender_header, "X-Original-Sender");
        assert_eq!(config.ansible.timeout, Duration::from_secs(90));
        assert!(config.ansible.command.ends_with("/bin/ansible-playbook"));
        assert!(config.ansible.command.starts_with('/'));
        assert_eq!(config.ansible.extra_args, vec!["--diff".to_owned()]);
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let err = load("sender_header: From\nansible:\n  timout: 5m\n").unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("config.yaml:3:"), "{shown}");
        assert!(shown.contains("timout"), "{shown}");
    }

    #[test]
    fn mail_section() {
        let config = load("helpdesk_address: helpdesk@example.com\nmail:\n  transport: smtp\n  smtp: {host: mx.example.com, security: tls, username: hd, password_file: smtp.secret}\n  no_result_reply: [storage]\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let mail = config.mail.unwrap_or_else(|| panic!("no mail"));
        let Transport::Smtp(smtp) = mail.transport else {
            panic!("not smtp")
        };
        assert_eq!(smtp.port, 465);
        assert_eq!(
            smtp.password,
            Some(PasswordSource::File(normalize(
                &std::env::temp_dir().join("smtp.secret")
            )))
        );
        assert_eq!(mail.reply_limit_per_hour, 10);
        assert_eq!(mail.no_result_reply, vec!["storage".to_owned()]);

        let err = load("helpdesk_address: h@example.com\nmail:\n  smtp: {password: hunter2}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("passwords do not belong in config.yaml"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let err = load("mail:\n  transport: folder\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs helpdesk_address"), "{err}");
        let err = load("helpdesk_address: not an address\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not an address"), "{err}");
    }

    #[test]
    fn trust_sections() {
        let config = load("authentication:\n  authserv_id: MX.example.com\n  require: dkim\naccess:\n  - requests: ['*']\n    senders: ['*@example.com']\n    scope: self\n  - {requests: [manage_users], senders: [admin@example.com]}\nlimits: {message_size: 2MiB}\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let auth = config.authentication.unwrap();
        assert_eq!(auth.authserv_id, vec!["mx.example.com".to_owned()]);
        assert_eq!(auth.received_by, auth.authserv_id);
        assert_eq!(auth.require, Require::Dkim);
        assert_eq!(auth.position, None);
        assert_eq!(auth.position(), Position::Above);
        for (text, position) in [("above", Position::Above), ("below", Position::Below)] {
            let config = load(&format!(
                "authentication: {{authserv_id: mx.google.com, position: {text}}}\n"
            ))
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(config.authentication.unwrap().position, Some(position));
        }
        let err = load("authentication: {authserv_id: mx.example.com, position: sideways}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("above") && err.contains("below"), "{err}");
        let access = config.access.unwrap();
        assert_eq!(access[0].scope, Scope::OwnAccount);
        assert_eq!(access[1].scope, Scope::Any);
        assert_eq!(config.limits.message_size, 2 * 1024 * 1024);

        let err = load("authentication: {require: dmarc}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("authserv_id is empty"), "{err}");
        let err = load("access:\n  - {requests: ['*'], senders: ['example.com']}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not an address, *@domain or *"), "{err}");
        let err = load("access:\n  - {requests: ['*'], senders: ['*'], scope: own}\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config.yaml:2:"), "{err}");
        assert_eq!(parse_size("10MiB"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("10 kb"), Some(10 * 1024));
        assert_eq!(parse_size("lots"), None);
    }

    #[test]
    fn runs_per_sender_per_hour_is_validated() {
        let default = load("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(default.limits.runs_per_sender_per_hour, 20);
        let two = load("limits: {runs_per_sender_per_hour: 2}\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(two.limits.runs_per_sender_per_hour, 2);
        assert_eq!(two.limits.value_length, Limits::default().value_length);
        let err = load("limits: {runs_per_sender_per_hour: 0}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("give at least 1"), "{err}");
        for bad in ["-1", "lots", "1.5"] {
            assert!(
                load(&format!("limits: {{runs_per_sender_per_hour: {bad}}}\n")).is_err(),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn decision_budgets_are_validated() {
        let default = load("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(default.limits.decision_cpu, Duration::from_secs(5));
        assert_eq!(default.limits.decision_memory, 512 * 1024 * 1024);
        assert_eq!(default.limits.decision_wall, Duration::from_secs(60));
        let set = load("limits: {decision_cpu: 10ms, decision_memory: 1GiB, decision_wall: 2m}\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.limits.decision_cpu, Duration::from_millis(10));
        assert_eq!(set.limits.decision_memory, 1024 * 1024 * 1024);
        assert_eq!(set.limits.decision_wall, Duration::from_secs(120));
        for (yaml, says) in [
            ("decision_cpu: soon", "limits.decision_cpu \"soon\""),
            (
                "decision_cpu: 0s",
                "limits.decision_cpu must be more than zero",
            ),
            (
                "decision_wall: 0s",
                "limits.decision_wall must be more than zero",
            ),
            ("decision_memory: lots", "write e.g. 512MiB"),
            ("decision_memory: 8MiB", "give at least 32 MiB"),
        ] {
            let err = load(&format!("limits: {{{yaml}}}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{yaml}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }

    #[test]
    fn bad_values_say_what_to_do() {
        let err = load("ansible:\n  timeout: soon\n").unwrap_err().to_string();
        assert!(err.contains("write a duration such as"), "{err}");
        let err = load("helpdesk_dir: /nonexistent/helpdesk\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a folder"), "{err}");
        let err = load("sender_header: 'X Bad: header'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a header name"), "{err}");
    }
}
