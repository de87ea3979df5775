//! The account the MTA runs helpdesk as: looking it up, creating it
//! (`setup --user NAME` as root), handing it the helpdesk folder, the
//! sudoers drop-in its playbooks need, and checking, as that account,
//! that it can read what it must and write its state (`check --as NAME`,
//! through the hidden `probe-access` command run with its identity).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow, bail};

use crate::commands::check::{Problem, Severity};
use crate::desk::config::{Config, PasswordSource, Transport};

/// A local account, as `getent passwd` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// A user name useradd takes everywhere and a sudoers file may be named
/// after (sudo skips names with a dot): lower-case letters, digits, `_`
/// and `-`, starting with a letter or `_`, at most 32.
pub(crate) fn valid_user(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && name.len() <= 32 {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a user name: lower-case letters, digits, _ and -, starting with a letter, at most 32"
        ))
    }
}

/// The account called `name`, if there is one (through NSS, as `getent`).
pub(crate) fn lookup(name: &str) -> anyhow::Result<Option<Account>> {
    let found = getent(name)?;
    Ok(found.filter(|account| account.name == name))
}

/// The account whose uid is `uid`, if there is one.
pub(crate) fn lookup_uid(uid: u32) -> anyhow::Result<Option<Account>> {
    let found = getent(&uid.to_string())?;
    Ok(found.filter(|account| account.uid == uid))
}

/// `getent passwd KEY` (a name or a uid), parsed.
fn getent(key: &str) -> anyhow::Result<Option<Account>> {
    let out = Command::new("getent")
        .args(["passwd", key])
        .output()
        .context("cannot run getent to look up the user")?;
    // getent exits 2 for "no such key".
    if !out.status.success() {
        return Ok(None);
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = line.trim_end().split(':').collect();
    match fields.as_slice() {
        [name, _, uid, gid, _, home, ..] => Ok(Some(Account {
            name: (*name).to_owned(),
            uid: uid.parse()?,
            gid: gid.parse()?,
            home: PathBuf::from(home),
        })),
        _ => bail!("getent passwd {key}: unexpected answer {line:?}"),
    }
}

/// Who owns the state folder of the helpdesk folder `dir`, when it is not
/// root: the user an earlier `setup --user` gave it to.
pub(crate) fn previous_user(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = fs::metadata(dir.join("state")).ok()?.uid();
    if uid == 0 {
        return None;
    }
    lookup_uid(uid).ok().flatten().map(|account| account.name)
}

/// The account `name`, created as a system account (its own group, no
/// login shell, `home` as its home, not created) when missing. Returns it
/// and whether it was created.
pub(crate) fn ensure(name: &str, home: &Path) -> anyhow::Result<(Account, bool)> {
    if let Some(account) = lookup(name)? {
        return Ok((account, false));
    }
    let out = Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home", "--shell"])
        .arg("/usr/sbin/nologin")
        .arg("--home-dir")
        .arg(home)
        .args(["--comment", "helpdesk (mail to Ansible)", name])
        .output()
        .context("cannot run useradd to create the user")?;
    if !out.status.success() {
        bail!(
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let account = lookup(name)?.ok_or_else(|| anyhow!("useradd {name} made no account"))?;
    Ok((account, true))
}

/// Gives the helpdesk folder `dir` to `account`: everything root-owned
/// in its group (folders 0750, files 0640), so it can read but not change
/// its grants and playbooks; the files it must own (`secrets`, such as
/// smtp.secret) its own, 0600; `writable` folders (the state folder, a
/// replies folder) its own, 0700, created when missing.
pub(crate) fn hand_over(
    dir: &Path,
    account: &Account,
    secrets: &[PathBuf],
    writable: &[PathBuf],
) -> anyhow::Result<()> {
    for folder in writable {
        fs::create_dir_all(folder).with_context(|| folder.display().to_string())?;
    }
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).with_context(|| path.display().to_string())?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let inside_writable = writable.iter().any(|w| path.starts_with(w) && &path != w);
        let (owner, mode) = if inside_writable {
            // What the account wrote there (a journal from an earlier
            // run as root, say) becomes its own; modes are its business.
            (account.uid, None)
        } else if writable.contains(&path) {
            (account.uid, Some(0o700))
        } else if secrets.contains(&path) {
            (account.uid, Some(0o600))
        } else if meta.is_dir() {
            (0, Some(0o750))
        } else {
            (0, Some(0o640))
        };
        std::os::unix::fs::chown(&path, Some(owner), Some(account.gid))
            .with_context(|| format!("cannot chown {}", path.display()))?;
        if let Some(mode) = mode {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot chmod {}", path.display()))?;
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(())
}

/// Where `--write-sudoers` puts the drop-in for `user`.
pub(crate) fn sudoers_path(user: &str) -> PathBuf {
    PathBuf::from("/etc/sudoers.d").join(user)
}

/// The sudoers drop-in that lets `user` become root the way Ansible asks
/// (`sudo -H -S -n -u root /bin/sh -c '...'`), without a password.
pub(crate) fn sudoers(user: &str) -> String {
    format!(
        "# Written by `helpdesk setup`: the shipped playbooks become root (Ansible's\n# become: sudo -u root /bin/sh -c ...) on the hosts where they run. This is\n# root for anyone who can make {user} run a command: only helpdesk must run as\n# {user}, and the grants in config.yaml decide what mail may ask for.\n{user} ALL=(root) NOPASSWD: /bin/sh\n"
    )
}

/// Writes the sudoers drop-in for `user` after `visudo -c` passed on it:
/// a file sudo refuses would lock every sudo user out.
pub(crate) fn write_sudoers(user: &str) -> anyhow::Result<PathBuf> {
    let path = sudoers_path(user);
    let dir = path.parent().unwrap_or(Path::new("/etc/sudoers.d"));
    fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    // sudo ignores names with a dot, so the staged file is never read.
    let mut staged = tempfile::Builder::new()
        .prefix(".helpdesk-")
        .tempfile_in(dir)?;
    staged.write_all(sudoers(user).as_bytes())?;
    staged
        .as_file()
        .set_permissions(fs::Permissions::from_mode(0o440))?;
    let out = Command::new("visudo")
        .arg("-cf")
        .arg(staged.path())
        .output()
        .context("cannot run visudo to check the sudoers drop-in (install sudo)")?;
    if !out.status.success() {
        bail!(
            "visudo -c refused the drop-in, nothing written: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    staged
        .persist(&path)
        .map_err(|e| anyhow!("{}: {}", path.display(), e.error))?;
    Ok(path)
}

/// `check --as NAME`: the problems `NAME` has with the folder, found by
/// running `probe-access` with its identity (`setpriv`, with its groups).
pub(crate) fn check_as(config_path: &Path, name: &str) -> Vec<Problem> {
    let shown = config_path.display().to_string();
    let problem = |message: String| Problem {
        file: shown.clone(),
        line: None,
        severity: Severity::Error,
        message,
    };
    let account = match lookup(name) {
        Ok(Some(account)) => account,
        Ok(None) => {
            return vec![problem(format!(
                "--as {name}: no such user; create it with helpdesk setup --user {name} (as root)"
            ))];
        }
        Err(e) => return vec![problem(format!("--as {name}: {e:#}"))],
    };
    let me = rustix::process::geteuid().as_raw();
    let mut command = if me == account.uid {
        Command::new(super::binary())
    } else if me == 0 {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", account.uid))
            .arg(format!("--regid={}", account.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(super::binary());
        c
    } else {
        return vec![problem(format!(
            "--as {name}: only root can check as another user; run it with sudo"
        ))];
    };
    let config = std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let out = command
        .arg("--config")
        .arg(&config)
        .arg("probe-access")
        .env("HOME", &account.home)
        .env("USER", &account.name)
        .current_dir("/")
        .output();
    match out {
        Err(e) => vec![problem(format!("--as {name}: cannot start the check: {e}"))],
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| problem(line.to_owned()))
            .collect(),
    }
}

/// `probe-access`, run as the account: one line per thing it cannot do
/// that a delivery needs (none: all is well).
pub(crate) fn probe(config_path: &Path) -> Vec<String> {
    let me = whoami();
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            return vec![format!(
                "{me} cannot load it: {e}; give the folder to {me}'s group (chgrp -R and chmod g+rX), or re-run helpdesk setup --user {me}"
            )];
        }
    };
    let mut said = Vec::new();
    if let Err(e) = config.desk.keywords() {
        said.push(format!("{me} cannot read the helpdesk folder: {e}"));
    }
    if let Some(mail) = &config.mail
        && let Transport::Smtp(smtp) = &mail.transport
        && let Some(PasswordSource::File(path)) = &smtp.password
        && let Err(e) = fs::read(path)
    {
        said.push(format!(
            "{me} cannot read the SMTP password file {}: {e}; chown {me} {} (mode 600)",
            path.display(),
            path.display()
        ));
    }
    if let Err(e) = probe_writable(&config.state_dir) {
        said.push(format!(
            "{me} cannot write state_dir {}: {e}; chown -R {me} {} (mode 700)",
            config.state_dir.display(),
            config.state_dir.display()
        ));
    }
    if let Err(e) = probe_runnable(&config.ansible.command) {
        said.push(format!(
            "{me} cannot run ansible.command {}: {e}; install ansible-core where {me} can reach it (not under /root)",
            config.ansible.command
        ));
    }
    said
}

fn whoami() -> String {
    let uid = rustix::process::getuid().as_raw();
    std::env::var("USER")
        .ok()
        .filter(|u| lookup(u).ok().flatten().is_some_and(|a| a.uid == uid))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// Creates (if missing) and writes a file in `dir`, as a delivery would.
fn probe_writable(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    tempfile::Builder::new()
        .prefix(".probe-")
        .tempfile_in(dir)
        .map(drop)
}

/// Starts `command --version`, as a run starts it.
fn probe_runnable(command: &str) -> anyhow::Result<()> {
    let out = Command::new(command)
        .arg("--version")
        .env("ANSIBLE_LOCAL_TEMP", std::env::temp_dir())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        bail!(
            "--version exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_allow_listed() {
        for ok in ["helpdesk", "_hd", "hd-1", "a"] {
            assert!(valid_user(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Helpdesk",
            "1hd",
            "hd.x",
            "hd x",
            "-hd",
            "hd/..",
            &"a".repeat(33),
        ] {
            assert!(valid_user(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_sudoers_line_names_only_the_user_and_the_shell_ansible_uses() {
        let text = sudoers("helpdesk");
        let rules: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(rules, ["helpdesk ALL=(root) NOPASSWD: /bin/sh"]);
    }
}
