//! Wiring: reflectors (caches), the two controllers, and the debouncer that turns agent
//! reports into at most one status reconcile per object per [`STATUS_INTERVAL`].

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use sluice_api::{VpnGateway, VpnUser};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, WatchStream};

use crate::context::{Cache, Context, Stores, Synced};
use crate::hub::Dirty;
use crate::names::{DATAPLANE_NAME, GATEWAY_LABEL, NAME_LABEL};
use crate::watch::{Scope, watch, watch_metadata};
use crate::{gateway, user};

/// Status writes caused by agent reports are batched per this interval.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

fn split(key: &str) -> Option<(&str, &str)> {
    key.split_once('/')
}

/// Forwards dirty keys to the controllers, each key at most once per `every`.
pub async fn debounce(
    mut dirty: mpsc::UnboundedReceiver<Dirty>,
    every: Duration,
    gateways: mpsc::Sender<ObjectRef<VpnGateway>>,
    users: mpsc::Sender<ObjectRef<VpnUser>>,
) {
    let mut pending = BTreeSet::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            d = dirty.recv() => match d {
                Some(d) => { pending.insert(d); }
                None => break,
            },
            _ = tick.tick() => {
                for d in std::mem::take(&mut pending) {
                    let sent = match &d {
                        Dirty::Gateway(k) => match split(k) {
                            Some((ns, n)) => gateways.send(ObjectRef::new(n).within(ns)).await.is_ok(),
                            None => true,
                        },
                        Dirty::User(k) => match split(k) {
                            Some((ns, n)) => users.send(ObjectRef::new(n).within(ns)).await.is_ok(),
                            None => true,
                        },
                    };
                    if !sent {
                        return;
                    }
                }
            }
        }
    }
}

/// Everything [`run`] needs besides the caches it builds.
pub struct Parts {
    /// Apiserver client.
    pub client: Client,
    /// Shared hub.
    pub hub: Arc<crate::hub::Hub>,
    /// Its change notifications.
    pub dirty: mpsc::UnboundedReceiver<Dirty>,
    /// Metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Data-plane image and operator URL.
    pub settings: crate::workloads::DataplaneSettings,
    /// The control channel's CAs; every gateway is reconciled when they change.
    pub ca: crate::ca_set::CaHandle,
    /// Namespaces watched.
    pub scope: Scope,
    /// The CA rotation task (the leader's), run with the reconcilers' context.
    pub rotation: Option<crate::rotation::Rotation>,
    /// Event reporter.
    pub reporter: kube::runtime::events::Reporter,
}

/// Runs both controllers until `shutdown` completes.
pub async fn run(parts: Parts, shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static) {
    let client = parts.client;
    let wc = watcher::Config::default();
    let dataplane = watcher::Config::default().labels(&format!("{NAME_LABEL}={DATAPLANE_NAME}"));

    let (gateways, gw_writer) = reflector::store();
    let (users, user_writer) = reflector::store();
    let (secrets, secret_writer) = reflector::store();
    let (pods, pod_writer) = reflector::store();
    let (nodes, node_writer) = reflector::store();
    let (deployments, deployment_writer) = reflector::store();

    // Deleted gateways are forgotten as soon as the watch reports them, and after every
    // re-list any that went while the watch was down (no finalizer: nothing must block
    // the deletion of a gateway or its namespace when the operator is gone).
    let (gone_tx, gone_rx) = mpsc::unbounded_channel();
    let synced = Arc::new(Synced::default());
    let scope = parts.scope;
    let gw_stream = watch::<VpnGateway>(&client, &scope, &wc)
        .default_backoff()
        .reflect(gw_writer)
        .inspect(listed(&synced, Cache::Gateways))
        .inspect(move |ev| {
            let gone = match ev {
                Ok(watcher::Event::Delete(gw)) => Gone::Gateway(crate::hub::key_of(gw)),
                Ok(watcher::Event::InitDone) => Gone::Relisted,
                _ => return,
            };
            let _ = gone_tx.send(gone);
        })
        .applied_objects();
    let user_stream = watch::<VpnUser>(&client, &scope, &wc)
        .default_backoff()
        .reflect(user_writer)
        .inspect(listed(&synced, Cache::Users))
        .touched_objects();
    // Metadata only: Secret data is read by single GETs of referenced Secrets; a deleted
    // Secret leaves the content cache at once.
    let secret_cache = Arc::new(crate::secrets::SecretCache::default());
    let evict = secret_cache.clone();
    let secret_stream = watch_metadata::<Secret>(&client, &scope, &wc)
        .default_backoff()
        .inspect(move |ev| {
            if let Ok(watcher::Event::Delete(s)) = ev {
                evict.remove(&(s.namespace().unwrap_or_default(), s.name_any()));
            }
        })
        .reflect(secret_writer)
        .inspect(listed(&synced, Cache::Secrets))
        .touched_objects();
    let pod_stream = watch::<Pod>(&client, &scope, &dataplane)
        .default_backoff()
        .reflect(pod_writer)
        .inspect(listed(&synced, Cache::Pods))
        .touched_objects();
    let node_stream = watcher(Api::<Node>::all(client.clone()), wc.clone())
        .default_backoff()
        .reflect(node_writer)
        .inspect(listed(&synced, Cache::Nodes))
        .touched_objects();
    tokio::spawn(node_stream.for_each(|_| async {}));
    let deployment_stream = watch::<Deployment>(&client, &scope, &dataplane)
        .default_backoff()
        .reflect(deployment_writer)
        .inspect(listed(&synced, Cache::Deployments))
        .touched_objects();

    let (gw_tx, gw_rx) = mpsc::channel(1024);
    let (user_tx, user_rx) = mpsc::channel(1024);
    tokio::spawn(debounce(parts.dirty, STATUS_INTERVAL, gw_tx, user_tx));

    let ctx = Arc::new(Context {
        client: client.clone(),
        hub: parts.hub,
        metrics: parts.metrics,
        settings: parts.settings,
        ca: parts.ca.clone(),
        secrets: secret_cache,
        stores: Stores {
            gateways: gateways.clone(),
            users: users.clone(),
            secrets,
            pods,
            nodes,
            deployments,
        },
        synced: synced.clone(),
        recorder: kube::runtime::events::Recorder::new(client.clone(), parts.reporter),
        user_events: Default::default(),
    });

    let users_for_secrets = users.clone();
    let gateways_for_secrets = gateways.clone();
    let gw_controller = Controller::for_stream(gw_stream, gateways)
        .owns_stream(deployment_stream)
        .watches_stream(user_stream, |u: VpnUser| {
            u.namespace()
                .map(|ns| ObjectRef::new(&u.spec.gateway_ref.name).within(&ns))
        })
        .watches_stream(secret_stream, move |s: PartialObjectMeta<Secret>| {
            let ns = s.namespace().unwrap_or_default();
            let name = s.name_any();
            let mut refs: Vec<ObjectRef<VpnGateway>> = users_for_secrets
                .state()
                .into_iter()
                .filter(|u| {
                    u.namespace().as_deref() == Some(ns.as_str())
                        && u.spec.password_secret_ref.name == name
                })
                .map(|u| ObjectRef::new(&u.spec.gateway_ref.name).within(&ns))
                .collect();
            // Gateways whose L2TP tunnel secret or IPsec pre-shared key lives in this Secret.
            refs.extend(
                gateways_for_secrets
                    .state()
                    .into_iter()
                    .filter(|g| {
                        g.namespace().as_deref() == Some(ns.as_str())
                            && g.spec.secret_names().contains(&name.as_str())
                    })
                    .map(|g| ObjectRef::from_obj(&*g)),
            );
            refs
        })
        .watches_stream(pod_stream, |p: Pod| {
            let ns = p.namespace()?;
            let gw = p.labels().get(GATEWAY_LABEL)?;
            Some(ObjectRef::new(gw).within(&ns))
        })
        .reconcile_on(ReceiverStream::new(gw_rx))
        // New CAs: every agent Secret gets the new bundle (or certificate).
        .reconcile_all_on(WatchStream::from_changes(parts.ca.subscribe()).map(|_| ()))
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |gw, ctx: Arc<Context>| async move {
                match put_off(&ctx) {
                    Some(later) => Ok(later),
                    None => gateway::reconcile(gw, ctx).await,
                }
            },
            gateway::error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});

    let (users_own, users_own_writer) = reflector::store();
    let users_own_stream = watch::<VpnUser>(&client, &scope, &wc)
        .default_backoff()
        .reflect(users_own_writer)
        .applied_objects();
    let user_controller = Controller::for_stream(users_own_stream, users_own)
        .reconcile_on(ReceiverStream::new(user_rx))
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |u, ctx: Arc<Context>| async move {
                match put_off(&ctx) {
                    Some(later) => Ok(later),
                    None => user::reconcile(u, ctx).await,
                }
            },
            user::error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});

    if let Some(r) = parts.rotation {
        tokio::spawn(r.run(ctx.clone(), shutdown.clone()));
    }
    let forget = forget_deleted(gone_rx, ctx);
    tokio::select! {
        _ = async { tokio::join!(gw_controller, user_controller) } => {}
        () = forget => {}
    }
}

/// Marks `cache` listed when its watch reports the end of a full list.
fn listed<K>(
    synced: &Arc<Synced>,
    cache: Cache,
) -> impl Fn(&Result<watcher::Event<K>, watcher::Error>) + use<K> {
    let synced = synced.clone();
    move |ev| {
        if let Ok(watcher::Event::InitDone) = ev {
            synced.mark(cache);
        }
    }
}

/// A reconcile is put off (requeued shortly) while some cache lacks its first list.
fn put_off(ctx: &Context) -> Option<Action> {
    let pending = ctx.synced.pending();
    if pending.is_empty() {
        return None;
    }
    tracing::debug!(?pending, "caches not listed yet: reconcile put off");
    Some(Action::requeue(Duration::from_millis(500)))
}

/// What the gateway watch reports for [`forget_deleted`].
enum Gone {
    /// A gateway was deleted.
    Gateway(crate::hub::Key),
    /// The watch re-listed every gateway: whatever the cache lacks was deleted.
    Relisted,
}

/// Drops the operator's state of deleted gateways (see [`gateway::forget`]).
async fn forget_deleted(mut gone: mpsc::UnboundedReceiver<Gone>, ctx: Arc<Context>) {
    while let Some(g) = gone.recv().await {
        match g {
            Gone::Gateway(key) => gateway::forget(&ctx, &key),
            Gone::Relisted => {
                let live: BTreeSet<String> = ctx
                    .stores
                    .gateways
                    .state()
                    .iter()
                    .map(|g| crate::hub::key_of(&**g))
                    .collect();
                for key in ctx.hub.gateways() {
                    if !live.contains(&key) {
                        gateway::forget(&ctx, &key);
                    }
                }
            }
        }
    }
}
