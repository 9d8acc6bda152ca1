//! Which namespaces the operator watches (`--watch-namespaces`), and one watch stream over
//! several namespaces that a single reflector can follow.

use std::collections::HashMap;
use std::fmt::Debug;

use futures::stream::{self, BoxStream, StreamExt};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// Where gateways, users, their Secrets and the data-plane workloads are watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (cluster-wide RBAC).
    All,
    /// These namespaces only (a Role in each).
    Namespaces(Vec<String>),
}

impl Scope {
    /// From `--watch-namespaces` (comma-separated; empty: all).
    pub fn parse(list: &str) -> Scope {
        let mut ns: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        ns.sort();
        ns.dedup();
        if ns.is_empty() {
            Scope::All
        } else {
            Scope::Namespaces(ns)
        }
    }

    /// Whether objects of `namespace` are watched.
    pub fn covers(&self, namespace: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Namespaces(ns) => ns.iter().any(|n| n == namespace),
        }
    }

    fn apis<K>(&self, client: &Client) -> Vec<Api<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match self {
            Scope::All => vec![Api::all(client.clone())],
            Scope::Namespaces(ns) => ns
                .iter()
                .map(|n| Api::namespaced(client.clone(), n))
                .collect(),
        }
    }
}

/// Item of a watch stream.
pub type WatchItem<K> = Result<Event<K>, watcher::Error>;

/// Watches `K` in `scope`, as one stream.
pub fn watch<K>(
    client: &Client,
    scope: &Scope,
    config: &watcher::Config,
) -> BoxStream<'static, WatchItem<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default,
{
    let streams = scope
        .apis::<K>(client)
        .into_iter()
        .map(|api| watcher(api, config.clone()).boxed())
        .collect();
    merge(streams)
}

/// Watches the metadata (never the data) of `K` in `scope`, as one stream.
pub fn watch_metadata<K>(
    client: &Client,
    scope: &Scope,
    config: &watcher::Config,
) -> BoxStream<'static, WatchItem<PartialObjectMeta<K>>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default,
{
    watch::<PartialObjectMeta<K>>(client, scope, config)
}

/// One stream from several watches of disjoint namespaces. A reflector treats `InitDone`
/// as "the store is exactly this list", so per-namespace (re)lists cannot reach it as
/// they are: the first time every namespace has listed, the merged stream emits one
/// `Init`, every object, `InitDone`; later relists of one namespace become `Delete`s of
/// what it lost and `Apply`s of what it listed.
pub fn merge<K>(
    mut streams: Vec<BoxStream<'static, WatchItem<K>>>,
) -> BoxStream<'static, WatchItem<K>>
where
    K: Resource + Clone + Send + 'static,
{
    if streams.len() == 1
        && let Some(s) = streams.pop()
    {
        return s;
    }
    let merger = Merger::new(streams.len());
    let tagged = streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.map(move |e| (i, e)).boxed());
    stream::select_all(tagged)
        .scan(merger, |m, (i, item)| {
            let out: Vec<WatchItem<K>> = match item {
                Ok(ev) => m.process(i, ev).into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::future::ready(Some(stream::iter(out)))
        })
        .flatten()
        .boxed()
}

type Key = (String, String);

fn key_of<K: Resource>(obj: &K) -> Key {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

/// The state of [`merge`].
pub struct Merger<K> {
    listed: Vec<bool>,
    buffers: Vec<Option<HashMap<Key, K>>>,
    known: HashMap<Key, (usize, K)>,
    ready: bool,
}

impl<K: Resource + Clone> Merger<K> {
    /// For `n` streams.
    pub fn new(n: usize) -> Self {
        Self {
            listed: vec![false; n],
            buffers: (0..n).map(|_| None).collect(),
            known: HashMap::new(),
            ready: false,
        }
    }

    /// The events to emit for event `ev` of stream `i`.
    pub fn process(&mut self, i: usize, ev: Event<K>) -> Vec<Event<K>> {
        match ev {
            Event::Init => {
                if let Some(b) = self.buffers.get_mut(i) {
                    *b = Some(HashMap::new());
                }
                Vec::new()
            }
            Event::InitApply(o) => {
                if let Some(Some(b)) = self.buffers.get_mut(i) {
                    b.insert(key_of(&o), o);
                }
                Vec::new()
            }
            Event::InitDone => self.listed(i),
            Event::Apply(o) => {
                self.known.insert(key_of(&o), (i, o.clone()));
                if self.ready {
                    vec![Event::Apply(o)]
                } else {
                    Vec::new()
                }
            }
            Event::Delete(o) => {
                self.known.remove(&key_of(&o));
                if self.ready {
                    vec![Event::Delete(o)]
                } else {
                    Vec::new()
                }
            }
        }
    }

    fn listed(&mut self, i: usize) -> Vec<Event<K>> {
        let buffer = self
            .buffers
            .get_mut(i)
            .and_then(Option::take)
            .unwrap_or_default();
        let gone: Vec<Key> = self
            .known
            .iter()
            .filter(|(k, (from, _))| *from == i && !buffer.contains_key(*k))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for k in gone {
            if let Some((_, o)) = self.known.remove(&k) {
                out.push(Event::Delete(o));
            }
        }
        for (k, o) in &buffer {
            self.known.insert(k.clone(), (i, o.clone()));
        }
        if let Some(l) = self.listed.get_mut(i) {
            *l = true;
        }
        if self.ready {
            out.extend(buffer.into_values().map(Event::Apply));
            return out;
        }
        if !self.listed.iter().all(|l| *l) {
            return Vec::new();
        }
        self.ready = true;
        let mut all = vec![Event::Init];
        all.extend(
            self.known
                .values()
                .map(|(_, o)| Event::InitApply(o.clone())),
        );
        all.push(Event::InitDone);
        all
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(ns: &str, name: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.namespace = Some(ns.into());
        c.metadata.name = Some(name.into());
        c
    }

    fn names(evs: &[Event<ConfigMap>]) -> Vec<String> {
        let mut v: Vec<String> = evs
            .iter()
            .map(|e| match e {
                Event::Init => "init".into(),
                Event::InitDone => "done".into(),
                Event::InitApply(o) => format!("+{}", o.name_any()),
                Event::Apply(o) => format!("a:{}", o.name_any()),
                Event::Delete(o) => format!("d:{}", o.name_any()),
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn one_init_once_every_namespace_listed_then_relists_as_diffs() {
        let mut m = Merger::new(2);
        assert!(m.process(0, Event::Init).is_empty());
        assert!(m.process(0, Event::InitApply(cm("a", "x"))).is_empty());
        assert!(m.process(0, Event::InitDone).is_empty());
        // Events of a listed namespace before the others are held back.
        assert!(m.process(0, Event::Apply(cm("a", "y"))).is_empty());
        assert!(m.process(1, Event::Init).is_empty());
        assert!(m.process(1, Event::InitApply(cm("b", "z"))).is_empty());
        let first = m.process(1, Event::InitDone);
        assert_eq!(names(&first), ["+x", "+y", "+z", "done", "init"]);
        // Live events pass.
        assert_eq!(names(&m.process(1, Event::Apply(cm("b", "w")))), ["a:w"]);
        assert_eq!(names(&m.process(0, Event::Delete(cm("a", "x")))), ["d:x"]);
        // A relist of b that lost w: a Delete of w, Applies of the rest; a is untouched.
        m.process(1, Event::Init);
        m.process(1, Event::InitApply(cm("b", "z")));
        assert_eq!(names(&m.process(1, Event::InitDone)), ["a:z", "d:w"]);
        assert!(m.known.contains_key(&("a".to_owned(), "y".to_owned())));
    }
}
