//! The one policy for users that do not compile, shared by the operator and the standalone
//! data plane: a user whose own fields are wrong (a missing Secret, a clashing static
//! address, a duplicate user name…) is left out of the configuration, with every error
//! about it; the gateway's other users are served. A problem with the gateway itself still
//! rejects the whole configuration.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use crate::error::{ConfigError, FieldError, ObjectKind, ObjectRef, Subject};
use crate::manifest::Manifests;
use crate::{GatewayConfig, VpnGateway, VpnUser, compile, compile::pick_gateway};

/// A gateway compiled with the users that compile.
#[derive(Clone, PartialEq)]
pub struct Compiled {
    /// The configuration, without the users left out.
    pub config: GatewayConfig,
    /// The users left out, each with every error about it.
    pub left_out: BTreeMap<ObjectRef, Vec<FieldError>>,
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
    let mut included: Vec<&VpnUser> = users.iter().collect();
    let mut left_out: BTreeMap<ObjectRef, Vec<FieldError>> = BTreeMap::new();
    // Each round leaves out at least one user, so this ends; in practice it takes one or two
    // (a user clashing with a bad one is reported again only if the clash remains).
    loop {
        let owned: Vec<VpnUser> = included.iter().map(|u| (*u).clone()).collect();
        let err = match compile(gateway, &owned, secrets) {
            Ok(config) => return Ok(Compiled { config, left_out }),
            Err(e) => e,
        };
        let mut gateway_errors = Vec::new();
        let mut bad = Vec::new();
        for e in err.errors {
            match &e.object {
                Subject::Object(r) if r.kind == ObjectKind::VpnUser => {
                    bad.push(r.clone());
                    left_out.entry(r.clone()).or_default().push(e);
                }
                _ => gateway_errors.push(e),
            }
        }
        if !gateway_errors.is_empty() || bad.is_empty() {
            return Err(ConfigError {
                errors: gateway_errors,
            });
        }
        included.retain(|u| !bad.contains(&ObjectRef::of_user(u)));
    }
}

/// Picks a gateway from parsed manifests (as [`crate::compile_from_manifests`]) and compiles
/// it with [`compile_leaving_out_bad_users`].
pub fn compile_manifests(m: &Manifests, gateway: Option<&str>) -> Result<Compiled, ConfigError> {
    compile_leaving_out_bad_users(pick_gateway(m, gateway)?, &m.users, &m.secrets)
}
