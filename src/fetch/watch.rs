//! How `fetch` goes over its sources: each once (`--once`), or each in a
//! task of its own until SIGTERM or SIGINT, beside a sweeper that runs
//! `retry` every minute for what a crash left in the spool. An IMAP
//! source is one connection: a pass over the mailbox, then IDLE until
//! something changes (at most `poll_interval`, or a few seconds while a
//! message waits for its row to finish), and on any failure a new
//! connection after a backoff. A Maildir source is a thread of its own
//! (`maildir::watch`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch::Receiver;

use super::imap::Mailbox;
use super::{Failure, Folder, Next, Pass, Shared, Taken, failed, look_up, reached, take, worse};
use crate::delivery::{self, journal};
use crate::desk::sources::{Imap, Source, SourceKind};
use crate::exit::Status;

/// How long a pass waits before looking again while a message it found
/// waits for its row to finish (queued, pending approval, backing off).
pub(super) const WAITING_RECHECK: Duration = Duration::from_secs(10);

/// How often the sweeper runs `retry`.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The first wait before connecting again, doubled up to `RECONNECT_MAX`.
pub(super) const RECONNECT_FIRST: Duration = Duration::from_secs(1);
pub(super) const RECONNECT_MAX: Duration = Duration::from_secs(300);

/// Messages that could not be taken now, and when to try each again (as
/// the journal backs off a failure to start: 1 minute, doubling to an
/// hour), so that one message never makes a busy loop.
#[derive(Debug, Default)]
pub(super) struct Backoffs(HashMap<String, (i64, Instant)>);

impl Backoffs {
    pub(super) fn waiting(&self, intake: &str) -> bool {
        self.0
            .get(intake)
            .is_some_and(|(_, until)| Instant::now() < *until)
    }

    pub(super) fn failed(&mut self, intake: &str) {
        let attempts = self.0.get(intake).map_or(0, |(n, _)| *n) + 1;
        let until = Instant::now() + journal::backoff(attempts);
        self.0.insert(intake.to_owned(), (attempts, until));
    }

    pub(super) fn forget(&mut self, intake: &str) {
        self.0.remove(intake);
    }
}

/// Counts what became of one message in `pass`; whether it is to be
/// moved (and where).
pub(super) fn tally(
    pass: &mut Pass,
    backoffs: &mut Backoffs,
    source: &Source,
    intake: &str,
    taken: Taken,
) -> Option<Folder> {
    match taken {
        Taken::File(folder) => {
            backoffs.forget(intake);
            pass.filed += 1;
            Some(folder)
        }
        Taken::Wait => {
            pass.waiting += 1;
            None
        }
        Taken::NotNow(why) => {
            tracing::warn!(
                "source {}: {why}; it stays in the {} and is tried again later",
                source.name,
                super::kind(source)
            );
            backoffs.failed(intake);
            pass.not_now += 1;
            None
        }
    }
}

/// Runs `work` on the blocking pool (journal, spool and child processes
/// are blocking), with what every part of a fetch shares.
pub(super) async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    work: impl FnOnce(&Shared) -> T + Send + 'static,
) -> T {
    let shared = Arc::clone(shared);
    match tokio::task::spawn_blocking(move || work(&shared)).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// One pass over an IMAP mailbox: each message delivered, moved or left.
async fn imap_pass(
    shared: &Arc<Shared>,
    source: &Source,
    imap: &Imap,
    mailbox: &mut Mailbox,
    backoffs: &mut Backoffs,
    stop: Option<&Receiver<bool>>,
) -> Result<Pass, Failure> {
    let listed = mailbox.list().await?;
    let limit = shared.config.limits.message_size;
    let mut pass = Pass::default();
    for &(uid, size) in &listed.items {
        if stop.is_some_and(|stop| *stop.borrow()) {
            break;
        }
        let intake = format!("{}/{}/{uid}", source.name, listed.validity);
        if backoffs.waiting(&intake) {
            pass.not_now += 1;
            continue;
        }
        let looked = intake.clone();
        let taken = match blocking(shared, move |s| look_up(&s.config, &looked)).await {
            Err(e) => Taken::NotNow(e),
            Ok(Next::Wait) => Taken::Wait,
            Ok(Next::File(folder)) => Taken::File(folder),
            Ok(Next::Deliver) => {
                let Some((raw, cut)) = mailbox.body(uid, size, limit).await? else {
                    tracing::info!(
                        "source {}: UID {uid} went away before it was read",
                        source.name
                    );
                    continue;
                };
                let named = intake.clone();
                let taken = blocking(shared, move |s| take(s, &raw, cut, &named)).await;
                pass.delivered += u64::from(!matches!(taken, Taken::NotNow(_)));
                taken
            }
        };
        if let Some(folder) = tally(&mut pass, backoffs, source, &intake, taken) {
            let target = match folder {
                Folder::Done => &imap.done,
                Folder::Failed => &imap.failed,
            };
            mailbox.file(uid, target).await?;
        }
    }
    Ok(pass)
}

/// Records a pass, or a failure, in the journal (off the event loop).
async fn record(shared: &Arc<Shared>, source: &Source, result: &Result<Pass, Failure>, loud: bool) {
    let source = source.clone();
    let result = result.clone();
    blocking(shared, move |s| match &result {
        Ok(pass) => reached(&s.config, &source, pass),
        Err(failure) => {
            failed(&s.config, &source, failure);
            if loud {
                // `--once` (cron, a timer): every run says why it failed.
                tracing::error!(
                    "source {}: {}: {}",
                    source.name,
                    failure.problem.as_str(),
                    failure.message
                );
            }
        }
    })
    .await;
}

/// Waits (a watching fetch) until this process holds `source`, or
/// `stop`: `None` then.
pub(super) fn hold_or_wait(
    shared: &Shared,
    source: &Source,
    stop: &Receiver<bool>,
) -> Option<std::fs::File> {
    let mut told = false;
    while !*stop.borrow() {
        match super::hold(&shared.config, source) {
            Ok(Some(lock)) => return Some(lock),
            Ok(None) if !told => {
                tracing::info!(
                    "source {}: another fetch reads it; waiting for it to stop",
                    source.name
                );
                told = true;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("source {}: {e}", source.name),
        }
        for _ in 0..20 {
            if *stop.borrow() {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    None
}

/// `fetch --once`: leftovers first, then every source in turn (one that
/// another fetch reads now is left to it).
pub(super) async fn once(shared: Arc<Shared>) -> Status {
    sweep(&shared).await;
    let mut status = Status::Ok;
    for source in shared.config.sources.clone() {
        let held = source.clone();
        let _lock = match blocking(&shared, move |s| super::hold(&s.config, &held)).await {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                tracing::info!(
                    "source {}: another fetch reads it now; left to it",
                    source.name
                );
                continue;
            }
            Err(e) => {
                tracing::error!("source {}: {e}", source.name);
                status = worse(status, Status::TempFail);
                continue;
            }
        };
        let result = match &source.kind {
            SourceKind::Imap(imap) => imap_once(&shared, &source, imap).await,
            SourceKind::Maildir(dir) => {
                let (source, dir) = (source.clone(), dir.clone());
                blocking(&shared, move |s| {
                    super::maildir::pass(s, &source, &dir, &mut Backoffs::default())
                })
                .await
            }
        };
        record(&shared, &source, &result, true).await;
        status = match &result {
            Ok(pass) if pass.not_now > 0 => worse(status, Status::TempFail),
            Ok(_) => status,
            Err(failure) => worse(status, super::status_of(failure)),
        };
    }
    status
}

async fn imap_once(shared: &Arc<Shared>, source: &Source, imap: &Imap) -> Result<Pass, Failure> {
    let mut mailbox = Mailbox::open(imap).await?;
    let pass = imap_pass(
        shared,
        source,
        imap,
        &mut mailbox,
        &mut Backoffs::default(),
        None,
    )
    .await;
    mailbox.close().await;
    pass
}

/// `retry` for what is left in the spool (a crash, a queue).
async fn sweep(shared: &Arc<Shared>) {
    blocking(shared, |s| {
        if let Err(e) = delivery::retry(&s.config, &s.program, false) {
            tracing::warn!("fetch: cannot handle what is left in the spool: {e:#}");
        }
    })
    .await;
}

async fn sweeper(shared: Arc<Shared>, mut stop: Receiver<bool>) {
    loop {
        sweep(&shared).await;
        tokio::select! {
            () = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// `fetch`: every source watched until SIGTERM or SIGINT; then each
/// finishes the message in hand and stops.
pub(super) async fn forever(shared: Arc<Shared>) {
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(sweeper(Arc::clone(&shared), stop.clone()));
    for source in shared.config.sources.clone() {
        let (shared, stop) = (Arc::clone(&shared), stop.clone());
        match source.kind.clone() {
            SourceKind::Imap(imap) => {
                tasks.spawn(async move { watch_imap(&shared, &source, &imap, stop).await });
            }
            SourceKind::Maildir(dir) => {
                tasks.spawn_blocking(move || super::maildir::watch(&shared, &source, &dir, &stop));
            }
        }
    }
    tracing::info!(
        "fetch: watching {} source(s); SIGTERM or SIGINT stops it",
        shared.config.sources.len()
    );
    stopped().await;
    tracing::info!("fetch: stopping once the messages in hand are handled");
    let _ = stopping.send(true);
    while tasks.join_next().await.is_some() {}
}

/// Until SIGTERM or SIGINT (or, if they cannot be watched, never).
async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// One IMAP source, connected again after every failure, with a backoff.
async fn watch_imap(shared: &Arc<Shared>, source: &Source, imap: &Imap, mut stop: Receiver<bool>) {
    let (held, waiting) = (source.clone(), stop.clone());
    let Some(_lock) = blocking(shared, move |s| hold_or_wait(s, &held, &waiting)).await else {
        return;
    };
    let mut delay = RECONNECT_FIRST;
    let mut backoffs = Backoffs::default();
    while !*stop.borrow() {
        let failure =
            match connected(shared, source, imap, &mut backoffs, &mut stop, &mut delay).await {
                Ok(()) => return,
                Err(failure) => failure,
            };
        record(shared, source, &Err(failure), false).await;
        tracing::debug!(
            "source {}: connecting again in {}",
            source.name,
            humantime::format_duration(delay)
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

/// Passes over the mailbox, IDLE between them, until a failure (`Err`)
/// or a stop (`Ok`). A connection that got through resets `delay`.
async fn connected(
    shared: &Arc<Shared>,
    source: &Source,
    imap: &Imap,
    backoffs: &mut Backoffs,
    stop: &mut Receiver<bool>,
    delay: &mut Duration,
) -> Result<(), Failure> {
    let mut mailbox = Mailbox::open(imap).await?;
    *delay = RECONNECT_FIRST;
    loop {
        // A failure is recorded once, by `watch_imap`.
        let pass = imap_pass(shared, source, imap, &mut mailbox, backoffs, Some(stop)).await?;
        record(shared, source, &Ok(pass), false).await;
        if *stop.borrow() {
            mailbox.close().await;
            return Ok(());
        }
        let longest = if pass.waiting + pass.not_now > 0 {
            WAITING_RECHECK
        } else {
            imap.poll_interval
        };
        tokio::select! {
            waited = mailbox.wait(longest) => mailbox = waited?,
            _ = stop.changed() => return Ok(()),
        }
    }
}
