//! What the data plane takes from its host: the wall clock, the host name, the descriptor
//! limit ([`nofile`]) and seeds for the engines' CSPRNGs (IKE nonces and DH keys, MS-CHAP
//! challenges, ESP IVs, Call and Session IDs), from the operating system's generator and
//! nothing else.
//!
//! A failing OS generator is fatal: there is no fallback (a clock-derived seed would make
//! every secret above guessable). [`check`] runs at start-up so such a host never serves.

pub mod nofile;

use thiserror::Error;

/// The OS random number generator failed.
#[derive(Debug, Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RngError(#[from] getrandom::Error);

/// The host would not start a thread.
#[derive(Debug, Error)]
#[error("starting thread {name}: {source}")]
pub struct ThreadError {
    pub name: &'static str,
    pub source: std::io::Error,
}

/// Starts a named thread (the data path's receive and timer threads, in the gateway and
/// the client alike).
pub fn spawn(name: &'static str, f: impl FnOnce() + Send + 'static) -> Result<(), ThreadError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
        .map_err(|source| ThreadError { name, source })
}

/// Reads 32 bytes from the OS generator once, so a broken generator stops start-up.
pub fn check() -> Result<(), RngError> {
    let mut s = [0u8; 32];
    getrandom::fill(&mut s)?;
    Ok(())
}

/// 32 bytes from the OS for an engine's CSPRNG. Exits the process if the OS generator fails
/// after start-up.
pub fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut s) {
        fatal(e.into());
    }
    s
}

/// 64 random bits (see [`seed`]).
pub fn seed_u64() -> u64 {
    let mut s = [0u8; 8];
    if let Err(e) = getrandom::fill(&mut s) {
        fatal(e.into());
    }
    u64::from_le_bytes(s)
}

fn fatal(e: RngError) -> ! {
    tracing::error!(error = %e, "stopping: no secure randomness");
    eprintln!("error: {e}");
    std::process::exit(70)
}

/// This host's name (the PPTP Host Name field, RFC 2637 §2.1).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "sluice".into())
}

/// Wall-clock seconds since the epoch, for the engines' certificate validity checks.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_differ() {
        super::check().unwrap();
        assert_ne!(super::seed(), super::seed());
        assert_ne!(super::seed_u64(), super::seed_u64());
    }
}
