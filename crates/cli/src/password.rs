//! Where the repository password comes from, in order: `--password-command`,
//! `--password-file` / `ARCA_PASSWORD_FILE`, `ARCA_PASSWORD`, a prompt on a terminal.

use std::io::IsTerminal;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use zeroize::Zeroizing;

use crate::app::GlobalArgs;

fn strip_newline(mut s: Zeroizing<String>) -> Zeroizing<String> {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

fn from_file(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let bytes = Zeroizing::new(
        std::fs::read(path)
            .with_context(|| format!("cannot read password file {}", path.display()))?,
    );
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("password file {} is not UTF-8", path.display()))?;
    let pw = strip_newline(Zeroizing::new(text.to_owned()));
    if pw.is_empty() {
        bail!("password file {} is empty", path.display());
    }
    Ok(pw)
}

fn from_command(command: &str) -> anyhow::Result<Zeroizing<String>> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::inherit())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run the password command")?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        bail!("the password command failed ({})", out.status);
    }
    let text = std::str::from_utf8(&stdout)
        .context("the password command printed something that is not UTF-8")?;
    let pw = strip_newline(Zeroizing::new(text.to_owned()));
    if pw.is_empty() {
        bail!("the password command printed an empty password");
    }
    Ok(pw)
}

/// Obtains the password. With `confirm` (for `init`), a prompted password is asked twice.
pub fn obtain(global: &GlobalArgs, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    if global.password_command.is_some() && global.password_file.is_some() {
        bail!("give either --password-command or --password-file, not both");
    }
    if let Some(cmd) = &global.password_command {
        return from_command(cmd);
    }
    if let Some(path) = &global.password_file {
        return from_file(path);
    }
    if let Some(pw) = from_env("ARCA_PASSWORD")? {
        return Ok(pw);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password given: set ARCA_PASSWORD, or use --password-file or --password-command");
    }
    prompt(
        "repository password: ",
        confirm.then_some("repeat password: "),
    )
}

/// Obtains a new password (for `key add` and `key passwd`): from `file`, else
/// `ARCA_NEW_PASSWORD`, else asked twice on a terminal.
pub fn obtain_new(file: Option<&Path>) -> anyhow::Result<Zeroizing<String>> {
    if let Some(path) = file {
        return from_file(path);
    }
    if let Some(pw) = from_env("ARCA_NEW_PASSWORD")? {
        return Ok(pw);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no new password given: use --new-password-file or set ARCA_NEW_PASSWORD");
    }
    prompt("new password: ", Some("repeat new password: "))
}

/// The password in environment variable `var`, if set.
fn from_env(var: &str) -> anyhow::Result<Option<Zeroizing<String>>> {
    let Some(pw) = std::env::var_os(var) else {
        return Ok(None);
    };
    let pw = Zeroizing::new(
        pw.into_string()
            .map_err(|_| anyhow::anyhow!("{var} is not UTF-8"))?,
    );
    if pw.is_empty() {
        bail!("{var} is set but empty");
    }
    Ok(Some(pw))
}

/// Asks for a password on the terminal (`label`), and again with `repeat` if given.
fn prompt(label: &str, repeat: Option<&str>) -> anyhow::Result<Zeroizing<String>> {
    let pw = Zeroizing::new(rpassword::prompt_password(label).context("cannot read the password")?);
    if pw.is_empty() {
        bail!("the password is empty");
    }
    if let Some(repeat) = repeat {
        let again =
            Zeroizing::new(rpassword::prompt_password(repeat).context("cannot read the password")?);
        if *again != *pw {
            bail!("the passwords do not match");
        }
    }
    Ok(pw)
}
