//! `helpdesk run`: one mail through every stage and out through the edges
//! (the playbook run and the reply). `parse` walks the same stages and
//! stops before the edges.

use anyhow::anyhow;

use crate::ansible::{self, Outcome};
use crate::config::Config;
use crate::keywords::Keywords;
use crate::loops::{self, Silence};
use crate::mail::{self, Mail};
use crate::ratelimit;
use crate::redact::Secrets;
use crate::reply::{self, Answer};
use crate::request::{self, Decision};
use crate::transport;

/// Handles one raw message. An error means the message could not be
/// handled now and should be retried; everything else (a failed playbook,
/// a reply that could not be sent) is an outcome, logged.
pub fn handle(config: &Config, raw: &[u8], truncated: bool) -> anyhow::Result<()> {
    let mut mail = mail::read(raw, &config.sender_header);
    mail.truncated = truncated;
    let id = mail
        .message_id
        .clone()
        .unwrap_or_else(|| "(no Message-ID)".into());
    let silence = loops::silence(&mail, config.helpdesk_address.as_deref());
    if let Some(reason) = silence.as_ref().filter(|s| s.drops_request()) {
        tracing::info!("{id}: ignored, nothing run and no reply: {reason}");
        return Ok(());
    }
    let keywords = config.desk.keywords()?;
    let decision = request::decide(config, &keywords, &mail)?;
    let Some(mut answer) = reply::answer(&config.desk, &keywords, &decision)? else {
        tracing::warn!(
            "{id}: from {}: {}; nothing run, no reply",
            mail.sender.as_deref().unwrap_or("(no sender)"),
            decision.authentication
        );
        return Ok(());
    };
    let request_type = decision.request_type.as_deref().unwrap_or("-");
    match &answer {
        Answer::Pending => {
            let run = dispatch(config, &decision, request_type)?;
            let summary = format!(
                "{id}: {request_type}: playbook {} in {:.1}s (log: {})",
                ansible::describe(&run.outcome),
                run.duration.as_secs_f64(),
                run.log.display()
            );
            match run.outcome {
                Outcome::Succeeded => tracing::info!("{summary}"),
                _ => tracing::warn!("{summary}"),
            }
            let quiet = config
                .mail
                .as_ref()
                .is_some_and(|m| m.no_result_reply.iter().any(|t| t == request_type));
            if quiet {
                tracing::info!("{id}: no result reply: mail.no_result_reply lists {request_type}");
                return Ok(());
            }
            answer = Answer::Result(run);
        }
        Answer::Unclassified => tracing::info!(
            "{id}: nothing to run: {}",
            decision.reason.as_deref().unwrap_or("unclassified")
        ),
        Answer::Refused(why) => tracing::warn!("{id}: {request_type}: refused: {why}"),
        Answer::Invalid(invalid) => {
            let fields: Vec<String> = invalid
                .iter()
                .map(|i| format!("{} {}", i.var, i.why))
                .collect();
            tracing::warn!("{id}: {request_type}: refused: {}", fields.join("; "));
        }
        Answer::TooLarge => tracing::warn!(
            "{id}: refused: {}",
            decision.reason.as_deref().unwrap_or("too large")
        ),
        Answer::Missing(missing) => {
            let names: Vec<&str> = missing.iter().map(|m| m.var.as_str()).collect();
            tracing::info!(
                "{id}: {request_type}: nothing run, missing {}",
                names.join(", ")
            );
        }
        Answer::HelpTopic { .. } | Answer::HelpIndex { .. } => {
            tracing::info!("{id}: help request");
        }
        Answer::Result(_) => {}
    }
    send_reply(
        config,
        &keywords,
        &mail,
        &decision,
        &answer,
        silence.as_ref(),
        &id,
    );
    Ok(())
}

fn dispatch(
    config: &Config,
    decision: &Decision,
    request_type: &str,
) -> anyhow::Result<ansible::Run> {
    let (Some(playbook), Some(workdir)) = (
        decision.playbook.as_ref().and_then(|p| p.path.as_ref()),
        config.desk.root(),
    ) else {
        return Err(anyhow!(
            "{request_type}: the built-in playbooks cannot run; set helpdesk_dir in config.yaml"
        ));
    };
    Ok(ansible::run(
        &config.ansible,
        playbook,
        workdir,
        &decision.vars,
        &config.state_dir,
        request_type,
    )?)
}

/// Sends the reply, or logs why not. A reply that cannot be sent never
/// undoes or repeats the request.
fn send_reply(
    config: &Config,
    keywords: &Keywords,
    mail: &Mail,
    decision: &Decision,
    answer: &Answer,
    silence: Option<&Silence>,
    id: &str,
) {
    if let Some(reason) = silence {
        tracing::info!("{id}: no reply: {reason}");
        return;
    }
    let (Some(settings), Some(from)) = (&config.mail, &config.helpdesk_address) else {
        tracing::warn!("{id}: no reply sent: config.yaml has no mail: section");
        return;
    };
    let secrets = Secrets::new(&decision.vars, &decision.secret_names);
    let result = reply::compose(config, keywords, mail, decision, answer, &secrets)
        .and_then(|reply| Ok((reply::to_message(&reply, from)?, reply)));
    let (message, reply) = match result {
        Ok(built) => built,
        Err(e) => {
            tracing::warn!("{id}: reply not sent: {e}");
            return;
        }
    };
    match ratelimit::allow(&config.state_dir, &reply.to, settings.reply_limit_per_hour) {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(
                "{id}: no reply: {} already got {} replies in the past hour (mail.reply_limit_per_hour)",
                reply.to,
                settings.reply_limit_per_hour
            );
            return;
        }
        Err(e) => {
            tracing::warn!(
                "{id}: reply not sent: cannot count replies in {}: {e}",
                config.state_dir.display()
            );
            return;
        }
    }
    match transport::send(&settings.transport, &message) {
        Ok(where_to) => {
            tracing::info!("{id}: {} reply to {}: {where_to}", reply.template, reply.to)
        }
        Err(e) => tracing::warn!(
            "{id}: {} reply to {} not sent: {e}",
            reply.template,
            reply.to
        ),
    }
}
