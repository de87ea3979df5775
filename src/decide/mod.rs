//! **Stages 2–4, decide: `Mail` → `Decision`.** Owns classify (the
//! subject against `desk::keywords`), extract (the body through the request
//! type's `desk::phrasebook`), trust (`authres`, `trust`: is the sender
//! proven and granted this request), the loop rules (`loops`) and which
//! values are secret (`redact`). Plain functions of the mail and the desk:
//! may not start processes, send mail or write to the state folder, so that
//! `parse` and `replay` run exactly this code with no side effects.
//!
//! The decision for one mail, passed from the pipeline's stages to its edges.
//!
//! `decide` is the whole of `parse`: classify the subject, extract the
//! variables, check who is asking (`trust`), find the playbook. `run` takes the same `Decision` and hands
//! it to `ansible`, so the dry run and the real run cannot drift apart.

pub(crate) mod authres;
pub(crate) mod loops;
pub(crate) mod redact;
pub(crate) mod trust;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::decide::redact::Secrets;
use crate::decide::trust::{Access, Authenticated};
use crate::desk::config::Config;
use crate::desk::keywords::{Classification, Keywords};
use crate::desk::phrasebook::{Evidence, Input, Invalid, Missing, Phrasebook};
use crate::desk::{DeskError, HELP, Playbook};
use crate::mail::Mail;

/// What the helpdesk will do with a mail.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    pub request_type: Option<String>,
    /// `None` for unclassified mail and for `help`, which runs no playbook.
    pub playbook: Option<Playbook>,
    pub vars: Map<String, Value>,
    /// Why there is no request type.
    /// (Also set, with the type kept, when required information is missing.)
    pub reason: Option<String>,
    pub classification: Option<Classification>,
    pub evidence: Vec<Evidence>,
    /// Required variables the mail did not give: nothing runs.
    pub missing: Vec<Missing>,
    /// Captured values that break a pattern or limit: nothing runs.
    pub invalid: Vec<Invalid>,
    /// Variables the phrasebook lists under `*secret*`.
    pub secret_names: Vec<String>,
    pub authentication: Authenticated,
    /// `None` until there is a request type to check.
    pub access: Option<Access>,
    /// The message was larger than limits.message_size: nothing runs.
    pub too_large: bool,
    /// The text the phrasebook searched: topic, newline, body.
    pub searched: String,
    pub topic_len: usize,
}

/// Decides mail after mail with one helpdesk folder, loading each
/// phrasebook and playbook path once (`replay` decides thousands).
#[derive(Debug)]
pub(crate) struct Decider<'a> {
    config: &'a Config,
    keywords: &'a Keywords,
    phrasebooks: Mutex<HashMap<String, Arc<Phrasebook>>>,
    playbooks: Mutex<HashMap<String, Playbook>>,
}

/// Decides one mail.
pub(crate) fn decide(
    config: &Config,
    keywords: &Keywords,
    mail: &Mail,
) -> Result<Decision, DeskError> {
    Decider::new(config, keywords).decide(mail)
}

impl<'a> Decider<'a> {
    pub(crate) fn new(config: &'a Config, keywords: &'a Keywords) -> Self {
        Self {
            config,
            keywords,
            phrasebooks: Mutex::new(HashMap::new()),
            playbooks: Mutex::new(HashMap::new()),
        }
    }

    fn phrasebook(&self, request_type: &str) -> Result<Arc<Phrasebook>, DeskError> {
        let mut cache = self
            .phrasebooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(book) = cache.get(request_type) {
            return Ok(Arc::clone(book));
        }
        let book = Arc::new(self.config.desk.phrasebook(request_type)?);
        cache.insert(request_type.to_owned(), Arc::clone(&book));
        Ok(book)
    }

    fn playbook(&self, request_type: &str) -> Result<Playbook, DeskError> {
        let mut cache = self
            .playbooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(playbook) = cache.get(request_type) {
            return Ok(playbook.clone());
        }
        let playbook = self.config.desk.playbook(request_type)?;
        cache.insert(request_type.to_owned(), playbook.clone());
        Ok(playbook)
    }

    pub(crate) fn decide(&self, mail: &Mail) -> Result<Decision, DeskError> {
        let (config, keywords) = (self.config, self.keywords);
        let mut decision = undecided(config, mail);
        if mail.truncated {
            decision.reason = Some(format!(
                "the message is larger than limits.message_size ({} bytes)",
                config.limits.message_size
            ));
            return Ok(decision);
        }
        let Some(classification) = keywords.classify(&mail.topic) else {
            decision.reason = Some(unclassified(config, keywords, &mail.topic));
            return Ok(decision);
        };
        let request_type = classification.request_type.clone();
        let phrasebook = self.phrasebook(&request_type)?;
        if request_type != HELP {
            decision.playbook = Some(self.playbook(&request_type)?);
        }
        extract(config, &phrasebook, &request_type, mail, &mut decision);
        decision.access = Some(access(config, &phrasebook, &request_type, mail, &decision));
        decision.request_type = Some(request_type);
        decision.classification = Some(classification);
        Ok(decision)
    }
}

/// The decision before the subject is read: the mail's own variables and
/// who sent it.
pub(crate) fn undecided(config: &Config, mail: &Mail) -> Decision {
    let mut vars = Map::new();
    let optional = |value: &Option<String>| value.clone().map_or(Value::Null, Value::String);
    vars.insert("request_type".into(), Value::Null);
    vars.insert("from".into(), optional(&mail.sender));
    vars.insert("subject".into(), Value::String(mail.subject.clone()));
    vars.insert("message_id".into(), optional(&mail.message_id));
    let searched = format!("{}\n{}", mail.topic, mail.body);
    Decision {
        request_type: None,
        playbook: None,
        vars,
        reason: None,
        classification: None,
        evidence: Vec::new(),
        missing: Vec::new(),
        invalid: Vec::new(),
        secret_names: Vec::new(),
        authentication: trust::authenticate(config.authentication.as_ref(), mail),
        access: None,
        too_large: mail.truncated,
        searched,
        topic_len: mail.topic.len(),
    }
}

/// Why no keyword matched `topic`.
fn unclassified(config: &Config, keywords: &Keywords, topic: &str) -> String {
    let known: Vec<&str> = keywords.request_types().collect();
    if topic.trim().is_empty() {
        format!(
            "the subject is empty: it needs a keyword naming the request ({})",
            known.join(", ")
        )
    } else {
        format!(
            "no keyword of {} in the subject {:?} (request types: {})",
            config.desk.display("keywords.txt"),
            topic,
            known.join(", ")
        )
    }
}

/// The phrasebook's variables, what is missing or invalid, and the subject
/// scrubbed of secrets, into `decision`.
fn extract(
    config: &Config,
    phrasebook: &Phrasebook,
    request_type: &str,
    mail: &Mail,
    decision: &mut Decision,
) {
    let extraction = phrasebook.extract(Input {
        text: &decision.searched,
        sender: mail.sender.as_deref(),
        max_value_length: config.limits.value_length,
    });
    decision.vars.insert(
        "request_type".into(),
        Value::String(request_type.to_owned()),
    );
    decision.vars.extend(extraction.vars);
    decision.missing = phrasebook.missing(&decision.vars);
    decision.invalid = extraction.invalid;
    if decision.vars.len() > config.limits.variables {
        decision.invalid.push(Invalid {
            var: "(all)".into(),
            label: None,
            why: format!(
                "more than limits.variables ({}) variables",
                config.limits.variables
            ),
        });
    }
    decision.secret_names = phrasebook.secret_names().to_vec();
    // The subject is stored and shown everywhere (the journal, the
    // reply's Subject, the playbook's `subject`): a secret given in it
    // reaches the playbook through its own variable only.
    let secrets = Secrets::new(&decision.vars, &decision.secret_names);
    if let Some(Value::String(subject)) = decision.vars.get_mut("subject") {
        *subject = secrets.scrub(subject);
    }
    decision.evidence = extraction.evidence;
}

/// Whether the authenticated sender may ask for this request.
fn access(
    config: &Config,
    phrasebook: &Phrasebook,
    request_type: &str,
    mail: &Mail,
    decision: &Decision,
) -> Access {
    let fields = crate::desk::phrasebook::fields_set(&decision.vars);
    match (&decision.authentication, mail.sender.as_deref()) {
        (Authenticated::Yes(_), Some(sender)) => trust::access(
            config.access.as_deref(),
            request_type,
            sender,
            trust::Asked {
                targets: decision.vars.get("targets").and_then(Value::as_str),
                fields: &fields,
                self_service: phrasebook.self_service(),
            },
        ),
        _ => Access::Denied("the sender is not authenticated".into()),
    }
}

impl Decision {
    /// The subject as it may be stored and shown: every secret value the
    /// mail gave replaced by `[redacted]`.
    pub(crate) fn subject(&self) -> &str {
        self.vars
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// True when `run` would start the playbook.
    pub(crate) fn runs_playbook(&self) -> bool {
        self.playbook.is_some()
            && !self.too_large
            && self.authentication.is_yes()
            && self.access.as_ref().is_some_and(Access::is_allowed)
            && self.invalid.is_empty()
            && self.missing.is_empty()
    }

    /// Where a byte offset of `searched` lies, for people: `subject column 5`
    /// or `body line 3`.
    pub(crate) fn locate(&self, offset: usize) -> String {
        if offset <= self.topic_len {
            let column = self.searched.get(..offset).map_or(0, |s| s.chars().count()) + 1;
            return format!("subject, column {column}");
        }
        let body_start = self.topic_len + 1;
        let before = self.searched.get(body_start..offset).unwrap_or_default();
        format!("body line {}", before.matches('\n').count() + 1)
    }
}
