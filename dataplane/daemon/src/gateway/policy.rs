//! The gateway's rules, as pure functions of what they decide on: whether a new call or
//! login is admitted (the same rules for PPTP and L2TP), which live sessions a new
//! configuration keeps, and where a session is in its accounting life ([`SessionPhase`]).
//! No locks, sockets or clocks: the callers in `gateway` and `control` gather the inputs.

use crate::config::{Runtime, UserEntry};
use crate::gateway::admission::Refusal;
use crate::metrics::{Protocol, SetupResult};

/// What a new PPTP call (Outgoing-Call-Request, RFC 2637 §2.7) or L2TP session (ICRQ,
/// RFC 2661 §6.10) is admitted on.
#[derive(Clone, Copy, Debug)]
pub struct CallContext {
    /// The configuration serves the call's protocol.
    pub serves: bool,
    /// The gateway is shutting down.
    pub stopping: bool,
    /// The gateway is draining (no new sessions).
    pub draining: bool,
    /// Authenticated sessions now (all protocols).
    pub authenticated: usize,
    /// The gateway's `maxSessions` (0: unlimited).
    pub max_sessions: u32,
}

/// Why a new call was refused before any resource was spent on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallRefusal {
    #[error("the protocol is disabled")]
    Disabled,
    #[error("gateway shutting down")]
    Stopping,
    #[error("gateway draining")]
    Draining,
    #[error("gateway session limit reached")]
    GatewayFull,
}

impl CallRefusal {
    /// How the refusal counts in `sluice_session_setups_total`.
    pub fn setup_result(self) -> SetupResult {
        match self {
            CallRefusal::Draining => SetupResult::Draining,
            _ => SetupResult::Limit,
        }
    }
}

/// Admission of a new call, the same for both protocols. `maxSessions` counts
/// authenticated sessions only: sessions in setup are bounded per source and in total by
/// the admission slots the caller takes next, so they never push real users out.
pub fn admit_call(c: &CallContext) -> Result<(), CallRefusal> {
    if !c.serves {
        Err(CallRefusal::Disabled)
    } else if c.stopping {
        Err(CallRefusal::Stopping)
    } else if c.draining {
        Err(CallRefusal::Draining)
    } else if gateway_full(c.max_sessions, c.authenticated) {
        Err(CallRefusal::GatewayFull)
    } else {
        Ok(())
    }
}

/// Why [`Gateway::open_call`](super::Gateway::open_call) refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenRefusal {
    #[error("{0}")]
    Call(CallRefusal),
    #[error("too many sessions in setup ({})", .0.as_str())]
    Setups(Refusal),
    #[error("out of call IDs")]
    NoIds,
}

impl OpenRefusal {
    /// How the refusal counts in `sluice_session_setups_total`.
    pub fn setup_result(self) -> SetupResult {
        match self {
            OpenRefusal::Call(c) => c.setup_result(),
            OpenRefusal::Setups(_) | OpenRefusal::NoIds => SetupResult::Limit,
        }
    }
}

fn gateway_full(max_sessions: u32, authenticated: usize) -> bool {
    max_sessions > 0 && authenticated >= max_sessions as usize
}

/// Why a login was refused (before or after the password check).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginRefusal {
    #[error("unknown or disabled user")]
    UnknownUser,
    #[error("user may not use {}", .0.as_str())]
    Service(Protocol),
    #[error("user already has {0} session(s) (maxSessions)")]
    UserFull(u32),
    #[error("gateway session limit reached")]
    GatewayFull,
}

impl LoginRefusal {
    /// How the refusal counts: an unknown user is a failed login (as a wrong password, so
    /// that probing for names looks like guessing passwords); the rest are limits.
    pub fn setup_result(&self) -> SetupResult {
        match self {
            LoginRefusal::UnknownUser => SetupResult::AuthFailed,
            _ => SetupResult::Limit,
        }
    }
}

/// Whether `user` (looked up by the name the peer sent) may start one more session over
/// `protocol` while it has `current` (checked when the password is about to be checked).
pub fn admit_login(
    user: Option<&UserEntry>,
    protocol: Protocol,
    current: u32,
) -> Result<&UserEntry, LoginRefusal> {
    let user = user.ok_or(LoginRefusal::UnknownUser)?;
    if !user.may_use(protocol) {
        return Err(LoginRefusal::Service(protocol));
    }
    if user.max_sessions > 0 && current >= user.max_sessions {
        return Err(LoginRefusal::UserFull(current));
    }
    Ok(user)
}

/// Whether an authenticated session may be counted: the gateway's `maxSessions`, then the
/// user's (checked again now: others may have logged in during the password exchange).
pub fn admit_authenticated(
    max_sessions: u32,
    authenticated: usize,
    user: &UserEntry,
    current: u32,
) -> Result<(), LoginRefusal> {
    if gateway_full(max_sessions, authenticated) {
        return Err(LoginRefusal::GatewayFull);
    }
    if user.max_sessions > 0 && current >= user.max_sessions {
        return Err(LoginRefusal::UserFull(current));
    }
    Ok(())
}

/// Whether a live session of `username` over `protocol` survives a reload from `old` to
/// `new`: its protocol is still served, the user still exists and may use it, and its
/// static address did not change. Everything else about a session is left alone.
pub fn keeps_session(old: &Runtime, new: &Runtime, protocol: Protocol, username: &str) -> bool {
    let same_address =
        |u: &UserEntry| old.users.get(username).map(|o| o.remote_address) == Some(u.remote_address);
    new.serves(protocol)
        && new
            .users
            .get(username)
            .is_some_and(|u| u.may_use(protocol) && same_address(u))
}

/// What the last login attempt of a session in setup came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoginAttempt {
    /// None yet, or the last one succeeded.
    #[default]
    None,
    /// Refused by policy (service, limits): not a password guess.
    Refused,
    /// The password was wrong (MS-CHAP peers may retry and succeed).
    Failed,
}

/// Where a session is in the gateway's accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionPhase {
    /// Not authenticated. `recorded`: the setup's outcome is already in the metrics (a
    /// refusal that closes the session).
    Setup { login: LoginAttempt, recorded: bool },
    /// Authenticated and counted toward `maxSessions`. `recorded`: its setup outcome is in
    /// the metrics (`ok` once up, or why it failed after authentication).
    Counted { recorded: bool },
    /// Torn down: it holds nothing any more.
    Closed,
}

impl Default for SessionPhase {
    fn default() -> Self {
        SessionPhase::Setup {
            login: LoginAttempt::None,
            recorded: false,
        }
    }
}

impl SessionPhase {
    /// Torn down.
    pub fn is_closed(self) -> bool {
        self == SessionPhase::Closed
    }

    /// Marks the setup's outcome as recorded; `true` the first time (record it then).
    pub fn record(&mut self) -> bool {
        match self {
            SessionPhase::Setup { recorded, .. } | SessionPhase::Counted { recorded } => {
                !std::mem::replace(recorded, true)
            }
            SessionPhase::Closed => false,
        }
    }

    /// A login attempt was refused by policy.
    pub fn login_refused(&mut self) {
        if let SessionPhase::Setup { login, .. } = self {
            *login = LoginAttempt::Refused;
        }
    }

    /// A login attempt failed its check; `true` when it was a password failure (not a
    /// policy refusal, which [`login_refused`](Self::login_refused) marked).
    pub fn login_failed(&mut self) -> bool {
        match self {
            SessionPhase::Setup { login, .. } if *login != LoginAttempt::Refused => {
                *login = LoginAttempt::Failed;
                true
            }
            _ => false,
        }
    }

    /// A login succeeded: earlier failed attempts no longer count.
    pub fn login_succeeded(&mut self) {
        if let SessionPhase::Setup { login, .. } = self {
            *login = LoginAttempt::None;
        }
    }

    /// The session counts toward `maxSessions` from now on.
    pub fn count(&mut self) {
        if let SessionPhase::Setup { recorded, .. } = *self {
            *self = SessionPhase::Counted { recorded };
        }
    }

    /// Tears the session down; `None` when it already was.
    pub fn close(&mut self, result: SetupResult) -> Option<Closing> {
        let before = std::mem::replace(self, SessionPhase::Closed);
        // A peer that hangs up (or goes silent) after a wrong password failed authentication.
        let failed_login = matches!(
            before,
            SessionPhase::Setup {
                login: LoginAttempt::Failed,
                ..
            }
        );
        let result = match result {
            SetupResult::PeerClosed | SetupResult::Timeout if failed_login => {
                SetupResult::AuthFailed
            }
            r => r,
        };
        match before {
            SessionPhase::Closed => None,
            SessionPhase::Setup { recorded, .. } => Some(Closing {
                counted: false,
                recorded,
                result,
            }),
            SessionPhase::Counted { recorded } => Some(Closing {
                counted: true,
                recorded,
                result,
            }),
        }
    }
}

/// What a session held when it was torn down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closing {
    /// It counted toward `maxSessions` (uncount it).
    pub counted: bool,
    /// Its setup outcome is already in the metrics.
    pub recorded: bool,
    /// The outcome of its setup, if it never came up and was not recorded yet.
    pub result: SetupResult,
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
