//! The descriptor limit. Every PPTP control connection, L2TP/IKE socket and management
//! connection takes a descriptor; under a default soft limit of 1,024 a burst of control
//! connections made `accept` (and `/metrics`) fail. At start the soft limit is raised to
//! the hard limit, and the effective limit is logged so operators can size it.

use thiserror::Error;

/// `getrlimit`/`setrlimit` failed.
#[derive(Debug, Error)]
#[error("RLIMIT_NOFILE: {0}")]
pub struct NofileError(#[from] std::io::Error);

/// The soft and hard descriptor limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nofile {
    pub soft: u64,
    pub hard: u64,
}

/// The current limits.
pub fn get() -> Result<Nofile, NofileError> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(Nofile {
        soft: r.rlim_cur,
        hard: r.rlim_max,
    })
}

/// Raises the soft limit to the hard limit; returns the limits in force afterwards.
pub fn raise() -> Result<Nofile, NofileError> {
    let now = get()?;
    if now.soft >= now.hard {
        return Ok(now);
    }
    let r = libc::rlimit {
        rlim_cur: now.hard,
        rlim_max: now.hard,
    };
    // SAFETY: `r` is a valid rlimit; the call only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    get()
}

/// Descriptors the gateway keeps for itself (sockets, TUN, files, management connections)
/// when sizing the PPTP control-connection cap from the limit.
pub const RESERVED: u64 = 256;

/// The control-connection cap that fits the descriptor limit: the configured cap, or less
/// when the limit leaves less room.
pub fn control_connection_cap(configured: usize, limit: Nofile) -> usize {
    let room = limit.soft.saturating_sub(RESERVED);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit() {
        let after = raise().unwrap();
        assert_eq!(after.soft, after.hard);
    }

    #[test]
    fn cap_leaves_room_for_the_gateway() {
        let l = |soft| Nofile { soft, hard: soft };
        assert_eq!(control_connection_cap(20000, l(1024)), 768);
        assert_eq!(control_connection_cap(20000, l(100)), 0);
        assert_eq!(control_connection_cap(500, l(1 << 20)), 500);
    }
}
