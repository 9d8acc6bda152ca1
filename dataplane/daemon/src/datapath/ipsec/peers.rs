//! The L2TP peers reached over IPsec, by *peer key* (see [`super`]), and how a key follows
//! its client when the client's NAT mapping changes (RFC 3948 §2.3, RFC 3947 §5).
//!
//! A key maps to the IKE SA it is bound to and to the *name* the L2TP side knows the peer by
//! (its tunnels' remote address and the framing of its sessions). A key is its own name until
//! its client moves: then the new key is an *alias* of the old name, so ESP from the new
//! address reaches the same tunnels at once, and L2TP sent to the old name still goes out
//! (to the SA's new address). The L2TP control task then renames the peer
//! ([`PeerTable::renames`], [`PeerTable::renamed`]), which retires the old key: a later
//! client at the old address never lands in this peer's tunnels.

use std::collections::HashMap;
use std::net::SocketAddrV4;

use thiserror::Error;

/// Where one peer key leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Binding {
    pub ike: u64,
    /// The client's inner UDP port (where our L2TP goes inside ESP).
    pub inner_port: u16,
    /// The name the L2TP side knows the peer by: the key itself unless the peer moved.
    pub l2tp: SocketAddrV4,
}

/// Why a peer key did not follow its IKE SA to a new address.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MoveRefused {
    /// The old address is no key of that IKE SA (nothing to move).
    #[error("{0} is not bound to the moving IKE SA")]
    NotBound(SocketAddrV4),
    /// Another IKE SA's peer is known at the new address.
    #[error("{0} is bound to another IKE SA")]
    Taken(SocketAddrV4),
}

/// Peer keys and their bindings.
#[derive(Debug, Default)]
pub(super) struct PeerTable {
    map: HashMap<SocketAddrV4, Binding>,
}

impl PeerTable {
    pub fn get(&self, key: &SocketAddrV4) -> Option<Binding> {
        self.map.get(key).copied()
    }

    pub fn contains(&self, key: &SocketAddrV4) -> bool {
        self.map.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Binds a key first seen under `ike`: it is its own L2TP name.
    pub fn bind(&mut self, key: SocketAddrV4, ike: u64, inner_port: u16) {
        self.map.insert(
            key,
            Binding {
                ike,
                inner_port,
                l2tp: key,
            },
        );
    }

    /// Another IKE SA of the same client (a Phase 1 rekey) takes `key` over; its L2TP name
    /// stays.
    pub fn take_over(&mut self, key: SocketAddrV4, ike: u64, inner_port: u16) {
        if let Some(b) = self.map.get_mut(&key) {
            b.ike = ike;
            b.inner_port = inner_port;
        }
    }

    /// Every key of IKE SA `from` now belongs to `to`.
    pub fn adopt(&mut self, from: u64, to: u64) {
        for b in self.map.values_mut().filter(|b| b.ike == from) {
            b.ike = to;
        }
    }

    /// `key` now belongs to IKE SA `ike` (the successor of its dying one).
    pub fn adopt_key(&mut self, key: SocketAddrV4, ike: u64) {
        if let Some(b) = self.map.get_mut(&key) {
            b.ike = ike;
        }
    }

    /// Keys bound to `ike`.
    pub fn keys_of(&self, ike: u64) -> Vec<SocketAddrV4> {
        self.map
            .iter()
            .filter(|(_, b)| b.ike == ike)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Removes `key`; returns the L2TP name it had.
    pub fn remove(&mut self, key: &SocketAddrV4) -> Option<SocketAddrV4> {
        self.map.remove(key).map(|b| b.l2tp)
    }

    /// The client of `ike`, known at `old`, is now at `new`. `new` becomes an alias of the
    /// peer's L2TP name; `old` is dropped if it was an alias itself (a name stays until the
    /// L2TP side is renamed). Returns whether the L2TP side has a rename to make (false when
    /// the client is back at its name).
    pub fn follow(
        &mut self,
        ike: u64,
        old: SocketAddrV4,
        new: SocketAddrV4,
    ) -> Result<bool, MoveRefused> {
        let b = self
            .map
            .get(&old)
            .copied()
            .filter(|b| b.ike == ike)
            .ok_or(MoveRefused::NotBound(old))?;
        if old == new {
            return Ok(old != b.l2tp);
        }
        if let Some(there) = self.map.get(&new)
            && there.l2tp != b.l2tp
        {
            return Err(MoveRefused::Taken(new));
        }
        if old != b.l2tp {
            self.map.remove(&old);
        }
        self.map.insert(new, Binding { l2tp: b.l2tp, ..b });
        Ok(new != b.l2tp)
    }

    /// Peers the L2TP side still knows by an old name: (name, current key).
    pub fn renames(&self) -> Vec<(SocketAddrV4, SocketAddrV4)> {
        self.map
            .iter()
            .filter(|(k, b)| **k != b.l2tp)
            .map(|(k, b)| (b.l2tp, *k))
            .collect()
    }

    /// The L2TP side now knows the peer named `from` as `to`: `from` is retired, and `to`
    /// is the name (it stays one even if the client has moved on again meanwhile; the next
    /// [`PeerTable::renames`] then names the newer key).
    pub fn renamed(&mut self, from: SocketAddrV4, to: SocketAddrV4) {
        let Some(name) = self.map.get(&from).copied().filter(|b| b.l2tp == from) else {
            return;
        };
        self.map.remove(&from);
        for b in self.map.values_mut().filter(|b| b.l2tp == from) {
            b.l2tp = to;
        }
        self.map.entry(to).or_insert(Binding { l2tp: to, ..name });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddrV4 {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn a_moved_key_is_an_alias_until_the_l2tp_side_is_renamed() {
        let (old, new) = (a("203.0.113.7:4500"), a("203.0.113.7:41000"));
        let mut t = PeerTable::default();
        t.bind(old, 1, 1701);
        assert_eq!(t.follow(1, old, new), Ok(true));
        // ESP from the new port reaches the old name; L2TP to the old name still sends.
        assert_eq!(t.get(&new).map(|b| b.l2tp), Some(old));
        assert_eq!(t.get(&old).map(|b| b.ike), Some(1));
        assert_eq!(t.renames(), vec![(old, new)]);
        t.renamed(old, new);
        assert!(!t.contains(&old), "the old address is retired");
        assert_eq!(t.get(&new).map(|b| b.l2tp), Some(new));
        assert!(t.renames().is_empty());
    }

    #[test]
    fn a_second_move_before_the_rename_renames_to_the_newest_key() {
        let (k1, k2, k3) = (
            a("203.0.113.7:4500"),
            a("203.0.113.7:41000"),
            a("203.0.113.7:42000"),
        );
        let mut t = PeerTable::default();
        t.bind(k1, 1, 1701);
        t.follow(1, k1, k2).unwrap_or_else(|e| panic!("{e}"));
        let pending = t.renames();
        // The client moves again while the L2TP side applies the first rename.
        t.follow(1, k2, k3).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !t.contains(&k2),
            "an alias is dropped when its client moves on"
        );
        for (from, to) in pending {
            t.renamed(from, to);
        }
        assert_eq!(t.renames(), vec![(k2, k3)]);
        t.renamed(k2, k3);
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(&k3).map(|b| (b.ike, b.l2tp)), Some((1, k3)));
    }

    #[test]
    fn moving_back_to_the_name_needs_no_rename() {
        let (k1, k2) = (a("203.0.113.7:4500"), a("203.0.113.7:41000"));
        let mut t = PeerTable::default();
        t.bind(k1, 1, 1701);
        t.follow(1, k1, k2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.follow(1, k2, k1), Ok(false));
        assert!(t.renames().is_empty());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn another_sa_cannot_move_a_key_and_no_key_moves_onto_another_peer() {
        let (k1, k2) = (a("203.0.113.7:4500"), a("203.0.113.7:41000"));
        let mut t = PeerTable::default();
        t.bind(k1, 1, 1701);
        t.bind(k2, 2, 1701);
        assert_eq!(t.follow(2, k1, k2), Err(MoveRefused::NotBound(k1)));
        assert_eq!(t.follow(1, k1, k2), Err(MoveRefused::Taken(k2)));
        assert_eq!(t.get(&k2).map(|b| b.ike), Some(2));
        assert!(t.renames().is_empty());
    }
}
