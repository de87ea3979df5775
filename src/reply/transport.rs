//! How replies leave: SMTP (implicit TLS, STARTTLS or plain, with or
//! without authentication), the local sendmail command, or a folder of
//! `.eml` files.
//!
//! The SMTP password is read at send time from a file that only its owner
//! may read, or from an environment variable; it is never logged.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SendmailTransport, SmtpTransport, Transport as _};

use crate::desk::config::{PasswordSource, Security, Smtp, Transport};

#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error(
        "{path}: readable by group or others (mode {mode:o}): chmod 600 it; the SMTP password is not used until then"
    )]
    PasswordFileOpen { path: String, mode: u32 },
    #[error("{path}: cannot read the SMTP password: {cause}")]
    PasswordFile { path: String, cause: std::io::Error },
    #[error("environment variable {0} (mail.smtp.password_env) is not set")]
    PasswordEnv(String),
    #[error("{path}: cannot read the CA certificate: {reason}")]
    CaFile { path: String, reason: String },
    #[error("SMTP {host}:{port}: {reason}")]
    Smtp {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("{command}: {reason}")]
    Sendmail { command: String, reason: String },
    #[error("{path}: cannot write the reply: {cause}")]
    Folder { path: String, cause: std::io::Error },
}

/// Sends `message`; returns where it went, for the log.
pub(crate) fn send(transport: &Transport, message: &Message) -> Result<String, SendError> {
    match transport {
        Transport::Smtp(smtp) => send_smtp(smtp, message),
        Transport::Sendmail(command) => {
            let shown = command.display().to_string();
            SendmailTransport::new_with_command(command.as_os_str())
                .send(message)
                .map_err(|e| SendError::Sendmail {
                    command: shown.clone(),
                    reason: e.to_string(),
                })?;
            Ok(format!("handed to {shown}"))
        }
        Transport::Folder(dir) => write_to_folder(dir, message),
    }
}

fn send_smtp(smtp: &Smtp, message: &Message) -> Result<String, SendError> {
    let smtp_error = |reason: String| SendError::Smtp {
        host: smtp.host.clone(),
        port: smtp.port,
        reason,
    };
    let mut builder = SmtpTransport::builder_dangerous(smtp.host.as_str())
        .port(smtp.port)
        .timeout(Some(smtp.timeout));
    if smtp.security != Security::None {
        let mut tls = TlsParameters::builder(smtp.host.clone());
        if let Some(ca) = &smtp.ca_file {
            let ca_error = |reason: String| SendError::CaFile {
                path: ca.display().to_string(),
                reason,
            };
            let pem = fs::read(ca).map_err(|e| ca_error(e.to_string()))?;
            tls = tls.add_root_certificate(
                Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?,
            );
        }
        let parameters = tls.build_rustls().map_err(|e| smtp_error(e.to_string()))?;
        builder = builder.tls(match smtp.security {
            Security::Tls => Tls::Wrapper(parameters),
            _ => Tls::Required(parameters),
        });
    }
    if let (Some(user), Some(source)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password(source)?));
    }
    let response = builder
        .build()
        .send(message)
        .map_err(|e| smtp_error(e.to_string()))?;
    let said = response.message().collect::<Vec<_>>().join(" ");
    Ok(format!(
        "sent via {}:{} ({} {said})",
        smtp.host,
        smtp.port,
        response.code()
    ))
}

/// The password `source` names: an environment variable, or a file only
/// its owner can read (0600), its last line end dropped.
pub(crate) fn password(source: &PasswordSource) -> Result<String, SendError> {
    match source {
        PasswordSource::Env(var) => {
            std::env::var(var).map_err(|_| SendError::PasswordEnv(var.clone()))
        }
        PasswordSource::File(path) => {
            let shown = path.display().to_string();
            let read_error = |cause| SendError::PasswordFile {
                path: shown.clone(),
                cause,
            };
            let mode = fs::metadata(path).map_err(read_error)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(SendError::PasswordFileOpen {
                    path: shown,
                    mode: mode & 0o777,
                });
            }
            let text = fs::read_to_string(path).map_err(read_error)?;
            Ok(text.trim_end_matches(['\r', '\n']).to_owned())
        }
    }
}

fn write_to_folder(dir: &Path, message: &Message) -> Result<String, SendError> {
    let folder_error = |cause| SendError::Folder {
        path: dir.display().to_string(),
        cause,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(folder_error)?;
    let stamp = humantime::format_rfc3339_micros(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-', '.'], "");
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{stamp}-"))
        .tempfile_in(dir)
        .map_err(folder_error)?;
    file.write_all(&message.formatted()).map_err(folder_error)?;
    let target = dir.join(format!("{stamp}-{}.eml", std::process::id()));
    file.persist_noclobber(&target)
        .map_err(|e| folder_error(e.error))?;
    Ok(format!("written to {}", target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smtp.secret");
        fs::write(&path, "hunter2\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = password(&PasswordSource::File(path.clone()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("chmod 600") && !err.contains("hunter2"),
            "{err}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(password(&PasswordSource::File(path)).unwrap(), "hunter2");
    }
}
