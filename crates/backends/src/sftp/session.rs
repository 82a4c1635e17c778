//! SSH connections: connecting, verifying the server's host key against known_hosts,
//! logging in, and a pool of open SFTP sessions.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use ssh2::{CheckResult, ErrorCode, HashType, KnownHostFileKind, Session, Sftp};

use super::SftpConfig;
use crate::{BackendError, ErrorKind};

/// An open, logged-in connection with its SFTP channel.
pub(super) struct Conn {
    session: Session,
    pub sftp: Sftp,
    /// When it was last used: idle connections may have been dropped by a NAT or
    /// firewall without notice, so old ones are not reused.
    used: std::time::Instant,
}

/// What went wrong inside an operation on a connection.
pub(super) enum Fail {
    Ssh(ssh2::Error),
    Io(std::io::Error),
    /// A transfer the server refused with a status (disk full, permission denied):
    /// permanent, and the connection stays usable.
    Refused(String),
    Backend(BackendError),
}

impl From<ssh2::Error> for Fail {
    fn from(e: ssh2::Error) -> Self {
        Self::Ssh(e)
    }
}

// No `From<std::io::Error>`: an I/O error must be classified where it happens, with
// `Channel::io_failure`, so that `?` cannot skip that.

impl From<BackendError> for Fail {
    fn from(e: BackendError) -> Self {
        Self::Backend(e)
    }
}

// SFTP status codes (draft-ietf-secsh-filexfer-02 and libssh2's extensions).
const FX_NO_SUCH_FILE: i32 = 2;
const FX_PERMISSION_DENIED: i32 = 3;
const FX_NO_CONNECTION: i32 = 6;
const FX_CONNECTION_LOST: i32 = 7;
const FX_NO_SUCH_PATH: i32 = 10;
const FX_FILE_ALREADY_EXISTS: i32 = 11;

/// The SFTP status code of `e`, if the server answered with one.
pub(super) fn sftp_status(e: &ssh2::Error) -> Option<i32> {
    match e.code() {
        ErrorCode::SFTP(code) => Some(code),
        ErrorCode::Session(_) => None,
    }
}

impl Fail {
    /// Whether the connection is still usable afterwards: the server answered, so
    /// the channel is in a known state.
    fn leaves_connection_usable(&self) -> bool {
        match self {
            Self::Ssh(e) => {
                sftp_status(e).is_some_and(|c| c != FX_NO_CONNECTION && c != FX_CONNECTION_LOST)
            }
            Self::Io(_) => false,
            Self::Refused(_) | Self::Backend(_) => true,
        }
    }

    pub(super) fn into_error(self, operation: &'static str, object: String) -> BackendError {
        match self {
            Self::Backend(e) => e,
            Self::Refused(message) => {
                BackendError::new(ErrorKind::Permanent, operation, object, message)
            }
            Self::Io(e) => {
                let e = BackendError::from_io(operation, object, e);
                if e.kind() == ErrorKind::Permanent {
                    // A broken transfer on an SSH channel: the connection is gone.
                    BackendError::new(
                        ErrorKind::Transient,
                        operation,
                        e.object().to_owned(),
                        e.to_string(),
                    )
                } else {
                    e
                }
            }
            Self::Ssh(e) => {
                let kind = match sftp_status(&e) {
                    Some(FX_NO_SUCH_FILE | FX_NO_SUCH_PATH) => ErrorKind::NotFound,
                    Some(FX_FILE_ALREADY_EXISTS) => ErrorKind::AlreadyExists,
                    Some(FX_NO_CONNECTION | FX_CONNECTION_LOST) | None => ErrorKind::Transient,
                    Some(FX_PERMISSION_DENIED) | Some(_) => ErrorKind::Permanent,
                };
                BackendError::new(kind, operation, object, e.message().to_owned())
            }
        }
    }
}

/// Standard base64 without padding, as `ssh-keygen -l` prints SHA256 fingerprints.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// A pooled connection as an operation sees it: its SFTP channel (what it derefs to),
/// and its session, to tell why a transfer through `std::io` failed.
pub(super) struct Channel<'a> {
    sftp: &'a Sftp,
    session: &'a Session,
}

impl std::ops::Deref for Channel<'_> {
    type Target = Sftp;

    fn deref(&self) -> &Sftp {
        self.sftp
    }
}

impl Channel<'_> {
    /// Classifies a failed read or write through `std::io`, which loses the SFTP
    /// status. Call it at once, before anything else runs on the connection: the
    /// session's last error is then this failure's.
    pub(super) fn io_failure(&self, e: std::io::Error) -> Fail {
        let answered = ssh2::Error::last_session_error(self.session)
            .is_some_and(|last| last.code() == ErrorCode::Session(LIBSSH2_ERROR_SFTP_PROTOCOL));
        if refused(e.kind(), answered) {
            Fail::Refused(format!("the server refused: {e}"))
        } else {
            Fail::Io(e)
        }
    }
}

/// libssh2's "the server answered with an SFTP status".
const LIBSSH2_ERROR_SFTP_PROTOCOL: i32 = -31;

/// Whether an I/O failure of kind `kind` was the server refusing the transfer (disk
/// full, permission denied: permanent), given whether the session's last error is an
/// SFTP status. A timeout or a broken connection never is, whatever the session says.
fn refused(kind: std::io::ErrorKind, answered: bool) -> bool {
    use std::io::ErrorKind as K;
    let broken = matches!(
        kind,
        K::TimedOut
            | K::WouldBlock
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::UnexpectedEof
    );
    answered && !broken
}

/// Idle connections, reused by later calls.
pub(super) struct Pool {
    config: SftpConfig,
    idle: Mutex<Vec<Conn>>,
}

/// Idle connections kept; more are closed when returned.
const MAX_IDLE: usize = 16;
/// Connections idle for longer are closed rather than reused.
const MAX_IDLE_TIME: Duration = Duration::from_secs(60);

impl Pool {
    pub fn new(config: SftpConfig) -> Self {
        Self {
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn config(&self) -> &SftpConfig {
        &self.config
    }

    /// Runs `f` on a pooled connection (opening one if none is idle). The connection
    /// goes back to the pool unless `f` broke it.
    pub fn with<T>(
        &self,
        operation: &'static str,
        object: &dyn Fn() -> String,
        f: impl FnOnce(&Channel<'_>) -> Result<T, Fail>,
    ) -> Result<T, BackendError> {
        let taken = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|c| c.used.elapsed() < MAX_IDLE_TIME);
            idle.pop()
        };
        let mut conn = match taken {
            Some(conn) => conn,
            None => self.connect(operation)?,
        };
        let result = f(&Channel {
            sftp: &conn.sftp,
            session: &conn.session,
        });
        conn.used = std::time::Instant::now();
        let keep = match &result {
            Ok(_) => true,
            Err(fail) => fail.leaves_connection_usable(),
        };
        if keep {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        result.map_err(|fail| fail.into_error(operation, object()))
    }

    fn error(&self, kind: ErrorKind, operation: &'static str, message: String) -> BackendError {
        BackendError::new(kind, operation, self.config.location(), message)
    }

    fn connect(&self, operation: &'static str) -> Result<Conn, BackendError> {
        let c = &self.config;
        let transient = |m: String| self.error(ErrorKind::Transient, operation, m);
        let permanent = |m: String| self.error(ErrorKind::Permanent, operation, m);
        let addrs: Vec<_> = (c.host.as_str(), c.port)
            .to_socket_addrs()
            .map_err(|e| transient(format!("cannot resolve {}: {e}", c.host)))?
            .collect();
        let connect_timeout = c.timeout.min(Duration::from_secs(30));
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            let why = last.map_or_else(|| "no address".to_owned(), |e| e.to_string());
            transient(format!("cannot connect to {}:{}: {why}", c.host, c.port))
        })?;
        let mut session = Session::new().map_err(|e| permanent(e.to_string()))?;
        session.set_timeout(u32::try_from(c.timeout.as_millis()).unwrap_or(u32::MAX));
        session.set_tcp_stream(stream);
        session
            .handshake()
            .map_err(|e| transient(format!("SSH handshake failed: {}", e.message())))?;
        self.check_host_key(&session, operation)?;
        self.log_in(&session, operation)?;
        let sftp = session.sftp().map_err(|e| {
            permanent(format!(
                "cannot start SFTP (is the sftp subsystem enabled?): {}",
                e.message()
            ))
        })?;
        Ok(Conn {
            session,
            sftp,
            used: std::time::Instant::now(),
        })
    }

    /// The server's host key must be in known_hosts: unknown or changed keys are
    /// refused, never accepted silently.
    fn check_host_key(
        &self,
        session: &Session,
        operation: &'static str,
    ) -> Result<(), BackendError> {
        let c = &self.config;
        let permanent = |m: String| self.error(ErrorKind::Permanent, operation, m);
        let (key, _) = session
            .host_key()
            .ok_or_else(|| permanent("the server sent no host key".to_owned()))?;
        let fingerprint = session
            .host_key_hash(HashType::Sha256)
            .map(|h| format!("SHA256:{}", base64(h)))
            .unwrap_or_default();
        let mut known = session
            .known_hosts()
            .map_err(|e| permanent(e.to_string()))?;
        let file = c.known_hosts.display();
        if !c.known_hosts.exists() {
            return Err(permanent(format!(
                "the host key of {} ({fingerprint}) cannot be verified: {file} does not exist",
                c.host
            )));
        }
        known
            .read_file(&c.known_hosts, KnownHostFileKind::OpenSSH)
            .map_err(|e| permanent(format!("cannot read {file}: {}", e.message())))?;
        match known.check_port(&c.host, c.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::NotFound => Err(permanent(format!(
                "the host key of {}:{} ({fingerprint}) is not in {file}: check it and add it (ssh-keyscan -p {} {} >> {file})",
                c.host, c.port, c.port, c.host
            ))),
            CheckResult::Mismatch => Err(permanent(format!(
                "the host key of {}:{} ({fingerprint}) differs from the one in {file}: the server was replaced or someone is intercepting the connection; refusing to connect",
                c.host, c.port
            ))),
            CheckResult::Failure => Err(permanent(format!(
                "cannot check the host key of {} against {file}",
                c.host
            ))),
        }
    }

    /// Logs in with the SSH agent, then the configured key file, then `~/.ssh/id_*`.
    fn log_in(&self, session: &Session, operation: &'static str) -> Result<(), BackendError> {
        let c = &self.config;
        let mut tried = Vec::new();
        if std::env::var_os("SSH_AUTH_SOCK").is_some() {
            tried.push("the SSH agent".to_owned());
            // Every key the agent holds, not only the first (userauth_agent's choice).
            if let Ok(mut agent) = session.agent()
                && agent.connect().is_ok()
                && agent.list_identities().is_ok()
            {
                for identity in agent.identities().unwrap_or_default() {
                    if agent.userauth(&c.user, &identity).is_ok() && session.authenticated() {
                        return Ok(());
                    }
                }
                let _ = agent.disconnect();
            }
        }
        let mut keys: Vec<PathBuf> = c.key_file.iter().cloned().collect();
        if let Some(home) = &c.home {
            for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                keys.push(home.join(".ssh").join(name));
            }
        }
        for key in keys {
            if c.key_file.as_ref() != Some(&key) && !key.exists() {
                continue;
            }
            tried.push(key.display().to_string());
            if session
                .userauth_pubkey_file(&c.user, None, &key, None)
                .is_ok()
                && session.authenticated()
            {
                return Ok(());
            }
        }
        let tried = if tried.is_empty() {
            "no agent and no key file".to_owned()
        } else {
            tried.join(", ")
        };
        Err(self.error(
            ErrorKind::Permanent,
            operation,
            format!(
                "cannot log in as {} (tried {tried}); keys with a passphrase must be loaded into ssh-agent",
                c.user
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{base64, refused};

    #[test]
    fn only_an_answered_failure_that_is_no_broken_connection_is_a_refusal() {
        use std::io::ErrorKind as K;
        assert!(refused(K::Other, true), "disk full, permission denied");
        assert!(!refused(K::Other, false), "a failure of the connection");
        for broken in [
            K::TimedOut,
            K::ConnectionReset,
            K::BrokenPipe,
            K::UnexpectedEof,
        ] {
            assert!(!refused(broken, true), "{broken:?}");
        }
    }

    #[test]
    fn base64_matches_openssh_fingerprints() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg");
        assert_eq!(base64(b"fo"), "Zm8");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8");
    }
}
