//! What one source address may hold before anyone has authenticated.
//!
//! Call IDs, PPP engines and descriptors are spent before a password is checked, so an
//! unauthenticated source could take them all. Bounded here:
//!
//! * PPTP control connections per source address ([`ConnSlot`]);
//! * sessions in setup (not yet authenticated) per source and in total ([`SetupSlot`]), for
//!   PPTP calls and L2TP sessions alike.
//!
//! `maxSessions` counts authenticated sessions only ([`Admission::authenticated`]), so
//! sessions in setup never push real users out. Slots are RAII guards: dropping one gives
//! its place back.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// The caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// PPTP control connections from one address (clients behind one NAT share it).
    pub control_per_source: u32,
    /// Sessions in setup from one address.
    pub setups_per_source: u32,
    /// Sessions in setup from all addresses.
    pub setups_total: u32,
}

impl Default for AdmissionLimits {
    fn default() -> AdmissionLimits {
        AdmissionLimits {
            control_per_source: 64,
            setups_per_source: 16,
            setups_total: 1024,
        }
    }
}

/// Why a connection or session was not admitted (the `sluice_dropped_packets_total` reason
/// / setup refusal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    ControlPerSource,
    SetupsPerSource,
    SetupsTotal,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ControlPerSource => "control_connections_per_source",
            Refusal::SetupsPerSource => "setups_per_source",
            Refusal::SetupsTotal => "setups_total",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    per_source: HashMap<Ipv4Addr, u32>,
    total: u32,
}

impl Counts {
    fn take(&mut self, src: Ipv4Addr, per_source: u32, total: u32) -> Result<(), bool> {
        if self.total >= total {
            return Err(true);
        }
        let n = self.per_source.entry(src).or_insert(0);
        if *n >= per_source {
            return Err(false);
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    fn give(&mut self, src: Ipv4Addr) {
        if let Some(n) = self.per_source.get_mut(&src) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_source.remove(&src);
            }
            self.total = self.total.saturating_sub(1);
        }
    }
}

/// The gateway's admission state.
#[derive(Debug, Default)]
pub struct Admission {
    limits: AdmissionLimits,
    conns: Mutex<Counts>,
    setups: Mutex<Counts>,
    authenticated: AtomicUsize,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            ..Admission::default()
        })
    }

    /// A PPTP control connection from `src`, if the source has room.
    pub fn control_connection(self: &Arc<Self>, src: Ipv4Addr) -> Result<ConnSlot, Refusal> {
        lock(&self.conns)
            .take(src, self.limits.control_per_source, u32::MAX)
            .map_err(|_| Refusal::ControlPerSource)?;
        Ok(ConnSlot {
            adm: self.clone(),
            src,
        })
    }

    /// A session in setup from `src`, if the source and the gateway have room.
    pub fn setup(self: &Arc<Self>, src: Ipv4Addr) -> Result<SetupSlot, Refusal> {
        lock(&self.setups)
            .take(src, self.limits.setups_per_source, self.limits.setups_total)
            .map_err(|total| {
                if total {
                    Refusal::SetupsTotal
                } else {
                    Refusal::SetupsPerSource
                }
            })?;
        Ok(SetupSlot {
            adm: self.clone(),
            src,
        })
    }

    /// Authenticated sessions (what `maxSessions` bounds).
    pub fn authenticated(&self) -> usize {
        self.authenticated.load(Ordering::Relaxed)
    }

    /// One more authenticated session.
    pub fn add_authenticated(&self) {
        self.authenticated.fetch_add(1, Ordering::Relaxed);
    }

    /// One authenticated session fewer.
    pub fn remove_authenticated(&self) {
        let _ = self
            .authenticated
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Sessions in setup now.
    pub fn setups(&self) -> u32 {
        lock(&self.setups).total
    }
}

/// A PPTP control connection's place; given back on drop.
#[derive(Debug)]
pub struct ConnSlot {
    adm: Arc<Admission>,
    src: Ipv4Addr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        lock(&self.adm.conns).give(self.src);
    }
}

/// A session-in-setup's place; given back on drop (at authentication or teardown).
#[derive(Debug)]
pub struct SetupSlot {
    adm: Arc<Admission>,
    src: Ipv4Addr,
}

impl Drop for SetupSlot {
    fn drop(&mut self) {
        lock(&self.adm.setups).give(self.src);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn per_source_and_total_caps_hold_and_slots_come_back() {
        let adm = Admission::new(AdmissionLimits {
            control_per_source: 2,
            setups_per_source: 2,
            setups_total: 3,
        });
        let a = Ipv4Addr::new(192, 0, 2, 1);
        let b = Ipv4Addr::new(192, 0, 2, 2);
        let c1 = adm.control_connection(a).unwrap();
        let _c2 = adm.control_connection(a).unwrap();
        assert_eq!(
            adm.control_connection(a).unwrap_err(),
            Refusal::ControlPerSource
        );
        let _other = adm.control_connection(b).unwrap();
        drop(c1);
        let _c3 = adm.control_connection(a).unwrap();

        let s1 = adm.setup(a).unwrap();
        let _s2 = adm.setup(a).unwrap();
        assert_eq!(adm.setup(a).unwrap_err(), Refusal::SetupsPerSource);
        let _s3 = adm.setup(b).unwrap();
        assert_eq!(adm.setup(b).unwrap_err(), Refusal::SetupsTotal);
        assert_eq!(adm.setups(), 3);
        drop(s1);
        assert_eq!(adm.setups(), 2);
        let _s4 = adm.setup(b).unwrap();
    }

    #[test]
    fn authenticated_count_never_underflows() {
        let adm = Admission::new(AdmissionLimits::default());
        adm.add_authenticated();
        adm.remove_authenticated();
        adm.remove_authenticated();
        assert_eq!(adm.authenticated(), 0);
    }
}
