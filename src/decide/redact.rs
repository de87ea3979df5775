//! Secret-like variables and keeping their values out of replies and logs.
//!
//! A variable is secret when its name contains `password`, `secret` or
//! `token`, or when its phrasebook lists it under `*secret*`. Its value
//! only ever sits in the 0600 extra-vars file; everything people read gets
//! `[redacted]` instead, including Ansible messages that echo it back and
//! the subject, wherever it is stored or shown (the journal, `log`, `show`,
//! the playbook's `subject` variable, the reply's `Subject:`). A mail that
//! gave a secret value is not archived (see `delivery`).

use serde_json::{Map, Value};

pub(crate) const REDACTED: &str = "[redacted]";

/// The secret values of one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Secrets {
    names: Vec<String>,
    values: Vec<String>,
}

pub(crate) fn is_secret_name(name: &str, listed: &[String]) -> bool {
    let lower = name.to_ascii_lowercase();
    ["password", "secret", "token"]
        .iter()
        .any(|w| lower.contains(w))
        || listed.iter().any(|l| l == name)
}

impl Secrets {
    pub(crate) fn new(vars: &Map<String, Value>, listed: &[String]) -> Self {
        let mut secrets = Self::default();
        for (name, value) in vars {
            if !is_secret_name(name, listed) {
                continue;
            }
            secrets.names.push(name.clone());
            if let Some(text) = value.as_str().filter(|t| !t.is_empty()) {
                secrets.values.push(text.to_owned());
            }
        }
        // Longest first, so a secret that contains another is hidden whole.
        secrets.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        secrets
    }

    /// The vars with secret values replaced.
    pub(crate) fn redact_vars(&self, vars: &Map<String, Value>) -> Map<String, Value> {
        vars.iter()
            .map(|(name, value)| {
                let hidden = self.names.contains(name) && !value.is_null();
                let value = if hidden {
                    Value::String(REDACTED.into())
                } else {
                    value.clone()
                };
                (name.clone(), value)
            })
            .collect()
    }

    /// Whether the request gave any secret value (an empty one is none).
    pub(crate) fn any(&self) -> bool {
        !self.values.is_empty()
    }

    /// Text with every occurrence of a secret value replaced.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_values() {
        let vars = json!({"targets": "john", "password": "hunter2", "new_password": "hunter22", "pin": "4711", "api_token": null});
        let vars = vars.as_object().cloned().unwrap_or_default();
        let secrets = Secrets::new(&vars, &["pin".to_owned()]);
        let redacted = secrets.redact_vars(&vars);
        assert_eq!(redacted["targets"], "john");
        assert_eq!(redacted["password"], REDACTED);
        assert_eq!(redacted["pin"], REDACTED);
        assert_eq!(redacted["api_token"], Value::Null);
        assert_eq!(
            secrets.scrub("set hunter22 (was hunter2), pin 4711 for john"),
            "set [redacted] (was [redacted]), pin [redacted] for john"
        );
        assert!(secrets.any());
    }

    /// A secret name without a value (null or empty) hides nothing and
    /// does not count as a secret the mail gave.
    #[test]
    fn names_without_values() {
        let vars = json!({"password": "", "api_token": null, "subject": "reset password"});
        let vars = vars.as_object().cloned().unwrap_or_default();
        let secrets = Secrets::new(&vars, &[]);
        assert!(!secrets.any());
        assert_eq!(secrets.scrub("reset password"), "reset password");
    }
}
