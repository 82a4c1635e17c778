//! Facts about the running system that snapshots record: the time, the local UTC offset,
//! host and user names.

use arca_repo::Timestamp;

/// The current time.
pub(crate) fn now() -> Timestamp {
    let now = jiff::Timestamp::now();
    Timestamp {
        secs: now.as_second(),
        nanos: now.subsec_nanosecond().clamp(0, 999_999_999) as u32,
    }
}

/// The local time zone's offset from UTC at `t`, in seconds east.
pub(crate) fn utc_offset(t: Timestamp) -> i32 {
    jiff::Timestamp::from_second(t.secs)
        .map(|ts| jiff::tz::TimeZone::system().to_offset(ts).seconds())
        .unwrap_or(0)
}

/// This host's name, or `localhost` if it cannot be read.
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The effective user's name, or the uid as text.
pub(crate) fn username() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Worker threads for a stage: `requested`, or one per CPU when it is 0.
pub(crate) fn worker_threads(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}
