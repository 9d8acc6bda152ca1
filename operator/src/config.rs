//! From objects to the configuration pushed to agents: `sluice_api::compile` (the very function
//! standalone mode uses), with the operator's policy on top:
//!
//! * a user whose own fields are invalid (missing Secret, clashing static address, duplicate
//!   user name…) is left out of the configuration and gets a condition saying why — one bad
//!   user never blocks the gateway's other users;
//! * a problem with the gateway itself rejects the whole configuration: the agents keep the
//!   previous one and the gateway shows `Degraded`;
//! * passwords are replaced by their NT hashes when every method an enabled protocol accepts
//!   is MS-CHAP (RFC 2759 §8.3), so cleartext passwords do not cross the control channel.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use sluice_api::{ConfigError, GatewayConfig, VpnGateway, VpnUser, compile_leaving_out_bad_users};
use sluice_proto::v1::AuthMethod;

/// A compiled gateway configuration.
#[derive(Clone, PartialEq)]
pub struct Compiled {
    /// What agents receive (passwords replaced by NT hashes where possible).
    pub config: GatewayConfig,
    /// Users left out, by `namespace/name`, with every error about them (one per line).
    pub rejected_users: BTreeMap<String, String>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("config", &sluice_api::redacted(&self.config))
            .field("rejected_users", &self.rejected_users)
            .finish()
    }
}

/// Compiles `gateway` with the users that compile, leaving out (and reporting) the others:
/// `sluice_api`'s one policy for bad users ([`compile_leaving_out_bad_users`]), with users
/// keyed as the hub keys them (`namespace/name`).
///
/// `Err` carries the errors about the gateway itself (and nothing is pushed).
pub fn compile_gateway(
    gateway: &VpnGateway,
    users: &[VpnUser],
    secrets: &[Secret],
) -> Result<Compiled, ConfigError> {
    let c = compile_leaving_out_bad_users(gateway, users, secrets)?;
    Ok(Compiled {
        config: for_transport(c.config),
        rejected_users: c
            .left_out
            .into_iter()
            .map(|(user, errors)| (user.key(), errors.to_string()))
            .collect(),
    })
}

/// Overwrites the secrets a configuration carries: passwords, NT hashes, the L2TP tunnel
/// secret, the IPsec pre-shared key and private key.
pub fn wipe(config: &mut GatewayConfig) {
    use zeroize::Zeroize;
    for u in &mut config.users {
        u.password.zeroize();
        u.nt_hash.zeroize();
    }
    if let Some(l) = config.l2tp.as_mut() {
        l.tunnel_secret.zeroize();
        if let Some(i) = l.ipsec.as_mut() {
            i.pre_shared_key.zeroize();
            i.private_key.zeroize();
        }
    }
    for t in &mut config.clients {
        t.password.zeroize();
        t.tunnel_secret.zeroize();
        if let Some(i) = t.ipsec.as_mut() {
            i.pre_shared_key.zeroize();
            i.private_key.zeroize();
        }
    }
}

/// A configuration wiped from memory when dropped (what the hub keeps).
#[derive(Clone, PartialEq)]
pub struct WipedConfig(pub GatewayConfig);

impl std::ops::Deref for WipedConfig {
    type Target = GatewayConfig;
    fn deref(&self) -> &GatewayConfig {
        &self.0
    }
}

impl Drop for WipedConfig {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl std::fmt::Debug for WipedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WipedConfig")
            .field(&sluice_api::redacted(&self.0))
            .finish()
    }
}

/// Replaces each password by its NtPasswordHash when every method accepted by an enabled
/// protocol is MS-CHAP (v1 or v2), which is all those methods need; PAP and CHAP-MD5 need
/// the cleartext.
pub fn for_transport(mut config: GatewayConfig) -> GatewayConfig {
    let mut methods = Vec::new();
    if let Some(p) = config.pptp.as_ref().filter(|p| p.enabled) {
        methods.extend(p.authentication());
    }
    if let Some(l) = config.l2tp.as_ref().filter(|l| l.enabled) {
        methods.extend(l.authentication());
    }
    let mschap_only = !methods.is_empty()
        && methods
            .iter()
            .all(|m| matches!(m, AuthMethod::MschapV1 | AuthMethod::MschapV2));
    if mschap_only {
        for u in &mut config.users {
            u.nt_hash = sluice_ppp::mschap::nt_password_hash(&u.password).to_vec();
            zeroize::Zeroize::zeroize(&mut u.password);
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use sluice_proto::v1::{L2tpSettings, PptpSettings, User};

    use super::*;

    fn config(pptp: (bool, AuthMethod), l2tp: Option<(bool, AuthMethod)>) -> GatewayConfig {
        GatewayConfig {
            pptp: Some(PptpSettings {
                enabled: pptp.0,
                authentication: vec![pptp.1 as i32],
                ..PptpSettings::default()
            }),
            l2tp: l2tp.map(|(enabled, m)| L2tpSettings {
                enabled,
                authentication: vec![m as i32],
                ..L2tpSettings::default()
            }),
            users: vec![User {
                username: "alice".into(),
                password: b"secret".to_vec(),
                ..User::default()
            }],
            ..GatewayConfig::default()
        }
    }

    fn hashed(c: GatewayConfig) -> bool {
        let u = &for_transport(c).users[0];
        assert_ne!(u.password.is_empty(), u.nt_hash.is_empty());
        !u.nt_hash.is_empty()
    }

    #[test]
    fn a_dropped_configuration_is_wiped() {
        let mut c = for_transport(config((true, AuthMethod::Pap), None));
        assert_eq!(c.users[0].password, b"secret");
        wipe(&mut c);
        assert!(c.users[0].password.is_empty());
        let w = WipedConfig(config((true, AuthMethod::Pap), None));
        assert_eq!(w.users.len(), 1);
        assert!(!format!("{w:?}").contains("secret"));
    }

    #[test]
    fn hash_only_when_every_enabled_protocol_uses_ms_chap() {
        use AuthMethod::{MschapV2, Pap};
        assert!(hashed(config((true, MschapV2), None)));
        assert!(hashed(config((true, MschapV2), Some((true, MschapV2)))));
        // L2TP accepts PAP: the cleartext is needed.
        assert!(!hashed(config((true, MschapV2), Some((true, Pap)))));
        // ...unless L2TP is off.
        assert!(hashed(config((true, MschapV2), Some((false, Pap)))));
        // A disabled PPTP's methods do not count.
        assert!(hashed(config((false, Pap), Some((true, MschapV2)))));
        assert!(!hashed(config((true, Pap), None)));
    }
}
