//! Secrets are read one by one, and only those a `VpnGateway` or `VpnUser` references.
//!
//! The operator watches Secrets metadata-only (names and resourceVersions, never data), to
//! learn that a referenced Secret changed. Contents come from a GET of that one Secret and
//! are kept in [`SecretCache`] while its resourceVersion is current and some gateway
//! references it. Cached contents are wiped from memory when dropped.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use zeroize::Zeroize;

use crate::context::{Context, Error};

/// What the Secrets watch keeps: metadata only.
pub type SecretMeta = PartialObjectMeta<Secret>;

/// `(namespace, name)` of a Secret.
pub type SecretKey = (String, String);

/// Overwrites a Secret's values.
pub fn wipe(secret: &mut Secret) {
    if let Some(d) = secret.data.as_mut() {
        for v in d.values_mut() {
            v.0.zeroize();
        }
    }
    if let Some(d) = secret.string_data.as_mut() {
        for v in d.values_mut() {
            v.zeroize();
        }
    }
}

/// A Secret whose values are wiped when it is dropped.
#[derive(Clone, PartialEq)]
pub struct Held(Secret);

impl Held {
    /// Takes ownership of `secret`.
    pub fn new(secret: Secret) -> Self {
        Self(secret)
    }

    /// The Secret.
    pub fn get(&self) -> &Secret {
        &self.0
    }

    /// The value of `key` (`data`, else `stringData`).
    pub fn value(&self, key: &str) -> Option<&[u8]> {
        let s = &self.0;
        s.data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.as_slice())
            .or_else(|| {
                s.string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|v| v.as_bytes())
            })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&String> = self.0.data.iter().flat_map(|d| d.keys()).collect();
        f.debug_struct("Held")
            .field("name", &self.0.metadata.name)
            .field("namespace", &self.0.metadata.namespace)
            .field("keys", &keys)
            .finish()
    }
}

/// Secrets handed to `compile`; their values are wiped when dropped.
#[derive(Default)]
pub struct SecretList(pub Vec<Secret>);

impl Drop for SecretList {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(wipe);
    }
}

/// How long a Secret just read or written is trusted while the watch has not shown it yet.
pub const FRESH: Duration = Duration::from_secs(30);

/// Contents of referenced Secrets, by `(namespace, name)`.
#[derive(Default)]
pub struct SecretCache {
    entries: Mutex<HashMap<SecretKey, (Arc<Held>, Instant)>>,
    /// Per gateway (`namespace/name`): the Secrets it references.
    refs: Mutex<HashMap<String, BTreeSet<SecretKey>>>,
}

impl SecretCache {
    /// The cached Secret if its resourceVersion is `rv`.
    pub fn cached(&self, key: &SecretKey, rv: Option<&str>) -> Option<Arc<Held>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(h, _)| h.get().metadata.resource_version.as_deref() == rv)
            .map(|(h, _)| h.clone())
    }

    /// The cached Secret if it was read or written within `within` (the watch may lag
    /// behind the operator's own write; a Secret deleted meanwhile is evicted by the watch).
    pub fn recent(&self, key: &SecretKey, within: Duration) -> Option<Arc<Held>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < within)
            .map(|(h, _)| h.clone())
    }

    /// Caches `secret` (read or written just now).
    pub fn insert(&self, secret: Secret) -> Option<Arc<Held>> {
        let key = (
            secret.metadata.namespace.clone()?,
            secret.metadata.name.clone()?,
        );
        let held = Arc::new(Held::new(secret));
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (held.clone(), Instant::now()));
        Some(held)
    }

    /// Forgets a Secret that is gone.
    pub fn remove(&self, key: &SecretKey) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Records what `gateway` references now and drops contents nothing references.
    pub fn set_refs(&self, gateway: &str, refs: BTreeSet<SecretKey>) {
        let mut all = self.refs.lock().unwrap_or_else(|p| p.into_inner());
        if all.get(gateway) == Some(&refs) {
            return;
        }
        all.insert(gateway.to_owned(), refs);
        self.prune(&all);
    }

    /// Forgets a deleted gateway's references.
    pub fn forget(&self, gateway: &str) {
        let mut all = self.refs.lock().unwrap_or_else(|p| p.into_inner());
        if all.remove(gateway).is_some() {
            self.prune(&all);
        }
    }

    fn prune(&self, all: &HashMap<String, BTreeSet<SecretKey>>) {
        let live: BTreeSet<&SecretKey> = all.values().flatten().collect();
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| live.contains(k));
    }

    /// Number of cached Secrets.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The Secret `namespace/name`: from the cache while its resourceVersion is current (or,
/// before the watch shows it, for [`FRESH`] after it was read or written); `None` when
/// the metadata watch does not know it; else one GET.
pub async fn fetch(ctx: &Context, namespace: &str, name: &str) -> Result<Option<Arc<Held>>, Error> {
    let key = (namespace.to_owned(), name.to_owned());
    let Some(meta) = ctx
        .stores
        .secrets
        .get(&ObjectRef::new(name).within(namespace))
    else {
        if let Some(h) = ctx.secrets.recent(&key, FRESH) {
            return Ok(Some(h));
        }
        ctx.secrets.remove(&key);
        return Ok(None);
    };
    if let Some(h) = ctx
        .secrets
        .cached(&key, meta.metadata.resource_version.as_deref())
    {
        return Ok(Some(h));
    }
    ctx.metrics.secret_reads.inc();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    match api.get_opt(name).await? {
        Some(s) => Ok(ctx.secrets.insert(s)),
        None => {
            ctx.secrets.remove(&key);
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(name: &str, rv: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("vpn".into());
        s.metadata.resource_version = Some(rv.into());
        s.data = Some([("password".to_owned(), ByteString(b"hunter2".to_vec()))].into());
        s
    }

    fn key(name: &str) -> SecretKey {
        ("vpn".into(), name.into())
    }

    #[test]
    fn cached_while_current_and_referenced() {
        let c = SecretCache::default();
        c.set_refs("vpn/office", [key("a"), key("b")].into());
        c.insert(secret("a", "1"));
        c.insert(secret("b", "1"));
        assert!(c.cached(&key("a"), Some("1")).is_some());
        assert!(c.recent(&key("a"), FRESH).is_some());
        assert!(c.recent(&key("a"), Duration::ZERO).is_none());
        // A newer resourceVersion means: read again.
        assert!(c.cached(&key("a"), Some("2")).is_none());
        // b no longer referenced: dropped.
        c.set_refs("vpn/office", [key("a")].into());
        assert!(c.cached(&key("b"), Some("1")).is_none());
        assert_eq!(c.len(), 1);
        c.forget("vpn/office");
        assert!(c.is_empty());
    }

    #[test]
    fn values_are_wiped_and_never_printed() {
        let mut s = secret("a", "1");
        let h = Held::new(s.clone());
        assert_eq!(h.value("password"), Some(&b"hunter2"[..]));
        assert!(!format!("{h:?}").contains("hunter2"));
        wipe(&mut s);
        assert_eq!(s.data.unwrap().get("password").map(|b| b.0.len()), Some(0));
    }
}
