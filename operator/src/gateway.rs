//! `VpnGateway` reconcile: dereference → compile → publish → apply workloads → status →
//! autoscale → pod deletion costs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_api::{VpnGateway, VpnUser};
use tracing::{info, warn};

use crate::config::compile_gateway;
use crate::context::{Context, Error};
use crate::gateway_state::CompileInputs;
use crate::hub::key_of;
use crate::names::{FIELD_MANAGER, GATEWAY_LABEL, GatewayNames};
use crate::secrets::{self, SecretKey, SecretList};
use crate::status::{endpoints, gateway_status};
use crate::workloads::{self, names_of};

/// Finalizer that earlier versions put on every gateway. It is removed wherever it is
/// found: a finalizer outlives the operator (`helm uninstall`) and then blocks the deletion
/// of the gateway and of its namespace. Deleted gateways are forgotten from the watch
/// instead ([`forget`]); their Kubernetes objects go by owner reference.
pub const LEGACY_FINALIZER: &str = "sluice.dev/cleanup";
/// Periodic re-reconcile (drift repair, certificate renewal).
pub const RESYNC: Duration = Duration::from_secs(300);
/// Re-reconcile interval of a gateway with `spec.autoscaling`: a scale-down is due when
/// the stabilization window passes, whether or not anything else changed.
pub const AUTOSCALE_TICK: Duration = Duration::from_secs(10);

/// Server-side apply of `obj` (force: the operator owns these fields).
pub async fn apply<K>(ctx: &Context, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::Missing("metadata.name"))?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?)
}

/// Reconciles one gateway, traced as a `reconcile` span.
#[tracing::instrument(name = "reconcile", skip_all, fields(kind = "VpnGateway", namespace = %gw.namespace().unwrap_or_default(), name = %gw.name_any()))]
pub async fn reconcile(gw: Arc<VpnGateway>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = if gw.finalizers().iter().any(|f| f == LEGACY_FINALIZER) {
        remove_legacy_finalizer(&gw, &ctx).await
    } else if gw.metadata.deletion_timestamp.is_some() {
        // Going away; its owned objects go by owner reference, the watch tells `forget`.
        Ok(Action::await_change())
    } else {
        apply_gateway(gw, ctx.clone()).await
    };
    ctx.metrics
        .reconciled("VpnGateway", result.is_ok(), started.elapsed());
    result
}

/// Removes [`LEGACY_FINALIZER`] (a merge patch carrying the resourceVersion, so a
/// concurrent change is not overwritten but retried); the change triggers the next
/// reconcile.
async fn remove_legacy_finalizer(gw: &VpnGateway, ctx: &Context) -> Result<Action, Error> {
    let kept: Vec<&String> = gw
        .finalizers()
        .iter()
        .filter(|f| *f != LEGACY_FINALIZER)
        .collect();
    let ns = gw.namespace().ok_or(Error::Missing("metadata.namespace"))?;
    let api: Api<VpnGateway> = Api::namespaced(ctx.client.clone(), &ns);
    let body = serde_json::json!({
        "metadata": {"finalizers": kept, "resourceVersion": gw.resource_version()}
    });
    api.patch(
        &gw.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&body),
    )
    .await?;
    info!(gateway = %key_of(gw), "removed the legacy finalizer {LEGACY_FINALIZER}");
    Ok(Action::await_change())
}

/// Forgets a deleted gateway: its configuration (its agents' streams end) and its
/// [`crate::gateway_state::GatewayState`], then its Secrets.
pub fn forget(ctx: &Context, key: &str) {
    info!(gateway = %key, "gateway deleted: dropping its configuration and agent streams");
    ctx.hub.remove(key);
    ctx.secrets.forget(key);
}

/// Secrets read at once by one reconcile.
const PARALLEL_SECRET_READS: usize = 16;

/// The users of `gw` (same namespace, `gatewayRef.name`, from the cache) and the Secrets
/// they and the gateway reference.
fn referenced(ctx: &Context, gw: &VpnGateway) -> (Vec<Arc<VpnUser>>, BTreeSet<SecretKey>) {
    let ns = gw.namespace().unwrap_or_default();
    let name = gw.name_any();
    let users: Vec<Arc<VpnUser>> = ctx
        .stores
        .users
        .state()
        .into_iter()
        .filter(|u| {
            u.namespace().as_deref() == Some(ns.as_str()) && u.spec.gateway_ref.name == name
        })
        .collect();
    let refs = users
        .iter()
        .map(|u| (ns.clone(), u.spec.password_secret_ref.name.clone()))
        .chain(
            gw.spec
                .secret_names()
                .into_iter()
                .map(|n| (ns.clone(), n.to_owned())),
        )
        .collect();
    (users, refs)
}

/// The versions of what compiling `gw` reads, from the caches alone (no apiserver call).
pub fn compile_inputs(ctx: &Context, gw: &VpnGateway) -> CompileInputs {
    let (users, refs) = referenced(ctx, gw);
    let version = |m: &kube::api::ObjectMeta| {
        format!(
            "{} {}",
            m.uid.as_deref().unwrap_or_default(),
            m.generation.unwrap_or_default()
        )
    };
    let mut inputs = vec![(format!("VpnGateway {}", key_of(gw)), version(&gw.metadata))];
    inputs.extend(
        users
            .iter()
            .map(|u| (format!("VpnUser {}", key_of(&**u)), version(&u.metadata))),
    );
    inputs.extend(refs.iter().map(|(ns, name)| {
        let rv = ctx
            .stores
            .secrets
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|s| s.metadata.resource_version.clone())
            .unwrap_or_else(|| "-".into());
        (format!("Secret {ns}/{name}"), rv)
    }));
    inputs.sort();
    CompileInputs(inputs)
}

/// The users of `gw` (same namespace, `gatewayRef.name`), and the Secrets they and the
/// gateway reference (read one by one, never listed; missing ones are left out and
/// `compile` says so).
pub async fn inputs(ctx: &Context, gw: &VpnGateway) -> Result<(Vec<VpnUser>, SecretList), Error> {
    use futures::{StreamExt, TryStreamExt};
    let ns = gw.namespace().unwrap_or_default();
    let (users, mut refs) = referenced(ctx, gw);
    let users: Vec<VpnUser> = users.iter().map(|u| (**u).clone()).collect();
    let wanted: Vec<SecretKey> = refs.iter().cloned().collect();
    let read: Vec<_> = futures::stream::iter(wanted)
        .map(|(ns, n)| async move { secrets::fetch(ctx, &ns, &n).await })
        .buffer_unordered(PARALLEL_SECRET_READS)
        .try_collect()
        .await?;
    let mut list = SecretList::default();
    list.0 = read
        .into_iter()
        .flatten()
        .map(|h| h.get().clone())
        .collect();
    refs.insert((ns, names_of(gw).tls_secret));
    ctx.secrets.set_refs(&key_of(gw), refs);
    Ok((users, list))
}

/// Compiles `gw` with its users and Secrets and publishes the result to its agents; returns
/// the compile error (the agents keep the previous configuration), with Events on changes.
async fn compile_and_publish(
    gw: &VpnGateway,
    ctx: &Context,
    key: &str,
) -> Result<Option<String>, Error> {
    let (users, secrets) = inputs(ctx, gw).await?;
    let compiled = compile_gateway(gw, &users, &secrets.0);
    drop(secrets);
    Ok(match compiled {
        Ok(compiled) => {
            let version = compiled.config.version.clone();
            let included = compiled
                .config
                .users
                .iter()
                .map(|u| u.source.clone())
                .collect();
            let rejected = compiled.rejected_users.len();
            if ctx
                .hub
                .publish(key, compiled.config, compiled.rejected_users, included)
            {
                info!(gateway = %key, %version, rejected_users = rejected, "configuration published");
            }
            let was = ctx.hub.states.update(key, |s| s.compile_error.take());
            if was.is_some() {
                ctx.event(
                    &gw.object_ref(&()),
                    false,
                    "ConfigAccepted",
                    format!("configuration {version} accepted"),
                    "Compile",
                )
                .await;
            }
            None
        }
        Err(e) => {
            let msg = e.to_string();
            let old = ctx
                .hub
                .states
                .update(key, |s| s.compile_error.replace(msg.clone()));
            ctx.metrics.configs_rejected.inc();
            if old.as_deref() != Some(msg.as_str()) {
                warn!(gateway = %key, error = %msg, "configuration rejected; agents keep the previous one");
                ctx.event(
                    &gw.object_ref(&()),
                    true,
                    "ConfigRejected",
                    msg.clone(),
                    "Compile",
                )
                .await;
            }
            Some(msg)
        }
    })
}

async fn apply_gateway(gw: Arc<VpnGateway>, ctx: Arc<Context>) -> Result<Action, Error> {
    let names = names_of(&gw);
    let key = names.key();
    let now_time = Time(jiff::Timestamp::now());

    // Compile and publish (agents pick it up at once), unless nothing the compile reads has
    // changed since the last one: a reconcile for an agent report, a status write or a pod
    // event only rewrites status (no Secret reads, no compile, no publish).
    let read = compile_inputs(&ctx, &gw);
    let fresh = ctx
        .hub
        .states
        .read(&key, |s| s.is_some_and(|s| s.compiled_fresh(&read, RESYNC)));
    let compile_error = if fresh {
        ctx.hub
            .states
            .read(&key, |s| s.and_then(|s| s.compile_error.clone()))
    } else {
        let error = compile_and_publish(&gw, &ctx, &key).await?;
        ctx.hub
            .states
            .update(&key, |s| s.compiled = Some((read, Instant::now())));
        error
    };

    // The agents' client certificate (checked against the cache every time: renewal).
    ensure_agent_tls(&gw, &names, &ctx).await?;

    // Workloads: applied when the spec changed, and at every resync; a reconcile caused by
    // agent reports only rewrites status.
    let generation = gw.metadata.generation;
    let applied = if ctx.workloads_fresh(&key, generation, RESYNC) {
        None
    } else {
        let ns = &names.namespace;
        apply(&ctx, ns, &workloads::service_account(&gw, &names)).await?;
        apply(&ctx, ns, &workloads::metrics_service(&gw, &names)).await?;
        apply(&ctx, ns, &workloads::pdb(&gw, &names)).await?;
        let d = apply(&ctx, ns, &workloads::deployment(&gw, &names, &ctx.settings)).await?;
        ctx.workloads_done(&key, generation);
        Some(d)
    };
    let cached = ctx
        .stores
        .deployments
        .get(&ObjectRef::new(&names.deployment).within(&names.namespace));
    let deployment = applied.as_ref().or(cached.as_deref());

    // Status.
    write_status(
        &gw,
        &names,
        &ctx,
        deployment,
        compile_error.as_deref(),
        &now_time,
    )
    .await?;
    if let Some(spec) = &gw.spec.autoscaling {
        autoscale(&gw, &names, &ctx, spec).await?;
    }
    // Last: a failing pod patch must not hold up status or a scale-up.
    let pods = gateway_pods(&ctx, &names);
    crate::deletion_cost::sync(&ctx, &names, &pods, false).await?;
    Ok(Action::requeue(if gw.spec.autoscaling.is_some() {
        AUTOSCALE_TICK
    } else {
        RESYNC
    }))
}

/// The data-plane pods of a gateway (from the pod cache).
pub fn gateway_pods(ctx: &Context, names: &GatewayNames) -> Vec<Arc<Pod>> {
    ctx.stores
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.namespace().as_deref() == Some(names.namespace.as_str())
                && p.labels().get(GATEWAY_LABEL) == Some(&names.gateway)
        })
        .collect()
}

/// `spec.autoscaling`: sets `spec.replicas` through the scale subresource from the live
/// session count (see [`crate::autoscaler`]).
async fn autoscale(
    gw: &VpnGateway,
    names: &GatewayNames,
    ctx: &Context,
    spec: &sluice_api::AutoscalingSpec,
) -> Result<(), Error> {
    let policy = crate::autoscaler::Policy::of(spec);
    let sessions = u64::from(ctx.hub.gateway_view(&names.key()).sessions.total);
    let current = gw.spec.replicas;
    let desired = ctx.hub.states.update(&names.key(), |s| {
        s.autoscaler
            .desired(std::time::Instant::now(), &policy, current, sessions)
    });
    if desired == current {
        return Ok(());
    }
    if desired < current {
        // The ReplicaSet removes the pods with the lowest deletion cost: make every cost
        // current first (past the throttle), so the emptiest replicas go.
        let pods = gateway_pods(ctx, names);
        crate::deletion_cost::sync(ctx, names, &pods, true).await?;
    }
    info!(gateway = %names.key(), from = current, to = desired, sessions, "autoscaling");
    let api: Api<VpnGateway> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let pp = PatchParams {
        field_manager: Some(AUTOSCALER_FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch_scale(
        &names.gateway,
        &pp,
        &Patch::Merge(serde_json::json!({"spec": {"replicas": desired}})),
    )
    .await?;
    ctx.event(
        &gw.object_ref(&()),
        false,
        "Scaled",
        format!("replicas {current} → {desired} for {sessions} sessions"),
        "Autoscale",
    )
    .await;
    Ok(())
}

/// Field manager of the built-in autoscaler's writes to `spec.replicas`.
pub const AUTOSCALER_FIELD_MANAGER: &str = "sluice-autoscaler";

/// The agents' TLS Secret: a client certificate from the signing CA and, as `ca.crt`, every
/// trusted CA (two during a rotation). Rewritten when the certificate is due or the set
/// of CAs changed; records which CAs it was written for.
async fn ensure_agent_tls(
    gw: &VpnGateway,
    names: &GatewayNames,
    ctx: &Context,
) -> Result<(), Error> {
    let set = ctx.ca.current();
    let fingerprint = set.fingerprint();
    let bundle = set.bundle();
    let existing = secrets::fetch(ctx, &names.namespace, &names.tls_secret).await?;
    let now = time::OffsetDateTime::now_utc();
    let text = |k: &str| {
        existing
            .as_ref()
            .and_then(|s| s.value(k))
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned)
    };
    let cert = text("tls.crt").filter(|pem| set.signing.agent_cert_current(pem, &names.key(), now));
    let bundle_current = text("ca.crt").as_deref() == Some(bundle.as_str());
    if cert.is_none() || !bundle_current {
        let issued = match (cert, text("tls.key")) {
            (Some(cert_pem), Some(key_pem)) => crate::pki::Issued { cert_pem, key_pem },
            _ => {
                info!(gateway = %names.key(), secret = %names.tls_secret, "issuing the agents' client certificate");
                set.signing.issue_agent(&names.key(), now)?
            }
        };
        if !bundle_current {
            info!(gateway = %names.key(), secret = %names.tls_secret, cas = %fingerprint, "writing the trusted CAs to the agents' Secret");
        }
        let written = apply(
            ctx,
            &names.namespace,
            &workloads::agent_tls_secret(gw, names, &issued, &bundle),
        )
        .await?;
        ctx.secrets.insert(written);
    }
    ctx.hub
        .states
        .update(&names.key(), |s| s.agent_tls = Some(fingerprint));
    Ok(())
}

/// Writes `VpnGateway.status` from the Deployment, the pods' nodes and the agents (pods
/// whose agent reported draining are no endpoints).
pub async fn write_status(
    gw: &VpnGateway,
    names: &GatewayNames,
    ctx: &Context,
    deployment: Option<&Deployment>,
    compile_error: Option<&str>,
    now: &Time,
) -> Result<(), Error> {
    let pods = gateway_pods(ctx, names);
    let nodes = |n: &str| ctx.stores.nodes.get(&ObjectRef::new(n));
    let view = ctx.hub.gateway_view(&names.key());
    let eps = endpoints(pods.iter().map(|p| &**p), &nodes, &view.draining_pods());
    let status = gateway_status(gw, names, deployment, eps, &view, compile_error, now);
    if gw.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let serving = |s: Option<&sluice_api::VpnGatewayStatus>| {
        s.and_then(|s| s.ready_replicas).unwrap_or(0) > 0
    };
    if serving(gw.status.as_ref()) != serving(Some(&status)) {
        // Its users' `Ready` follows whether any data-plane pod serves.
        ctx.hub.mark_users(&names.key());
    }
    let api: Api<VpnGateway> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let body = serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "VpnGateway",
        "status": status,
    });
    ctx.metrics.status_written("VpnGateway");
    api.patch_status(
        &names.gateway,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Back-off after a failed reconcile.
pub fn error_policy(_gw: Arc<VpnGateway>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(%error, "VpnGateway reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}
