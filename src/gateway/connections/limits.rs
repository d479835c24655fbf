//! The descriptor limit, raised to the hard limit at start, and the connection cap it
//! leaves room for.

use std::io;
use std::sync::atomic::Ordering;

use super::{FD_RESERVE, Gateway, Settings};

/// The descriptor limit before and after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub before: u64,
    pub soft: u64,
    pub hard: u64,
}

fn get_nofile() -> io::Result<libc::rlimit> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct it is given, which lives on our stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(l)
}

/// Why the descriptor limit could not be read or raised (the gateway serves all the same,
/// with the cap the soft limit allows).
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("cannot read the descriptor limit: {0}")]
    Read(#[source] io::Error),
    #[error("cannot raise the descriptor limit from {before} to its hard limit {hard}: {source}")]
    Raise {
        before: u64,
        hard: u64,
        source: io::Error,
    },
}

/// Raises the soft limit on open descriptors to the hard limit (the common soft limit
/// of 1,024 would let 1,024 idle sockets lock every client out). Idempotent.
pub fn raise_nofile_limit() -> Result<NofileLimit, LimitError> {
    let l = get_nofile().map_err(LimitError::Read)?;
    let (before, hard) = (l.rlim_cur, l.rlim_max);
    if l.rlim_cur < l.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: l.rlim_max,
            rlim_max: l.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given, which lives on our stack.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(LimitError::Raise {
                before,
                hard,
                source: io::Error::last_os_error(),
            });
        }
    }
    Ok(NofileLimit {
        before,
        soft: hard,
        hard,
    })
}

/// The connection cap: `max_connections`, lowered so that the connections and
/// [`FD_RESERVE`] fit in the descriptor soft limit.
pub fn effective_cap(max_connections: usize, soft: u64) -> usize {
    let reserve = FD_RESERVE.min(soft / 2);
    let room = usize::try_from(soft.saturating_sub(reserve)).unwrap_or(usize::MAX);
    max_connections.min(room).max(1)
}

/// What the gateway starts with: the descriptor limit (raised) and the connection cap.
pub struct Prepared {
    pub limit: Result<NofileLimit, LimitError>,
    pub cap: usize,
    pub settings: Settings,
}

/// Raises the descriptor limit and works out the cap (idempotent: `serve` calls it too).
pub fn prepare(gw: &Gateway) -> Prepared {
    let settings = gw.connections.settings.clone();
    let limit = raise_nofile_limit();
    let soft = match &limit {
        Ok(l) => Some(l.soft),
        Err(_) => get_nofile().ok().map(|l| l.rlim_cur),
    };
    let cap = match soft {
        Some(s) => effective_cap(settings.max_connections, s),
        None => settings.max_connections,
    };
    if let Some(s) = soft {
        gw.connections.stats.nofile_soft.store(s, Ordering::Relaxed);
    }
    gw.connections.stats.cap.store(cap, Ordering::Relaxed);
    Prepared {
        limit,
        cap,
        settings,
    }
}

impl Prepared {
    /// True when the descriptor limit keeps the cap below `max_connections`, or could not
    /// be raised: worth telling the operator.
    pub fn constrained(&self) -> bool {
        self.limit.is_err() || self.cap < self.settings.max_connections
    }
}

impl std::fmt::Display for Prepared {
    /// One line for the operator, e.g. "connections: up to 4096 (descriptor limit raised
    /// from 1024 to 524288, the hard limit); timeouts: header 10s, body 30s, idle 60s".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connections: up to {}", self.cap)?;
        match &self.limit {
            Ok(l) if l.before < l.soft => write!(
                f,
                " (descriptor limit raised from {} to {}, the hard limit)",
                l.before, l.soft
            )?,
            Ok(l) => write!(f, " (descriptor limit {}, the hard limit)", l.soft)?,
            Err(e) => write!(f, " ({e})")?,
        }
        if self.cap < self.settings.max_connections {
            write!(
                f,
                ", below max_connections {}: raise the hard limit (ulimit -Hn, systemd \
                 LimitNOFILE, docker --ulimit nofile) for more",
                self.settings.max_connections
            )?;
        }
        let s = &self.settings;
        write!(
            f,
            "; timeouts: header {:?}, body {:?}, idle {:?}",
            s.header_read_timeout, s.body_read_timeout, s.idle_timeout
        )
    }
}
