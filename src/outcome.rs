//! The one vocabulary of outcomes. What became of a message (`Outcome`),
//! where its journal row is in its life (`State`), and which answer a
//! decision gets before anything runs (`Verdict`) are written here once:
//! the pipeline, the journal, `log` and `show`, the metrics, the replies
//! and `replay` all take their words from these types. `as_str` (and
//! `Display`) give the words the journal stores and the tools print;
//! `FromStr` reads them back, from a journal of any version (the words
//! have never changed), and an unknown word is an error, never a panic.

use std::fmt;
use std::str::FromStr;

use crate::decide::Decision;
use crate::decide::trust::Access;
use crate::run::ansible;

/// A word that is none of a vocabulary's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {word:?}")]
pub(crate) struct UnknownWord {
    /// `outcome` or `state`.
    pub what: &'static str,
    pub word: String,
}

/// An enum whose every variant is one word, and the impls that give and
/// read that word (`as_str`, `Display`, `FromStr`, serde), so that a word
/// is written once.
macro_rules! words {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $($(#[$variant_meta:meta])* $variant:ident => $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order (`log` lists the
            /// outcomes; only tests list the states).
            #[cfg_attr(not(test), allow(dead_code))]
            pub(crate) const ALL: &[Self] = &[$(Self::$variant),+];

            /// The word stored and printed.
            pub(crate) const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(word: &str) -> Result<Self, UnknownWord> {
                match word {
                    $($word => Ok(Self::$variant),)+
                    _ => Err(UnknownWord {
                        what: $what,
                        word: word.to_owned(),
                    }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let word = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                word.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

words! {
    /// What became of a message: the journal's `outcome` column, the
    /// value of `log --outcome`, the metrics' `outcome` label.
    pub(crate) enum Outcome ("outcome") {
        /// The playbook succeeded, or a help request was answered.
        Done => "done",
        /// The playbook failed (an exit code, or a signal), or no host ran
        /// a task of it (the row's reason says why: no host matched, every
        /// host unreachable, every task skipped).
        Failed => "failed",
        /// The playbook ran over its time and was stopped.
        Timeout => "timeout",
        /// Nothing ran: too large, an invalid value, missing information.
        Refused => "refused",
        /// Nothing ran: the access grants refuse the sender this request.
        Unauthorized => "unauthorized",
        /// Nothing ran and no reply: the sender is not proven.
        Unauthenticated => "unauthenticated",
        /// Another delivery of the same message claimed it first.
        Duplicate => "duplicate",
        /// Nothing to run: no request type, or a loop or automatic mail.
        Ignored => "ignored",
        /// Refused by `limits.runs_per_sender_per_hour`.
        Limited => "limited",
        /// Its decision went over a budget (`limits.decision_*`): set
        /// aside unread, never retried.
        Quarantined => "quarantined",
        /// Its playbook started, but helpdesk lost track of it before its
        /// outcome was journaled (a crash, a journal it could not write):
        /// it may or may not have completed. Never started again by
        /// itself; `helpdesk retry --rerun ID` is an operator's decision.
        Unknown => "unknown",
        /// Nothing ran: an approver denied it (`approvals:`).
        Denied => "denied",
        /// Nothing ran: nobody approved it in time (`approvals:`).
        Expired => "expired",
        /// Nothing ran: an operator cancelled it while it waited for
        /// approval or in the queue (the control address).
        Cancelled => "cancelled",
        /// A provider's maintenance notice that no parser could read
        /// (`maintenance:`): forwarded to `maintenance.unreadable` with
        /// the reason, which the row keeps.
        Unreadable => "unreadable",
    }
}

words! {
    /// Where a journal row is in its life (its `state` column).
    pub(crate) enum State ("state") {
        /// A delivery owns the message; nothing has started.
        Claimed => "claimed",
        /// Its playbook is running.
        Running => "running",
        /// Done with: its outcome is final.
        Finished => "finished",
        /// Decided and would run, but waits for approval (`approvals:`);
        /// its vars are frozen in the journal, nothing has started.
        Pending => "pending",
    }
}

impl Outcome {
    /// The outcome of a playbook run.
    pub(crate) fn of_run(run: &ansible::Outcome) -> Self {
        match run {
            ansible::Outcome::Succeeded => Self::Done,
            ansible::Outcome::Failed { .. } | ansible::Outcome::NothingRan { .. } => Self::Failed,
            ansible::Outcome::TimedOut { .. } => Self::Timeout,
        }
    }
}

/// Which answer a decision gets before anything runs, in the one order
/// that `reply::answer` (and so `run` and `parse`) and `replay` follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict<'a> {
    /// The sender is not proven: nothing runs and no reply (it could be
    /// backscatter to a forged address).
    Unauthenticated,
    TooLarge,
    Unclassified,
    /// The access grants refuse it, for this reason.
    NotAllowed(&'a str),
    Help,
    Invalid,
    Missing,
    /// The request type's playbook runs.
    Runs(&'a str),
}

impl<'a> Verdict<'a> {
    pub(crate) fn of(decision: &'a Decision) -> Self {
        if !decision.authentication.is_yes() {
            return Self::Unauthenticated;
        }
        if decision.too_large {
            return Self::TooLarge;
        }
        let Some(request_type) = decision.request_type.as_deref() else {
            return Self::Unclassified;
        };
        if let Some(Access::Denied(why)) = &decision.access {
            return Self::NotAllowed(why);
        }
        if request_type == crate::desk::HELP {
            return Self::Help;
        }
        if !decision.invalid.is_empty() {
            return Self::Invalid;
        }
        if !decision.missing.is_empty() {
            return Self::Missing;
        }
        Self::Runs(request_type)
    }
}

/// `replay`'s words for a verdict.
impl fmt::Display for Verdict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unauthenticated => f.write_str("unauthenticated"),
            Self::TooLarge => f.write_str("refused: too large"),
            Self::Unclassified => f.write_str("unclassified"),
            Self::NotAllowed(_) => f.write_str("refused: not allowed"),
            Self::Help => f.write_str("help"),
            Self::Invalid => f.write_str("refused: invalid value"),
            Self::Missing => f.write_str("missing information"),
            Self::Runs(request_type) => write!(f, "runs {request_type}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every word reads back as the variant that wrote it, through
    /// `FromStr` and through serde; the words are the journal's.
    #[test]
    fn every_word_reads_back() {
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>(), Ok(*outcome));
            assert_eq!(outcome.to_string(), outcome.as_str());
            let json = serde_json::to_string(outcome).unwrap();
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), *outcome);
        }
        for state in State::ALL {
            assert_eq!(state.as_str().parse::<State>(), Ok(*state));
            let json = serde_json::to_string(state).unwrap();
            assert_eq!(serde_json::from_str::<State>(&json).unwrap(), *state);
        }
        let words: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            words,
            [
                "done",
                "failed",
                "timeout",
                "refused",
                "unauthorized",
                "unauthenticated",
                "duplicate",
                "ignored",
                "limited",
                "quarantined",
                "unknown",
                "denied",
                "expired",
                "cancelled",
                "unreadable"
            ]
        );
        let states: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(states, ["claimed", "running", "finished", "pending"]);
    }

    /// An unknown word (another case, a state for an outcome, nothing) is
    /// an error naming it.
    #[test]
    fn unknown_words_are_errors() {
        for word in ["", "Done", "done ", "finished", "refused: not allowed"] {
            let error = word.parse::<Outcome>().unwrap_err();
            assert_eq!(error.word, word);
            assert_eq!(error.to_string(), format!("unknown outcome {word:?}"));
        }
        assert!("done".parse::<State>().is_err());
        assert!(serde_json::from_str::<Outcome>("\"sent\"").is_err());
        assert!(serde_json::from_str::<Outcome>("3").is_err());
    }

    #[test]
    fn runs_map_to_their_outcome() {
        use std::time::Duration;
        assert_eq!(Outcome::of_run(&ansible::Outcome::Succeeded), Outcome::Done);
        let failed = ansible::Outcome::Failed {
            code: None,
            signal: Some(9),
        };
        assert_eq!(Outcome::of_run(&failed), Outcome::Failed);
        let timed_out = ansible::Outcome::TimedOut {
            after: Duration::from_secs(1),
        };
        assert_eq!(Outcome::of_run(&timed_out), Outcome::Timeout);
        let idle = ansible::Outcome::NothingRan {
            code: Some(0),
            why: "no hosts matched the play's hosts: pattern `webservers`".into(),
        };
        assert_eq!(Outcome::of_run(&idle), Outcome::Failed);
    }
}
