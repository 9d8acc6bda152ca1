//! `VpnUser` reconcile: conditions (is the user served, and if not why) and the live-session
//! fields the agents reported. The two parts are written by two field managers, so neither
//! write removes the other's fields.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use sluice_api::{VpnUser, VpnUserStatus};
use tracing::warn;

use crate::context::{Context, Error};
use crate::gateway::RESYNC;
use crate::metrics::Metrics;
use crate::names::{FIELD_MANAGER, SESSIONS_FIELD_MANAGER};
use crate::status::{UserProblem, user_conditions, user_sessions};

/// Why the password Secret of `user` cannot be used, if it cannot (one GET at most: the
/// gateway's reconcile has usually read it already).
async fn secret_problem(ctx: &Context, user: &VpnUser, ns: &str) -> Result<Option<String>, Error> {
    let r = &user.spec.password_secret_ref;
    let Some(secret) = crate::secrets::fetch(ctx, ns, &r.name).await? else {
        return Ok(Some(format!(
            "Secret {ns}/{} (spec.passwordSecretRef.name) does not exist",
            r.name
        )));
    };
    Ok(secret.value(&r.key).is_none().then(|| {
        format!(
            "Secret {ns}/{} has no key {:?} (spec.passwordSecretRef.key)",
            r.name, r.key
        )
    }))
}

async fn patch(
    metrics: &Metrics,
    api: &Api<VpnUser>,
    name: &str,
    manager: &str,
    status: &VpnUserStatus,
) -> Result<(), Error> {
    let body = serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "VpnUser",
        "status": status,
    });
    metrics.status_written("VpnUser");
    api.patch_status(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Reconciles one user, traced as a `reconcile` span.
#[tracing::instrument(name = "reconcile", skip_all, fields(kind = "VpnUser", namespace = %user.namespace().unwrap_or_default(), name = %user.name_any()))]
pub async fn reconcile(user: Arc<VpnUser>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile_user(&user, &ctx).await;
    ctx.metrics
        .reconciled("VpnUser", result.is_ok(), started.elapsed());
    result
}

async fn reconcile_user(user: &VpnUser, ctx: &Context) -> Result<Action, Error> {
    let ns = user
        .namespace()
        .ok_or(Error::Missing("metadata.namespace"))?;
    let name = user.name_any();
    let key = format!("{ns}/{name}");
    let gw_name = &user.spec.gateway_ref.name;
    let gw_key = format!("{ns}/{gw_name}");
    let view = ctx.hub.user_view(&gw_key, &key);
    let gateway = ctx
        .stores
        .gateways
        .get(&ObjectRef::new(gw_name).within(&ns));
    let compiled = view.configured
        || ctx
            .hub
            .states
            .read(&gw_key, |s| s.is_some_and(|s| s.compile_error.is_some()));
    let serving = gateway
        .as_ref()
        .and_then(|g| g.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
        > 0;

    let problem = if user.spec.disabled {
        Some(UserProblem::Disabled)
    } else if gateway.is_none() {
        Some(UserProblem::GatewayMissing(format!(
            "VpnGateway {ns}/{gw_name} (spec.gatewayRef.name) does not exist"
        )))
    } else if let Some(m) = secret_problem(ctx, user, &ns).await? {
        Some(UserProblem::SecretMissing(m))
    } else if !compiled {
        // The gateway's first reconcile since start-up has not compiled it yet; its
        // publish marks this user again. Judging now would flip `Ready` for nothing.
        return Ok(Action::requeue(Duration::from_secs(2)));
    } else if let Some(m) = &view.rejected {
        Some(UserProblem::Rejected(m.clone()))
    } else if !view.configured || !view.included {
        Some(UserProblem::Pending)
    } else if !serving {
        Some(UserProblem::GatewayNotReady(format!(
            "VpnGateway {ns}/{gw_name} has no ready data-plane pod"
        )))
    } else {
        None
    };
    let now = Time(jiff::Timestamp::now());
    let api: Api<VpnUser> = Api::namespaced(ctx.client.clone(), &ns);
    let old = user.status.clone().unwrap_or_default();

    let conds = user_conditions(user, problem.as_ref(), &now);
    if conds.conditions != old.conditions || conds.observed_generation != old.observed_generation {
        patch(&ctx.metrics, &api, &name, FIELD_MANAGER, &conds).await?;
    }

    if view.known {
        let live = user_sessions(user, &view);
        let changed = live.connected != old.connected
            || live.address != old.address
            || live.protocol != old.protocol
            || live.sessions != old.sessions
            || live.last_login != old.last_login
            || live.last_auth_failure != old.last_auth_failure;
        if changed {
            patch(&ctx.metrics, &api, &name, SESSIONS_FIELD_MANAGER, &live).await?;
            let was = old.connected.unwrap_or(false);
            let is = live.connected.unwrap_or(false);
            if was != is && ctx.user_event_allowed(&key) {
                let (reason, note) = if is {
                    let s = live.sessions.first();
                    (
                        "Connected",
                        format!(
                            "connected from {} over {} with address {}",
                            s.map_or("", |s| s.caller_address.as_str()),
                            s.map_or("", |s| s.protocol.as_str()),
                            s.map_or("", |s| s.address.as_str())
                        ),
                    )
                } else {
                    ("Disconnected", "no live session left".to_owned())
                };
                ctx.event(&user.object_ref(&()), false, reason, note, "Session")
                    .await;
            }
        }
    }
    Ok(Action::requeue(RESYNC))
}

/// Back-off after a failed reconcile.
pub fn error_policy(_user: Arc<VpnUser>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(%error, "VpnUser reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}
