//! Tunnel address pool: dynamic addresses from the gateway's CIDR plus the
//! static addresses users own. Allocation walks a cursor round the pool so a
//! just-released address is not handed out again at once.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Why an address could not be assigned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("address pool {0} is exhausted")]
    Exhausted(Ipv4Net),
    #[error("static address {0} is already in use")]
    InUse(Ipv4Addr),
}

/// Dynamic pool plus the set of addresses currently leased (dynamic or static).
#[derive(Debug)]
pub struct Pool {
    net: Ipv4Net,
    /// Addresses never handed out dynamically (gateway address, users' static addresses).
    reserved: HashSet<Ipv4Addr>,
    leased: HashSet<Ipv4Addr>,
    cursor: u32,
}

impl Pool {
    /// A pool over `net`; the network and broadcast addresses and everything in
    /// `reserved` are never assigned dynamically.
    pub fn new(net: Ipv4Net, reserved: impl IntoIterator<Item = Ipv4Addr>) -> Self {
        Pool {
            net,
            reserved: reserved.into_iter().collect(),
            leased: HashSet::new(),
            cursor: 0,
        }
    }

    /// Re-targets the pool after a reload; current leases stay leased.
    pub fn reconfigure(&mut self, net: Ipv4Net, reserved: impl IntoIterator<Item = Ipv4Addr>) {
        if net != self.net {
            self.cursor = 0;
        }
        self.net = net;
        self.reserved = reserved.into_iter().collect();
    }

    /// Number of addresses the pool can hand out dynamically.
    pub fn capacity(&self) -> u32 {
        let first = u32::from(self.net.network()) + 1;
        let last = u32::from(self.net.broadcast()).saturating_sub(1);
        let total = last.saturating_add(1).saturating_sub(first);
        let reserved_inside = self
            .reserved
            .iter()
            .filter(|a| self.assignable(**a))
            .count() as u32;
        total.saturating_sub(reserved_inside)
    }

    /// Addresses currently leased (static ones included).
    pub fn leased(&self) -> usize {
        self.leased.len()
    }

    fn assignable(&self, addr: Ipv4Addr) -> bool {
        self.net.contains(&addr) && addr != self.net.network() && addr != self.net.broadcast()
    }

    /// Leases the next free dynamic address.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, PoolError> {
        let base = u32::from(self.net.network());
        let size = 1u64 << (32 - u32::from(self.net.prefix_len()));
        for _ in 0..size {
            let offset = self.cursor;
            self.cursor = ((u64::from(self.cursor) + 1) % size) as u32;
            let addr = Ipv4Addr::from(base.wrapping_add(offset));
            if self.assignable(addr)
                && !self.reserved.contains(&addr)
                && !self.leased.contains(&addr)
            {
                self.leased.insert(addr);
                return Ok(addr);
            }
        }
        Err(PoolError::Exhausted(self.net))
    }

    /// Leases a user's static address.
    pub fn claim(&mut self, addr: Ipv4Addr) -> Result<Ipv4Addr, PoolError> {
        if !self.leased.insert(addr) {
            return Err(PoolError::InUse(addr));
        }
        Ok(addr)
    }

    /// Returns an address to the pool.
    pub fn release(&mut self, addr: Ipv4Addr) {
        self.leased.remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn skips_network_broadcast_and_reserved() {
        let mut p = Pool::new(net("10.0.0.0/30"), [Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!(p.capacity(), 1);
        assert_eq!(p.allocate(), Ok(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(p.allocate(), Err(PoolError::Exhausted(net("10.0.0.0/30"))));
        p.release(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.allocate(), Ok(Ipv4Addr::new(10, 0, 0, 2)));
    }

    #[test]
    fn does_not_reuse_immediately() {
        let mut p = Pool::new(net("10.0.0.0/29"), []);
        let a = p.allocate().unwrap();
        p.release(a);
        let b = p.allocate().unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn static_claims_are_exclusive() {
        let mut p = Pool::new(net("10.0.0.0/24"), [Ipv4Addr::new(10, 0, 0, 9)]);
        let s = Ipv4Addr::new(10, 0, 0, 9);
        assert_eq!(p.claim(s), Ok(s));
        assert_eq!(p.claim(s), Err(PoolError::InUse(s)));
        for _ in 0..300 {
            if let Ok(a) = p.allocate() {
                assert_ne!(a, s);
            }
        }
    }
}
