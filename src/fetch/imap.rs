//! An IMAP mailbox as a source, through `async-imap` over `tokio-rustls`:
//! TLS from the first byte (`imaps://`) or after STARTTLS, LOGIN, SELECT
//! (UIDVALIDITY), the UIDs and sizes of what is there, a message's bytes
//! with BODY.PEEK (so nothing is marked seen before it was handled, and a
//! message over `limits.message_size` is fetched only up to it), UID MOVE
//! (or COPY, STORE \Deleted and UID EXPUNGE where the server has no MOVE)
//! into `done` or `failed`, created when missing, and IDLE (or a NOOP
//! every `poll_interval` on a server without it). Every command has the
//! source's `timeout`.

use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::{Client, Session};
use futures::TryStreamExt as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{Failure, Listed};
use crate::delivery::journal::Problem;
use crate::desk::config::PasswordSource;
use crate::desk::sources::{Imap, ImapTls};

/// A connection, TLS or (to loopback only) plain.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}
type Stream = Box<dyn Io>;

/// A logged-in session on the source's mailbox.
pub(super) struct Mailbox {
    session: Session<Stream>,
    imap: Imap,
    /// The server's hierarchy separator (`None`: flat names).
    delimiter: Option<String>,
    idle: bool,
    moves: bool,
    /// Folders known to exist (created or seen) on this connection.
    folders: HashSet<String>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("host", &self.imap.host)
            .field("mailbox", &self.imap.mailbox)
            .finish_non_exhaustive()
    }
}

fn failure(problem: Problem, message: impl Into<String>) -> Failure {
    Failure {
        problem,
        message: message.into(),
    }
}

/// `what` within `limit`, its error (or the timeout) a `problem`.
async fn within<T, E: std::fmt::Display>(
    limit: Duration,
    problem: Problem,
    what: &str,
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(failure(problem, format!("{what}: {e}"))),
        Err(_) => Err(failure(
            Problem::Unreachable,
            format!(
                "{what}: no answer within {}",
                humantime::format_duration(limit)
            ),
        )),
    }
}

impl Mailbox {
    /// Connects, secures, logs in and finds out what the server can do.
    pub(super) async fn open(imap: &Imap) -> Result<Self, Failure> {
        let password = password(&imap.password)?;
        let stream = connect(imap).await?;
        let client = Client::new(stream);
        let limit = imap.timeout;
        let session = match tokio::time::timeout(limit, client.login(&imap.username, &password))
            .await
        {
            Ok(Ok(session)) => session,
            Ok(Err((async_imap::error::Error::No(said), _))) => {
                return Err(failure(
                    Problem::Login,
                    format!(
                        "the server refused the login of {}: {said} (check the password file and the username)",
                        imap.username
                    ),
                ));
            }
            Ok(Err((e, _))) => return Err(failure(Problem::Unreachable, format!("login: {e}"))),
            Err(_) => return Err(failure(Problem::Unreachable, "login: no answer in time")),
        };
        let mut mailbox = Self {
            session,
            imap: imap.clone(),
            delimiter: None,
            idle: false,
            moves: false,
            folders: HashSet::new(),
        };
        let capabilities = within(
            limit,
            Problem::Unreachable,
            "CAPABILITY",
            mailbox.session.capabilities(),
        )
        .await?;
        mailbox.idle = capabilities.has_str("IDLE");
        mailbox.moves = capabilities.has_str("MOVE");
        mailbox.delimiter = mailbox.delimiter().await?;
        Ok(mailbox)
    }

    async fn delimiter(&mut self) -> Result<Option<String>, Failure> {
        let limit = self.imap.timeout;
        let names = within(limit, Problem::Unreachable, "LIST", async {
            self.session
                .list(Some(""), Some("\"\""))
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        Ok(names
            .first()
            .and_then(|name| name.delimiter())
            .map(str::to_owned))
    }

    /// The folder's name on this server (`/` as its separator).
    fn server_name(&self, folder: &str) -> String {
        match self.delimiter.as_deref() {
            Some(delimiter) if delimiter != "/" => folder.replace('/', delimiter),
            _ => folder.to_owned(),
        }
    }

    /// Selects the mailbox read: its UIDVALIDITY and what is in it (UID
    /// and size each).
    pub(super) async fn list(&mut self) -> Result<Listed, Failure> {
        let limit = self.imap.timeout;
        let name = self.server_name(&self.imap.mailbox);
        let selected = within(
            limit,
            Problem::Mailbox,
            &format!("SELECT {name}"),
            self.session.select(&name),
        )
        .await?;
        let validity = selected.uid_validity.unwrap_or(0);
        if selected.exists == 0 {
            return Ok(Listed {
                validity,
                items: Vec::new(),
            });
        }
        let fetched = within(
            limit,
            Problem::Unreachable,
            "FETCH (UID RFC822.SIZE)",
            async {
                self.session
                    .fetch("1:*", "(UID RFC822.SIZE)")
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            },
        )
        .await?;
        let mut items: Vec<(u32, u64)> = fetched
            .iter()
            .filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0)))))
            .collect();
        items.sort_unstable();
        items.dedup_by_key(|(uid, _)| *uid);
        Ok(Listed { validity, items })
    }

    /// Message `uid`'s bytes, at most `limit` of them (then `true`: cut);
    /// `None` when it is gone (another client moved or deleted it).
    pub(super) async fn body(
        &mut self,
        uid: u32,
        size: u64,
        limit: u64,
    ) -> Result<Option<(Vec<u8>, bool)>, Failure> {
        let cut = size > limit;
        let query = if cut {
            format!("BODY.PEEK[]<0.{limit}>")
        } else {
            "BODY.PEEK[]".to_owned()
        };
        let wait = self.imap.timeout.max(Duration::from_secs(size / 100_000));
        let fetched = within(
            wait,
            Problem::Unreachable,
            &format!("UID FETCH {uid}"),
            async {
                self.session
                    .uid_fetch(uid.to_string(), &query)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            },
        )
        .await?;
        let Some(body) = fetched
            .iter()
            .find(|f| f.uid == Some(uid))
            .and_then(|f| f.body())
        else {
            return Ok(None);
        };
        let mut body = body.to_vec();
        body.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(Some((body, cut)))
    }

    /// Moves message `uid` into `folder` (the config's name), creating it
    /// first when it is missing.
    pub(super) async fn file(&mut self, uid: u32, folder: &str) -> Result<(), Failure> {
        let limit = self.imap.timeout;
        let name = self.server_name(folder);
        if !self.folders.contains(&name) {
            // Already there is fine: the MOVE below says if it is not.
            let _ = within(
                limit,
                Problem::Mailbox,
                "CREATE",
                self.session.create(&name),
            )
            .await;
            self.folders.insert(name.clone());
        }
        let what = format!("moving UID {uid} to {name}");
        if self.moves {
            return within(
                limit,
                Problem::Mailbox,
                &what,
                self.session.uid_mv(uid.to_string(), &name),
            )
            .await;
        }
        within(
            limit,
            Problem::Mailbox,
            &what,
            self.session.uid_copy(uid.to_string(), &name),
        )
        .await?;
        within(limit, Problem::Mailbox, &what, async {
            self.session
                .uid_store(uid.to_string(), "+FLAGS.SILENT (\\Deleted)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        within(limit, Problem::Mailbox, &what, async {
            self.session
                .uid_expunge(uid.to_string())
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        Ok(())
    }

    /// Waits for new mail: IDLE for at most `longest`, or without IDLE a
    /// pause of `poll_interval` (at most `longest`) and a NOOP.
    pub(super) async fn wait(self, longest: Duration) -> Result<Self, Failure> {
        let limit = self.imap.timeout;
        if !self.idle {
            tokio::time::sleep(longest.min(self.imap.poll_interval)).await;
            let mut this = self;
            within(limit, Problem::Unreachable, "NOOP", this.session.noop()).await?;
            return Ok(this);
        }
        let Self {
            session,
            imap,
            delimiter,
            idle,
            moves,
            folders,
        } = self;
        let mut handle = session.idle();
        within(limit, Problem::Unreachable, "IDLE", handle.init()).await?;
        let (waiting, _stop) = handle.wait_with_timeout(longest.min(imap.poll_interval));
        let said = waiting
            .await
            .map_err(|e| failure(Problem::Unreachable, format!("IDLE: {e}")))?;
        if said == IdleResponse::ManualInterrupt {
            return Err(failure(Problem::Unreachable, "IDLE: the connection closed"));
        }
        let session = within(limit, Problem::Unreachable, "DONE", handle.done()).await?;
        Ok(Self {
            session,
            imap,
            delimiter,
            idle,
            moves,
            folders,
        })
    }

    /// Logs out (best effort).
    pub(super) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
    }
}

fn password(source: &PasswordSource) -> Result<String, Failure> {
    crate::reply::transport::password(source).map_err(|e| failure(Problem::Login, e.to_string()))
}

/// A TCP connection to the server, secured as the URL says; STARTTLS is
/// the one command spoken before TLS.
async fn connect(imap: &Imap) -> Result<Stream, Failure> {
    let limit = imap.timeout;
    let host = imap
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let at = format!("{}:{}", imap.host, imap.port);
    let tcp = within(
        limit,
        Problem::Unreachable,
        &format!("connecting to {at}"),
        TcpStream::connect((host.as_str(), imap.port)),
    )
    .await?;
    match imap.tls {
        ImapTls::Implicit => secure(imap, &host, tcp).await,
        ImapTls::Plain => {
            let stream: Stream = Box::new(tcp);
            greeted(stream, limit, &at).await
        }
        ImapTls::Starttls => {
            let stream: Stream = Box::new(tcp);
            let mut client = Client::new(greeted(stream, limit, &at).await?);
            within(
                limit,
                Problem::Unreachable,
                &format!("STARTTLS at {at}"),
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            handshake(imap, &host, client.into_inner()).await
        }
    }
}

/// Reads the server's greeting off a fresh connection.
async fn greeted(stream: Stream, limit: Duration, at: &str) -> Result<Stream, Failure> {
    let mut client = Client::new(stream);
    let greeting = within(
        limit,
        Problem::Unreachable,
        &format!("the greeting of {at}"),
        client.read_response(),
    )
    .await?;
    if greeting.is_none() {
        return Err(failure(
            Problem::Unreachable,
            format!("{at} closed the connection before greeting"),
        ));
    }
    Ok(client.into_inner())
}

async fn secure(imap: &Imap, host: &str, tcp: TcpStream) -> Result<Stream, Failure> {
    let at = format!("{}:{}", imap.host, imap.port);
    let tls = handshake(imap, host, tcp).await?;
    greeted(tls, imap.timeout, &at).await
}

async fn handshake<S>(imap: &Imap, host: &str, stream: S) -> Result<Stream, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Debug + 'static,
{
    let connector = tokio_rustls::TlsConnector::from(tls_config(imap)?);
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        failure(
            Problem::Unreachable,
            format!("{host}: not a server name: {e}"),
        )
    })?;
    let tls = within(
        imap.timeout,
        Problem::Unreachable,
        &format!("TLS with {}:{}", imap.host, imap.port),
        connector.connect(name, stream),
    )
    .await?;
    Ok(Box::new(tls))
}

/// The roots a server's certificate must chain to: `ca_file` alone when
/// given, else the Mozilla roots compiled in (webpki-roots).
fn tls_config(imap: &Imap) -> Result<Arc<rustls::ClientConfig>, Failure> {
    let mut roots = rustls::RootCertStore::empty();
    match &imap.ca_file {
        Some(path) => {
            let wrong = |why: String| {
                failure(
                    Problem::Unreachable,
                    format!("ca_file {}: {why}", path.display()),
                )
            };
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|e| wrong(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| wrong(e.to_string()))?;
            if certificates.is_empty() {
                return Err(wrong("holds no PEM certificate".into()));
            }
            for certificate in certificates {
                roots.add(certificate).map_err(|e| wrong(e.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| failure(Problem::Unreachable, format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
