//! The one policy for users that do not compile, shared by the operator and the standalone
//! data plane: a user whose own fields are wrong (a missing Secret, a clashing static
//! address, a duplicate user name…) is left out of the configuration, with every error
//! about it; the gateway's other users are served. A problem with the gateway itself still
//! rejects the whole configuration.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;

use crate::compile::{compile_excluding, pick_gateway, with_clients};
use crate::error::{ConfigError, FieldError, ObjectKind, ObjectRef, Subject};
use crate::manifest::Manifests;
use crate::{GatewayConfig, VpnGateway, VpnUser};

/// A gateway compiled with the users that compile.
#[derive(Clone, PartialEq)]
pub struct Compiled {
    /// The configuration, without the users left out.
    pub config: GatewayConfig,
    /// The users and clients left out, each with every error about it (one per line).
    pub left_out: BTreeMap<ObjectRef, ConfigError>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("config", &crate::redacted(&self.config))
            .field("left_out", &self.left_out)
            .finish()
    }
}

/// Compiles `gateway` with the users that compile, leaving out the others.
///
/// `Err` carries the errors about the gateway itself (users' errors are in
/// [`Compiled::left_out`] once the gateway compiles).
pub fn compile_leaving_out_bad_users(
    gateway: &VpnGateway,
    users: &[VpnUser],
    secrets: &[Secret],
) -> Result<Compiled, ConfigError> {
    let mut excluded: BTreeSet<ObjectRef> = BTreeSet::new();
    let mut left_out: BTreeMap<ObjectRef, Vec<FieldError>> = BTreeMap::new();
    // Each round leaves out at least one user, so this ends; in practice it takes one or two
    // (a user clashing with a bad one is reported again only if the clash remains).
    loop {
        let err = match compile_excluding(gateway, users, secrets, &excluded) {
            Ok(config) => {
                let left_out = left_out
                    .into_iter()
                    .map(|(user, errors)| (user, ConfigError { errors }))
                    .collect();
                return Ok(Compiled { config, left_out });
            }
            Err(e) => e,
        };
        let mut gateway_errors = Vec::new();
        let before = excluded.len();
        for e in err.errors {
            match &e.object {
                Subject::Object(r) if r.kind == ObjectKind::VpnUser => {
                    excluded.insert(r.clone());
                    left_out.entry(r.clone()).or_default().push(e);
                }
                _ => gateway_errors.push(e),
            }
        }
        if !gateway_errors.is_empty() || excluded.len() == before {
            return Err(ConfigError {
                errors: gateway_errors,
            });
        }
    }
}

/// Picks a gateway from parsed manifests (as [`crate::compile_from_manifests`]) and compiles
/// it with [`compile_leaving_out_bad_users`], then its clients, each left out on its own
/// errors ([`crate::compile_clients`]).
pub fn compile_manifests(m: &Manifests, gateway: Option<&str>) -> Result<Compiled, ConfigError> {
    let gw = pick_gateway(m, gateway)?;
    let compiled = compile_leaving_out_bad_users(gw, &m.users, &m.secrets)?;
    Ok(with_clients(compiled, gw, &m.clients, &m.secrets))
}
