//! The leader's side of CA rotation ([`crate::ca_set`]): loads or creates the CA Secret,
//! takes each due step, writes it back (optimistic concurrency on the resourceVersion),
//! and publishes the new CAs to the reconcilers and the gRPC server's TLS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rustls::server::ServerConfig;
use time::{Duration, OffsetDateTime};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::ca_set::{CaHandle, CaSecretError, CaSet, Phase, Policy, ROTATE_ANNOTATION};
use crate::context::Context;
use crate::pki::{Ca, PkiError, cert_validity, renewal_due};
use crate::tls::{TlsError, server_config};

/// Keys of the CA Secret a step may add or remove.
const KEYS: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "next.crt",
    "next.key",
    "previous.crt",
    "phase.since",
];

/// Why the CA could not be loaded, rotated or served.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("Secret {0}: {1}")]
    Secret(String, CaSecretError),
    #[error("certificate: {0}")]
    Pki(#[from] PkiError),
    #[error("server TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("could not load or create Secret {0}")]
    Race(String),
}

/// Why a certificate lifetime option was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?}: expected a number and s, m, h or d")]
    Number(String),
    #[error("{0:?}: the unit must be s, m, h or d")]
    Unit(String),
    #[error("{0:?}: must be positive")]
    NotPositive(String),
}

/// Parses a duration such as `90s`, `15m`, `12h` or `365d`.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| DurationError::Number(s.to_owned()))?;
    let d = match unit {
        "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => return Err(DurationError::Unit(s.to_owned())),
    };
    if d <= Duration::ZERO {
        return Err(DurationError::NotPositive(s.to_owned()));
    }
    Ok(d)
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// Loads the CAs from the Secret `namespace/name`, or creates it with a new CA (a racing
/// replica's Secret wins).
pub async fn load_or_create(
    client: Client,
    namespace: &str,
    name: &str,
    policy: &Policy,
) -> Result<CaSet, RotationError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let full = format!("{namespace}/{name}");
    for _ in 0..3 {
        let now = OffsetDateTime::now_utc();
        if let Some(s) = api.get_opt(name).await? {
            return CaSet::from_data(&secret_data(&s), now)
                .map_err(|e| RotationError::Secret(full, e));
        }
        let set = CaSet::new(Ca::generate_for(now, policy.lifetime)?, now);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            data: Some(
                set.to_data()
                    .into_iter()
                    .map(|(k, v)| (k, ByteString(v.into_bytes())))
                    .collect(),
            ),
            ..Secret::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                info!(secret = %full, "created the control channel CA");
                return Ok(set);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RotationError::Race(full))
}

/// The gRPC server's TLS for `set`: a certificate from its signing CA, client
/// certificates of any of its CAs. Also returns when that certificate ends.
pub fn server_tls(
    set: &CaSet,
    dns_names: &[String],
    now: OffsetDateTime,
) -> Result<(Arc<ServerConfig>, OffsetDateTime, OffsetDateTime), RotationError> {
    let server = set.issue_server(dns_names, now)?;
    let (start, end) = cert_validity(&server.cert_pem)
        .ok_or_else(|| PkiError::Invalid("server certificate validity".into()))?;
    Ok((server_config(&server, &set.bundle())?, start, end))
}

/// The rotation task's state.
pub struct Rotation {
    client: Client,
    namespace: String,
    name: String,
    policy: Policy,
    dns_names: Vec<String>,
    cas: watch::Sender<Arc<CaSet>>,
    tls: watch::Sender<Arc<ServerConfig>>,
    /// Validity of the server certificate in use.
    server_validity: (OffsetDateTime, OffsetDateTime),
}

/// What [`Rotation::start`] hands out.
pub struct Started {
    /// The task, to run by [`Rotation::run`] once the reconcilers' context exists.
    pub rotation: Rotation,
    /// The current CAs, for the reconcilers.
    pub ca: CaHandle,
    /// The gRPC server's TLS configuration, replaced on every step.
    pub tls: watch::Receiver<Arc<ServerConfig>>,
}

impl Rotation {
    /// Starts from `set` (loaded by [`load_or_create`]).
    pub fn start(
        client: Client,
        namespace: &str,
        name: &str,
        policy: Policy,
        dns_names: Vec<String>,
        set: CaSet,
    ) -> Result<Started, RotationError> {
        let now = OffsetDateTime::now_utc();
        let (config, start, end) = server_tls(&set, &dns_names, now)?;
        let (cas, ca_rx) = watch::channel(Arc::new(set));
        let (tls, tls_rx) = watch::channel(config);
        Ok(Started {
            rotation: Rotation {
                client,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                policy,
                dns_names,
                cas,
                tls,
                server_validity: (start, end),
            },
            ca: CaHandle::new(ca_rx),
            tls: tls_rx,
        })
    }

    /// How often the CA Secret is checked.
    fn interval(&self) -> StdDuration {
        let quarter = (self.policy.propagation / 4_i32).whole_milliseconds();
        StdDuration::from_millis(u64::try_from(quarter).unwrap_or(0))
            .clamp(StdDuration::from_secs(1), StdDuration::from_secs(30))
    }

    /// Checks and steps until `stop`.
    pub async fn run(mut self, ctx: Arc<Context>, stop: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(self.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.check(&ctx).await {
                warn!(error = %e, "CA rotation check failed; retrying");
            }
        }
    }

    fn publish(&mut self, set: CaSet, now: OffsetDateTime) -> Result<(), RotationError> {
        let (config, start, end) = server_tls(&set, &self.dns_names, now)?;
        self.server_validity = (start, end);
        self.tls.send_replace(config);
        self.cas.send_replace(Arc::new(set));
        Ok(())
    }

    async fn check(&mut self, ctx: &Context) -> Result<(), RotationError> {
        let now = OffsetDateTime::now_utc();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let full = format!("{}/{}", self.namespace, self.name);
        let secret = api.get(&self.name).await?;
        let stored = CaSet::from_data(&secret_data(&secret), now)
            .map_err(|e| RotationError::Secret(full.clone(), e))?;
        ctx.metrics
            .ca_expiry_seconds
            .set((stored.signing.not_after() - now).whole_seconds());
        if stored.fingerprint() != self.cas.borrow().fingerprint() {
            // Changed by someone else (an earlier leader's step, a restore): follow it.
            info!(secret = %full, "the CA Secret changed; serving its CAs");
            self.publish(stored, now)?;
            return Ok(());
        }
        let requested = secret.annotations().contains_key(ROTATE_ANNOTATION);
        let Some(next) = stored.step(now, &self.policy, requested, ctx.agents_current())? else {
            let (start, end) = self.server_validity;
            if renewal_due(start, end, now) {
                info!("renewing the gRPC server certificate");
                self.publish(stored, now)?;
            }
            return Ok(());
        };
        let mut data = serde_json::Map::new();
        let new = next.to_data();
        for k in KEYS {
            let v = match new.get(k) {
                Some(v) => serde_json::to_value(ByteString(v.clone().into_bytes()))
                    .unwrap_or(serde_json::Value::Null),
                None => serde_json::Value::Null,
            };
            data.insert(k.to_owned(), v);
        }
        let body = serde_json::json!({
            "metadata": {
                "resourceVersion": secret.resource_version(),
                "annotations": {ROTATE_ANNOTATION: null},
            },
            "data": data,
        });
        api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
        let step = match next.phase() {
            Phase::Introduced => "introduced a new CA (trusted, not signing yet)",
            Phase::Switched => "switched to the new CA (the old one is still trusted)",
            Phase::Stable => "dropped the previous CA",
        };
        info!(secret = %full, requested, not_after = %next.signing.not_after(), "CA rotation: {step}");
        ctx.metrics.ca_rotations.inc();
        self.publish(next, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::seconds(90)));
        assert_eq!(parse_duration("365d"), Ok(Duration::days(365)));
        assert_eq!(parse_duration("12h"), Ok(Duration::hours(12)));
        assert_eq!(parse_duration("5m"), Ok(Duration::minutes(5)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("5w").is_err());
    }
}
