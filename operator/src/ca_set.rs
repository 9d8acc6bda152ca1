//! The control channel's CAs and their rotation, as a pure state machine over the CA
//! Secret's contents.
//!
//! ```text
//! Stable      ca.crt/ca.key sign; agents trust ca.crt
//!   │ the CA is within --ca-rotate-before of its end, or the Secret carries the
//!   ▼ annotation sluice.dev/rotate
//! Introduced  + next.crt/next.key: a new CA, trusted by agents and by the gRPC server;
//!   │           the server certificate and agent certificates still come from ca.crt
//!   ▼ --ca-propagation later, once every gateway's agent Secret carries the bundle
//! Switched    the new CA signs (server certificate, agent certificates re-issued);
//!   │           previous.crt: the old CA, still trusted for client certificates
//!   ▼ --ca-propagation later, once every agent Secret holds a new certificate
//! Stable      previous.crt dropped (also once it expires)
//! ```
//!
//! Agents read `ca.crt` of their TLS Secret as a bundle of roots, so during the overlap
//! they trust both CAs whichever certificate the server presents.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::pki::{Ca, Issued, PkiError, cert_validity};

/// Annotation on the CA Secret that asks for a rotation now (any value); removed when the
/// rotation starts.
pub const ROTATE_ANNOTATION: &str = "sluice.dev/rotate";

/// Rotation timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Lifetime of a new CA.
    pub lifetime: Duration,
    /// A rotation starts this long before the signing CA ends (at most half its lifetime).
    pub rotate_before: Duration,
    /// Least time between two steps, for the kubelet to update mounted Secrets.
    pub propagation: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            lifetime: crate::pki::DEFAULT_CA_LIFETIME,
            rotate_before: Duration::days(60),
            propagation: Duration::hours(1),
        }
    }
}

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// One CA.
    Stable,
    /// A next CA is trusted but does not sign yet.
    Introduced,
    /// The new CA signs; the previous one is still trusted.
    Switched,
}

/// The CAs of the control channel.
#[derive(Debug)]
pub struct CaSet {
    /// Signs the server and agent certificates.
    pub signing: Ca,
    /// Introduced, not signing yet.
    pub next: Option<Ca>,
    /// The CA before `signing` (certificate only), trusted until dropped.
    pub previous: Option<String>,
    /// When the current phase began.
    pub since: OffsetDateTime,
}

/// Why the CA Secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaSecretError {
    #[error("the CA Secret has no {0}")]
    Missing(&'static str),
    #[error("the CA Secret's {0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("the CA Secret's {key}: {source}")]
    Pki { key: &'static str, source: PkiError },
    #[error("the CA Secret's phase.since is not an RFC 3339 time")]
    Since,
}

impl CaSet {
    /// One CA, no rotation under way.
    pub fn new(signing: Ca, now: OffsetDateTime) -> Self {
        Self {
            signing,
            next: None,
            previous: None,
            since: now,
        }
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        if self.next.is_some() {
            Phase::Introduced
        } else if self.previous.is_some() {
            Phase::Switched
        } else {
            Phase::Stable
        }
    }

    /// Every trusted CA certificate, signing first (the `ca.crt` of agent Secrets and the
    /// gRPC server's client roots).
    pub fn bundle(&self) -> String {
        let mut out = self.signing.pem().cert_pem.clone();
        let others = self
            .next
            .iter()
            .map(|c| c.pem().cert_pem.as_str())
            .chain(self.previous.as_deref());
        for pem in others {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(pem);
        }
        out
    }

    /// A short digest of the bundle and the signing CA: agent Secrets written for this
    /// state are current.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.bundle().as_bytes());
        h.update(b"\0");
        h.update(self.signing.pem().cert_pem.as_bytes());
        h.finalize()
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The next state at `now`, if a step is due. `requested`: the rotate annotation is
    /// set. `agents_current`: every gateway's agent Secret was written for this state.
    pub fn step(
        &self,
        now: OffsetDateTime,
        policy: &Policy,
        requested: bool,
        agents_current: bool,
    ) -> Result<Option<CaSet>, PkiError> {
        let settled = now >= self.since + policy.propagation;
        match self.phase() {
            Phase::Stable => {
                let total =
                    crate::pki::lifetime(self.signing.not_before(), self.signing.not_after());
                let before = policy.rotate_before.min(total / 2);
                if !requested && now < self.signing.not_after() - before {
                    return Ok(None);
                }
                Ok(Some(CaSet {
                    signing: self.signing.clone_ca()?,
                    next: Some(Ca::generate_for(now, policy.lifetime)?),
                    previous: None,
                    since: now,
                }))
            }
            Phase::Introduced => {
                // The old CA ending forces the switch.
                let forced = now >= self.signing.not_after();
                if !(forced || settled && agents_current) {
                    return Ok(None);
                }
                let Some(next) = &self.next else {
                    return Ok(None);
                };
                Ok(Some(CaSet {
                    signing: next.clone_ca()?,
                    next: None,
                    previous: Some(self.signing.pem().cert_pem.clone()),
                    since: now,
                }))
            }
            Phase::Switched => {
                let expired = self
                    .previous
                    .as_deref()
                    .and_then(cert_validity)
                    .is_none_or(|(_, end)| now >= end);
                if !(expired || settled && agents_current) {
                    return Ok(None);
                }
                Ok(Some(CaSet::new(self.signing.clone_ca()?, now)))
            }
        }
    }

    /// The CA Secret's data.
    pub fn to_data(&self) -> BTreeMap<String, String> {
        let mut d = BTreeMap::from([
            ("ca.crt".to_owned(), self.signing.pem().cert_pem.clone()),
            ("ca.key".to_owned(), self.signing.pem().key_pem.clone()),
            ("phase.since".to_owned(), rfc3339(self.since)),
        ]);
        if let Some(n) = &self.next {
            d.insert("next.crt".into(), n.pem().cert_pem.clone());
            d.insert("next.key".into(), n.pem().key_pem.clone());
        }
        if let Some(p) = &self.previous {
            d.insert("previous.crt".into(), p.clone());
        }
        d
    }

    /// Reads the CA Secret's data (`phase.since` defaults to `now`: a Secret of an
    /// earlier version).
    pub fn from_data(
        data: &BTreeMap<String, Vec<u8>>,
        now: OffsetDateTime,
    ) -> Result<CaSet, CaSecretError> {
        let text = |k: &'static str| -> Result<Option<String>, CaSecretError> {
            data.get(k)
                .map(|b| String::from_utf8(b.clone()).map_err(|_| CaSecretError::NotUtf8(k)))
                .transpose()
        };
        let need = |k: &'static str| -> Result<String, CaSecretError> {
            text(k)?.ok_or(CaSecretError::Missing(k))
        };
        let ca = |crt: &'static str, key: &'static str| -> Result<Ca, CaSecretError> {
            Ca::from_pem(&need(crt)?, &need(key)?)
                .map_err(|source| CaSecretError::Pki { key: crt, source })
        };
        let signing = ca("ca.crt", "ca.key")?;
        let next = match text("next.crt")? {
            Some(_) => Some(ca("next.crt", "next.key")?),
            None => None,
        };
        let since = match text("phase.since")? {
            Some(s) => {
                let ts: jiff::Timestamp = s.trim().parse().map_err(|_| CaSecretError::Since)?;
                OffsetDateTime::from_unix_timestamp(ts.as_second())
                    .map_err(|_| CaSecretError::Since)?
            }
            None => now,
        };
        Ok(CaSet {
            signing,
            next,
            previous: text("previous.crt")?,
            since,
        })
    }

    /// A server certificate from the signing CA.
    pub fn issue_server(
        &self,
        dns_names: &[String],
        now: OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        self.signing.issue_server(dns_names, now)
    }
}

/// The current [`CaSet`], as the reconcilers see it (the rotation publishes new ones).
#[derive(Clone)]
pub struct CaHandle(tokio::sync::watch::Receiver<std::sync::Arc<CaSet>>);

impl CaHandle {
    /// Follows `rx`.
    pub fn new(rx: tokio::sync::watch::Receiver<std::sync::Arc<CaSet>>) -> Self {
        Self(rx)
    }

    /// A set that never changes (tests, `serve-manifests`).
    pub fn fixed(set: CaSet) -> Self {
        let (_tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(set));
        Self(rx)
    }

    /// The current set.
    pub fn current(&self) -> std::sync::Arc<CaSet> {
        self.0.borrow().clone()
    }

    /// A receiver of changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<std::sync::Arc<CaSet>> {
        self.0.clone()
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    jiff::Timestamp::from_second(t.unix_timestamp())
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bytes(d: BTreeMap<String, String>) -> BTreeMap<String, Vec<u8>> {
        d.into_iter().map(|(k, v)| (k, v.into_bytes())).collect()
    }

    fn certs_in(bundle: &str) -> usize {
        bundle.matches("-----BEGIN CERTIFICATE-----").count()
    }

    fn policy() -> Policy {
        Policy {
            lifetime: Duration::days(365),
            rotate_before: Duration::days(60),
            propagation: Duration::hours(1),
        }
    }

    #[test]
    fn a_rotation_walks_through_every_phase_and_survives_the_secret() {
        let t0 = OffsetDateTime::now_utc();
        let set = CaSet::new(Ca::generate_for(t0, Duration::days(365)).unwrap(), t0);
        let p = policy();
        // Nothing is due for most of the year.
        assert!(
            set.step(t0 + Duration::days(300), &p, false, true)
                .unwrap()
                .is_none()
        );
        assert_eq!(certs_in(&set.bundle()), 1);

        // 60 days before the end: a next CA is introduced, the old one still signs.
        let t1 = t0 + Duration::days(306);
        let introduced = set.step(t1, &p, false, true).unwrap().unwrap();
        assert_eq!(introduced.phase(), Phase::Introduced);
        assert_eq!(certs_in(&introduced.bundle()), 2);
        assert_eq!(
            introduced.signing.pem().cert_pem,
            set.signing.pem().cert_pem
        );
        assert_ne!(introduced.fingerprint(), set.fingerprint());
        let next_pem = introduced.next.as_ref().unwrap().pem().cert_pem.clone();
        assert!(introduced.bundle().contains(&next_pem));

        // Round trip through the Secret keeps the phase and its start.
        let again = CaSet::from_data(&bytes(introduced.to_data()), t0).unwrap();
        assert_eq!(again.phase(), Phase::Introduced);
        assert_eq!(again.since.unix_timestamp(), t1.unix_timestamp());
        assert_eq!(again.bundle(), introduced.bundle());

        // Not before the propagation time, nor while an agent Secret lacks the bundle.
        assert!(
            introduced
                .step(t1 + Duration::minutes(30), &p, false, true)
                .unwrap()
                .is_none()
        );
        assert!(
            introduced
                .step(t1 + Duration::hours(2), &p, false, false)
                .unwrap()
                .is_none()
        );

        // Switch: the new CA signs, the old one is still trusted.
        let t2 = t1 + Duration::hours(2);
        let switched = introduced.step(t2, &p, false, true).unwrap().unwrap();
        assert_eq!(switched.phase(), Phase::Switched);
        assert_eq!(switched.signing.pem().cert_pem, next_pem);
        assert_eq!(
            switched.previous.as_deref(),
            Some(set.signing.pem().cert_pem.as_str())
        );
        assert_eq!(certs_in(&switched.bundle()), 2);
        let server = switched.issue_server(&["x".into()], t2).unwrap();
        assert!(switched.signing.signed(&server.cert_pem));
        // Agent certificates of the old CA are no longer current: re-issued.
        let old_agent = set.signing.issue_agent("vpn/a", t1).unwrap();
        assert!(
            !switched
                .signing
                .agent_cert_current(&old_agent.cert_pem, "vpn/a", t2)
        );
        let switched = CaSet::from_data(&bytes(switched.to_data()), t0).unwrap();

        // Drop: once every agent holds a new certificate.
        assert!(
            switched
                .step(t2 + Duration::hours(2), &p, false, false)
                .unwrap()
                .is_none()
        );
        let t3 = t2 + Duration::hours(2);
        let stable = switched.step(t3, &p, false, true).unwrap().unwrap();
        assert_eq!(stable.phase(), Phase::Stable);
        assert_eq!(certs_in(&stable.bundle()), 1);
        assert_eq!(stable.signing.pem().cert_pem, next_pem);
        // The new CA is not due for a long time.
        assert!(
            stable
                .step(t3 + Duration::days(100), &p, false, true)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn ends_force_the_steps_and_an_annotation_starts_one() {
        let t0 = OffsetDateTime::now_utc();
        let p = policy();
        let set = CaSet::new(Ca::generate_for(t0, Duration::days(365)).unwrap(), t0);
        // Requested: at once.
        let introduced = set.step(t0, &p, true, false).unwrap().unwrap();
        assert_eq!(introduced.phase(), Phase::Introduced);
        // The old CA's end switches even while an agent lags.
        let end = introduced.signing.not_after();
        assert!(
            introduced
                .step(end - Duration::hours(2), &p, false, false)
                .unwrap()
                .is_none()
        );
        let switched = introduced.step(end, &p, false, false).unwrap().unwrap();
        assert_eq!(switched.phase(), Phase::Switched);
        // An expired previous CA is dropped whatever the agents hold.
        let stable = switched
            .step(end + Duration::seconds(1), &p, false, false)
            .unwrap()
            .unwrap();
        assert_eq!(stable.phase(), Phase::Stable);
        // A short-lived CA starts rotating at half its life at the latest.
        let short = CaSet::new(Ca::generate_for(t0, Duration::minutes(10)).unwrap(), t0);
        assert!(
            short
                .step(t0 + Duration::minutes(4), &p, false, true)
                .unwrap()
                .is_none()
        );
        assert!(
            short
                .step(t0 + Duration::minutes(6), &p, false, true)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_secret_of_an_earlier_version_reads_as_stable() {
        let t0 = OffsetDateTime::now_utc();
        let ca = Ca::generate(t0).unwrap();
        let data = BTreeMap::from([
            ("ca.crt".to_owned(), ca.pem().cert_pem.clone().into_bytes()),
            ("ca.key".to_owned(), ca.pem().key_pem.clone().into_bytes()),
        ]);
        let set = CaSet::from_data(&data, t0).unwrap();
        assert_eq!(set.phase(), Phase::Stable);
        assert_eq!(set.since, t0);
        let mut broken = data.clone();
        broken.remove("ca.key");
        assert!(matches!(
            CaSet::from_data(&broken, t0),
            Err(CaSecretError::Missing("ca.key"))
        ));
        assert!(!format!("{set:?}").contains("PRIVATE KEY"));
    }
}
