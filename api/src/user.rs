//! The `VpnUser` custom resource (`sluice.dev/v1alpha1`).

// kube's repeated `printcolumn(...)` arguments look like duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Secret key read when `passwordSecretRef.key` is absent.
pub const DEFAULT_PASSWORD_KEY: &str = "password";

/// A VPN user of one gateway.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    doc = "A VPN user: a username and a password Secret, allowed on one VpnGateway of the same namespace; its status shows the user's live sessions.",
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "VpnUser",
    namespaced,
    status = "VpnUserStatus",
    shortname = "vuser",
    derive = "PartialEq",
    printcolumn(
        name = "Gateway",
        type_ = "string",
        json_path = ".spec.gatewayRef.name"
    ),
    printcolumn(name = "Connected", type_ = "boolean", json_path = ".status.connected"),
    printcolumn(name = "Address", type_ = "string", json_path = ".status.address"),
    printcolumn(name = "Protocol", type_ = "string", json_path = ".status.protocol"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VpnUserSpec {
    /// The `VpnGateway` (same namespace) this user belongs to.
    #[x_kube(
        validation = Rule::new("self == oldSelf")
            .message("spec.gatewayRef is immutable: create a new VpnUser for another gateway")
    )]
    pub gateway_ref: GatewayRef,
    /// PPP user name; defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub username: Option<String>,
    /// Secret (same namespace) holding the cleartext password.
    pub password_secret_ref: SecretKeyRef,
    /// Services this user may use.
    #[serde(default = "default_services")]
    #[schemars(length(max = 2))]
    #[x_kube(
        validation = Rule::new("self.all(m, self.exists_one(n, n == m))")
            .message("spec.services must not list a service twice")
    )]
    pub services: Vec<Service>,
    /// Static IPv4 address; absent means one from the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    #[x_kube(
        validation = Rule::new("isIP(self) && ip(self).family() == 4")
            .message("spec.remoteAddress must be an IPv4 address")
    )]
    pub remote_address: Option<String>,
    /// IPv4 networks behind the client, routed to it while connected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::MAX_LIST_ITEMS), inner(length(max = 18)))]
    #[x_kube(
        validation = Rule::new("self.all(c, isCIDR(c) && cidr(c).ip().family() == 4)")
            .message("spec.routes must be IPv4 CIDRs")
    )]
    pub routes: Vec<String>,
    /// Concurrent session limit; absent or 0 means unlimited (1 with a static address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    /// A disabled user is left out of the gateway's configuration.
    #[serde(default)]
    pub disabled: bool,
    /// Bandwidth limit of each of the user's sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
}

/// `spec.rateLimit`: a token bucket per session and direction, enforced on the data
/// path; packets beyond it are dropped (`sluice_dropped_packets_total{reason="rate_limit"}`).
/// Rates are bits per second and sizes bytes, each a number with an optional SI suffix
/// `k`, `M` or `G` (×1000), such as `10M`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.down) || has(self.up)")
        .message("spec.rateLimit needs down, up or both")
)]
pub struct RateLimitSpec {
    /// Toward the client (8k to 100G bits per second); absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 24))]
    #[x_kube(
        validation = Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+)?[kMG]?$')")
            .message("spec.rateLimit.down must be a number with an optional k, M or G suffix, such as 10M")
    )]
    pub down: Option<String>,
    /// From the client (8k to 100G bits per second); absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 24))]
    #[x_kube(
        validation = Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+)?[kMG]?$')")
            .message("spec.rateLimit.up must be a number with an optional k, M or G suffix, such as 2M")
    )]
    pub up: Option<String>,
    /// Bytes each direction may send at once above the rate (3k to 1G); default 100 ms
    /// at the rate, at least 3k.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 24))]
    #[x_kube(
        validation = Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+)?[kMG]?$')")
            .message("spec.rateLimit.burst must be a number of bytes with an optional k, M or G suffix, such as 64k")
    )]
    pub burst: Option<String>,
}

fn default_services() -> Vec<Service> {
    vec![Service::Pptp, Service::L2tp]
}

/// Reference to a `VpnGateway` in the same namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct GatewayRef {
    /// Name of the `VpnGateway`.
    #[schemars(length(max = crate::MAX_NAME_LENGTH))]
    pub name: String,
}

/// Reference to one key of a Secret in the same namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(max = crate::MAX_NAME_LENGTH))]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "default_key")]
    #[schemars(length(max = crate::MAX_NAME_LENGTH))]
    pub key: String,
}

fn default_key() -> String {
    DEFAULT_PASSWORD_KEY.to_owned()
}

/// A VPN service a user may be allowed to use.
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    // PPTP (RFC 2637).
    Pptp,
    // L2TP over IPsec (RFC 2661, RFC 3193).
    L2tp,
}

impl Service {
    /// The name used in manifests and in the compiled configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pptp => "pptp",
            Self::L2tp => "l2tp",
        }
    }
}

/// Observed state of a `VpnUser` (filled by the operator).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpnUserStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Whether the user has at least one live session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    /// Tunnel address of the first live session (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Protocol of the first live session (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Live sessions, across all data-plane pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<UserSession>,
    /// When the user last logged in successfully (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login: Option<String>,
    /// The last failed login: when, from where and why (never the password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_auth_failure: Option<AuthFailure>,
    /// `Ready`; `SecretMissing` when the password Secret or key is absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One live session of a user.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSession {
    /// `pptp` or `l2tp`.
    pub protocol: String,
    /// Node whose data-plane pod carries the session.
    pub node: String,
    /// Tunnel address assigned to the client.
    pub address: String,
    /// The client's public address.
    pub caller_address: String,
    /// When the session came up (RFC 3339).
    pub since: String,
    /// Bytes received from the client.
    #[serde(default)]
    pub bytes_in: u64,
    /// Bytes sent to the client.
    #[serde(default)]
    pub bytes_out: u64,
    /// Data encoding, e.g. `MPPE 128 bit, stateless`.
    pub encoding: String,
}

/// A failed login.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthFailure {
    /// When (RFC 3339).
    pub time: String,
    /// The client's public address.
    pub caller_address: String,
    /// Why, e.g. `wrong password` or `service not allowed`.
    pub reason: String,
}
