//! Session events on their way to the operator (agent mode only): a bounded
//! queue filled by the gateway's hooks and drained by the agent's reports.
//! When the operator is away long enough for it to fill, the oldest events go
//! first; the periodic session snapshot makes up for what was lost.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
use sluice_proto::v1 as pb;

use crate::metrics::Protocol;

/// Default bound on queued events.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Bounded FIFO of session events.
pub struct EventQueue {
    events: Mutex<VecDeque<pb::SessionEvent>>,
    capacity: usize,
    dropped: Counter,
}

impl EventQueue {
    /// A queue of at most `capacity` events; `dropped` counts those pushed out.
    pub fn new(capacity: usize, dropped: Counter) -> EventQueue {
        EventQueue {
            events: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            dropped,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<pb::SessionEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an event, dropping the oldest one when full.
    pub fn push(&self, event: pb::SessionEvent) {
        let mut q = self.lock();
        while q.len() >= self.capacity {
            q.pop_front();
            self.dropped.inc();
        }
        q.push_back(event);
    }

    /// Takes every queued event, oldest first.
    pub fn drain(&self) -> Vec<pb::SessionEvent> {
        self.lock().drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Seconds since the Unix epoch (0 for a clock before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What one event says, besides its kind.
pub struct Details<'a> {
    pub protocol: Protocol,
    pub username: &'a str,
    pub source: &'a str,
    pub caller: Ipv4Addr,
    pub address: Option<Ipv4Addr>,
    pub reason: &'a str,
}

/// A session event stamped with the current time.
pub fn session_event(kind: pb::SessionEventKind, d: Details<'_>) -> pb::SessionEvent {
    pb::SessionEvent {
        kind: kind as i32,
        username: d.username.to_owned(),
        source: d.source.to_owned(),
        time_unix: unix_now(),
        protocol: d.protocol.as_str().into(),
        caller_address: d.caller.to_string(),
        address: d.address.map(|a| a.to_string()).unwrap_or_default(),
        reason: d.reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u8) -> pb::SessionEvent {
        session_event(
            pb::SessionEventKind::Up,
            Details {
                protocol: Protocol::Pptp,
                username: &format!("u{n}"),
                source: "",
                caller: Ipv4Addr::new(192, 0, 2, n),
                address: None,
                reason: "",
            },
        )
    }

    #[test]
    fn drains_oldest_first() {
        let q = EventQueue::new(8, Counter::default());
        for n in 0..3 {
            q.push(event(n));
        }
        let names: Vec<_> = q.drain().into_iter().map(|e| e.username).collect();
        assert_eq!(names, ["u0", "u1", "u2"]);
        assert!(q.is_empty());
    }

    #[test]
    fn full_queue_drops_the_oldest_and_counts_it() {
        let dropped = Counter::default();
        let q = EventQueue::new(2, dropped.clone());
        for n in 0..5 {
            q.push(event(n));
        }
        assert_eq!(dropped.get(), 3);
        let names: Vec<_> = q.drain().into_iter().map(|e| e.username).collect();
        assert_eq!(names, ["u3", "u4"]);
    }
}
