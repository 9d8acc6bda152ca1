//! The `VpnClient` custom resource (`sluice.dev/v1alpha1`): a tunnel Sluice dials out to a
//! remote PPTP (RFC 2637) or L2TP/IPsec (RFC 2661, RFC 3193) server. Design:
//! `docs/client-mode.md`.

// kube's repeated `printcolumn(...)` arguments look like duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gateway::{
    AuthenticationMethod, CertificateSecretRef, ClientCaSecretRef, Encryption, MAX_LIST_ITEMS,
    MAX_MTU, MAX_NAME_LENGTH, MIN_MTU, MppeSpec, PreSharedKeySecretRef, TunnelSecretRef,
};
use crate::user::{DEFAULT_PASSWORD_KEY, GatewayRef, Service};

/// Secret key read when `credentialsSecretRef.usernameKey` is absent.
pub const DEFAULT_USERNAME_KEY: &str = "username";
/// First wait after a failed attempt.
pub const DEFAULT_RECONNECT_INITIAL: &str = "2s";
/// Longest wait between attempts (and the wait after a refused login).
pub const DEFAULT_RECONNECT_MAX: &str = "5m";

/// A tunnel dialled out to a remote VPN server.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    doc = "A VPN client: a PPTP or L2TP/IPsec tunnel that one data-plane pod of a VpnGateway dials to a remote server and keeps up, with the remote networks routed into it.",
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "VpnClient",
    namespaced,
    status = "VpnClientStatus",
    shortname = "vcl",
    derive = "PartialEq",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Server", type_ = "string", json_path = ".spec.connectTo"),
    printcolumn(name = "Address", type_ = "string", json_path = ".status.localAddress"),
    printcolumn(name = "Encoding", type_ = "string", json_path = ".status.encoding"),
    printcolumn(
        name = "Node",
        type_ = "string",
        json_path = ".status.node",
        priority = 1
    ),
    printcolumn(
        name = "Error",
        type_ = "string",
        json_path = ".status.lastError.message",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "self.protocol == 'l2tp' || (!has(self.ipsec) && !has(self.tunnelSecretRef) && !self.allowUnencrypted)"
    )
    .message("spec.ipsec, spec.tunnelSecretRef and spec.allowUnencrypted are for protocol l2tp only"),
    validation = Rule::new("self.protocol == 'pptp' || has(self.ipsec) || self.allowUnencrypted")
        .message("spec.ipsec is required with protocol l2tp, unless spec.allowUnencrypted is true")
)]
pub struct VpnClientSpec {
    /// The `VpnGateway` (same namespace) whose data plane dials: the operator picks one of
    /// its ready pods; in standalone mode the one data plane dials.
    pub gateway_ref: GatewayRef,
    /// `pptp` or `l2tp`.
    pub protocol: Service,
    /// The server, as `host` or `host:port` (a DNS name or an IPv4 address); the port
    /// defaults to 1723 for PPTP and to 500 (IKE) or 1701 (plain L2TP) for L2TP.
    #[schemars(length(min = 1, max = 259))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?$')"
        )
        .message("spec.connectTo must be host or host:port, with a port from 1 to 65535, such as vpn.example.net:1723")
    )]
    pub connect_to: String,
    /// Secret (same namespace) holding the PPP user name and password.
    pub credentials_secret_ref: CredentialsSecretRef,
    /// Authentication methods the client agrees to, most preferred first. No PAP unless
    /// listed: PAP sends the password in clear.
    #[serde(default = "crate::gateway::default_authentication")]
    #[schemars(length(min = 1, max = 4))]
    #[x_kube(
        validation = Rule::new("self.all(m, self.exists_one(n, n == m))")
            .message("spec.authentication must not list a method twice")
    )]
    pub authentication: Vec<AuthenticationMethod>,
    /// MPPE policy; absent: `require` for PPTP, `deny` for L2TP (IPsec encrypts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// MPPE settings, when `encryption` allows it.
    #[serde(default)]
    pub mppe: MppeSpec,
    /// IPsec under L2TP (IKEv1 Main Mode, transport-mode ESP, NAT-T).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipsec: Option<ClientIpsecSpec>,
    /// Secret (same namespace) for L2TP tunnel authentication (RFC 2661 §5.1.1); absent:
    /// the tunnel is not authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_secret_ref: Option<TunnelSecretRef>,
    /// Dial L2TP without IPsec. L2TP encrypts nothing: only for labs and networks that are
    /// already protected.
    #[serde(default)]
    pub allow_unencrypted: bool,
    /// IPv4 networks behind the server, routed into the tunnel while it is up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_LIST_ITEMS), inner(length(max = 18)))]
    #[x_kube(
        validation = Rule::new("self.all(c, isCIDR(c) && cidr(c).ip().family() == 4)")
            .message("spec.routes must be IPv4 CIDRs")
    )]
    pub routes: Vec<String>,
    /// Route everything into the tunnel (two /1 routes, so the node's own default route
    /// stays; the server's address keeps its route outside the tunnel).
    #[serde(default)]
    pub add_default_route: bool,
    /// Rewrite the source of local traffic entering the tunnel to the tunnel address, so
    /// the server needs no route back to the cluster's networks.
    #[serde(default = "crate::gateway::default_true")]
    pub masquerade: bool,
    /// Maximum transmit unit (576..=1436).
    #[serde(default = "crate::gateway::default_mtu")]
    #[schemars(range(min = MIN_MTU, max = MAX_MTU))]
    pub mtu: u32,
    /// Maximum receive unit (576..=1436).
    #[serde(default = "crate::gateway::default_mtu")]
    #[schemars(range(min = MIN_MTU, max = MAX_MTU))]
    pub mru: u32,
    /// Silence before LCP echoes start, as a Go duration (`0s` disables; at most `1h`); the
    /// tunnel is dropped, and dialled again, when they go unanswered.
    #[serde(default = "crate::gateway::default_keepalive")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) <= duration('1h')"
        )
        .message("spec.keepaliveTimeout must be a duration of at most 1h, such as 30s")
    )]
    pub keepalive_timeout: String,
    /// Waits between attempts.
    #[serde(default)]
    pub reconnect: ReconnectSpec,
    /// Hang up and stay down.
    #[serde(default)]
    pub disabled: bool,
}

/// Reference to a Secret (same namespace) holding a user name and a password.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret.
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub name: String,
    /// Key of the user name.
    #[serde(default = "default_username_key")]
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub username_key: String,
    /// Key of the password.
    #[serde(default = "default_password_key")]
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub password_key: String,
}

/// `spec.ipsec` of a client: how it authenticates Main Mode and what it proposes.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.preSharedKeySecretRef) != has(self.certificateSecretRef)")
        .message("spec.ipsec needs exactly one of preSharedKeySecretRef and certificateSecretRef"),
    validation = Rule::new("!has(self.certificateSecretRef) || has(self.serverCaSecretRef)")
        .message("spec.ipsec.certificateSecretRef needs spec.ipsec.serverCaSecretRef"),
    validation = Rule::new("self.ikePort != self.nattPort")
        .message("spec.ipsec.nattPort must differ from spec.ipsec.ikePort")
)]
pub struct ClientIpsecSpec {
    /// Secret (same namespace) holding the pre-shared key (8–256 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_shared_key_secret_ref: Option<PreSharedKeySecretRef>,
    /// `kubernetes.io/tls` Secret (same namespace) with the client's certificate chain and
    /// RSA key, for Main Mode with RSA signatures (RFC 2409 §5.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_secret_ref: Option<CertificateSecretRef>,
    /// Secret (same namespace) with the PEM CA certificates the server's certificate must
    /// chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ca_secret_ref: Option<ClientCaSecretRef>,
    /// Phase 1 proposals, most preferred first (`aes256-sha256-modp2048`); empty: the
    /// gateway's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 200)))]
    #[x_kube(
        validation = Rule::new("self.all(p, p.matches('^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$'))")
            .message("spec.ipsec.ikeProposals must be proposals such as aes256-sha256-modp2048")
    )]
    pub ike_proposals: Vec<String>,
    /// ESP proposals, most preferred first (`aes256gcm16`, `aes128-sha1`); empty: the
    /// gateway's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 200)))]
    #[x_kube(
        validation = Rule::new("self.all(p, p.matches('^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$'))")
            .message("spec.ipsec.espProposals must be proposals such as aes256gcm16 or aes128-sha1")
    )]
    pub esp_proposals: Vec<String>,
    /// Proposed ISAKMP SA lifetime, as a Go duration (1m to 24h).
    #[serde(default = "crate::gateway::default_ike_lifetime")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1m') && duration(self) <= duration('24h')"
        )
        .message("spec.ipsec.ikeLifetime must be a duration from 1m to 24h, such as 8h")
    )]
    pub ike_lifetime: String,
    /// Proposed ESP SA lifetime, as a Go duration (1m to 8h).
    #[serde(default = "crate::gateway::default_esp_lifetime")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1m') && duration(self) <= duration('8h')"
        )
        .message("spec.ipsec.espLifetime must be a duration from 1m to 8h, such as 1h")
    )]
    pub esp_lifetime: String,
    /// Use Aggressive Mode (RFC 2409 §5.4) with a pre-shared key. Off by default: anyone
    /// who sees the exchange can crack the key offline; only for servers without Main Mode.
    #[serde(default)]
    pub aggressive_mode: bool,
    /// The server's IKE port.
    #[serde(default = "crate::gateway::default_ike_port")]
    #[schemars(range(min = 1))]
    pub ike_port: u16,
    /// The server's NAT-T port.
    #[serde(default = "crate::gateway::default_natt_port")]
    #[schemars(range(min = 1))]
    pub natt_port: u16,
}

/// `spec.reconnect`: exponential back-off with jitter from `initial` to `max`. A tunnel
/// that stayed up a minute starts over from `initial`; a refused login waits `max` at once.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "!self.initial.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || \
         !self.max.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || \
         duration(self.initial) <= duration(self.max)"
    )
    .message("spec.reconnect.initial must not exceed spec.reconnect.max")
)]
pub struct ReconnectSpec {
    /// First wait, as a Go duration (1s to 1h).
    #[serde(default = "default_reconnect_initial")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('1h')"
        )
        .message("spec.reconnect.initial must be a duration from 1s to 1h, such as 2s")
    )]
    pub initial: String,
    /// Longest wait, as a Go duration (1s to 24h).
    #[serde(default = "default_reconnect_max")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('24h')"
        )
        .message("spec.reconnect.max must be a duration from 1s to 24h, such as 5m")
    )]
    pub max: String,
}

impl Default for ReconnectSpec {
    fn default() -> Self {
        Self {
            initial: default_reconnect_initial(),
            max: default_reconnect_max(),
        }
    }
}

fn default_username_key() -> String {
    DEFAULT_USERNAME_KEY.to_owned()
}

fn default_password_key() -> String {
    DEFAULT_PASSWORD_KEY.to_owned()
}

fn default_reconnect_initial() -> String {
    DEFAULT_RECONNECT_INITIAL.to_owned()
}

fn default_reconnect_max() -> String {
    DEFAULT_RECONNECT_MAX.to_owned()
}

/// Where a client tunnel stands.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ClientPhase {
    // Plain comments, not doc comments: documented variants become a non-structural `oneOf`.
    // Dialling: control connection, IKE, L2TP or PPP under way.
    Connecting,
    // The tunnel carries traffic.
    Connected,
    // Waiting before the next attempt (`status.retryAt`).
    BackingOff,
    // Cannot dial until the object or a Secret changes (`status.lastError`).
    Failed,
    // `spec.disabled`.
    Disabled,
}

/// Observed state of a `VpnClient` (written by the operator from the dialling pod's
/// reports; in standalone mode, `sluice-dataplane sessions` shows the same fields).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpnClientStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the tunnel stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClientPhase>,
    /// Node whose data-plane pod dials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The server's address as dialled (`connectTo` resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_address: Option<String>,
    /// Our address inside the tunnel (IPCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address: Option<String>,
    /// The server's address inside the tunnel (IPCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<String>,
    /// When the tunnel came up (RFC 3339); uptime is now minus this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_since: Option<String>,
    /// Data encoding, e.g. `MPPE 128 bit, stateless` or `ESP AES-256-GCM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Bytes received from the server since the tunnel came up.
    #[serde(default)]
    pub bytes_in: u64,
    /// Bytes sent to the server since the tunnel came up.
    #[serde(default)]
    pub bytes_out: u64,
    /// When the next attempt starts, while backing off (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    /// The last failure (never a password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ClientError>,
    /// `Ready`, with the reason of the last failure while not connected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A failed attempt or a dropped tunnel.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientError {
    /// When (RFC 3339).
    pub time: String,
    /// `ServerUnreachable`, `AuthenticationRejected`, `TunnelDropped`, `NegotiationFailed`
    /// or `LocalError`.
    pub reason: String,
    /// What happened, e.g. `MS-CHAPv2 failure: E=691`.
    pub message: String,
}

impl VpnClientSpec {
    /// The MPPE policy in force: `spec.encryption`, else `require` for PPTP and `deny` for
    /// L2TP.
    pub fn encryption(&self) -> Encryption {
        self.encryption.unwrap_or(match self.protocol {
            Service::Pptp => Encryption::Require,
            Service::L2tp => Encryption::Deny,
        })
    }

    /// The Secrets this client reads.
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names = vec![self.credentials_secret_ref.name.as_str()];
        if let Some(t) = &self.tunnel_secret_ref {
            names.push(&t.name);
        }
        if let Some(i) = &self.ipsec {
            names.extend(
                i.pre_shared_key_secret_ref
                    .as_ref()
                    .map(|r| r.name.as_str()),
            );
            names.extend(i.certificate_secret_ref.as_ref().map(|r| r.name.as_str()));
            names.extend(i.server_ca_secret_ref.as_ref().map(|r| r.name.as_str()));
        }
        names.sort_unstable();
        names.dedup();
        names
    }
}
