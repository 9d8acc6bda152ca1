//! The `VpnGateway` custom resource (`sluice.dev/v1alpha1`).

// kube's repeated `printcolumn(...)` arguments look like duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default PPTP control port (RFC 2637 §1.3 uses TCP 1723).
pub const DEFAULT_PPTP_PORT: u16 = 1723;
/// Default PPP MTU and MRU.
pub const DEFAULT_MTU: u32 = 1400;
/// Largest MTU/MRU that fits PPTP's GRE + IP overhead in a 1500-byte path.
pub const MAX_MTU: u32 = 1436;
/// Smallest MTU/MRU accepted (IPv4's minimum reassembly size).
pub const MIN_MTU: u32 = 576;
/// Default L2TP port (RFC 2661 §8.1: UDP 1701).
pub const DEFAULT_L2TP_PORT: u16 = 1701;
/// Default L2TP HELLO interval (RFC 2661 §6.5).
pub const DEFAULT_HELLO_INTERVAL: &str = "60s";
/// Secret key read when `tunnelSecretRef.key` is absent.
pub const DEFAULT_TUNNEL_SECRET_KEY: &str = "secret";
/// Default keepalive timeout.
pub const DEFAULT_KEEPALIVE: &str = "30s";
/// Secret key read when `ipsec.preSharedKeySecretRef.key` is absent.
pub const DEFAULT_PRE_SHARED_KEY_KEY: &str = "psk";
// The IPsec defaults are the engine's (`sluice_ike::policy`), defined there once.
pub use sluice_ike::policy::{DEFAULT_IKE_PORT, DEFAULT_NATT_PORT};

/// Most entries of a list field the schema accepts (CEL cost estimation needs a bound).
pub const MAX_LIST_ITEMS: u32 = 64;
/// Longest object name or Secret key a reference may hold (a DNS subdomain: 253).
pub const MAX_NAME_LENGTH: u32 = 253;

/// A VPN gateway: the PPTP and L2TP services and their PPP address plan.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    doc = "A VPN gateway: data-plane pods that serve PPTP and L2TP/IPsec on their nodes, with one PPP address plan. Users are VpnUser objects of the same namespace that name it.",
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "VpnGateway",
    namespaced,
    status = "VpnGatewayStatus",
    shortname = "vgw",
    derive = "PartialEq",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(
        name = "Draining",
        type_ = "integer",
        json_path = ".status.drainingReplicas",
        priority = 1
    ),
    printcolumn(
        name = "Sessions",
        type_ = "integer",
        json_path = ".status.sessions.total"
    ),
    printcolumn(name = "Endpoints", type_ = "string", json_path = ".status.endpoints"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VpnGatewaySpec {
    /// Number of data-plane pods (at most one per node).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Gateway-wide session limit; 0 means unlimited.
    #[serde(default)]
    pub max_sessions: u32,
    /// PPTP service settings.
    #[serde(default)]
    pub pptp: PptpSpec,
    /// L2TP service settings (off unless enabled).
    #[serde(default)]
    pub l2tp: L2tpSpec,
    /// PPP link and address settings.
    pub ppp: PppSpec,
    /// NAT settings.
    #[serde(default)]
    pub nat: NatSpec,
    /// Metrics settings of the data plane.
    #[serde(default)]
    pub metrics: MetricsSpec,
    /// Node labels a data-plane pod's node must have (pod `nodeSelector`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the data-plane pods tolerate (pod `tolerations`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_LIST_ITEMS))]
    pub tolerations: Vec<Toleration>,
    /// CPU and memory of the data-plane container (default: requests 100m / 64Mi, limit 512Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// How long a data-plane pod being removed (scale-down, rolling update, node drain) waits
    /// for its sessions to end, as a Go duration (0s to 24h). It refuses new sessions at once
    /// (and turns not-ready), exits as soon as none is left, and at this timeout closes the
    /// rest properly so the clients reconnect elsewhere. The pods'
    /// `terminationGracePeriodSeconds` is this plus 30 s.
    #[serde(default = "default_drain_timeout")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) <= duration('24h')"
        )
        .message("spec.drainTimeout must be a duration from 0s to 24h, such as 1h")
    )]
    pub drain_timeout: String,
    /// Built-in autoscaling from live session counts: the operator sets `spec.replicas`
    /// (through the scale subresource, as an HPA would). Leave it out to set replicas
    /// yourself or let KEDA/an HPA drive the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
}

/// `spec.autoscaling`: replicas = ⌈sessions / targetSessionsPerReplica⌉ within
/// `minReplicas..=maxReplicas`. Scale-up is immediate; scale-down only to the highest
/// recommendation of the last `scaleDownStabilization`, and changes within 10 % of the
/// target are ignored (hysteresis). Pods removed by a scale-down drain first
/// (`spec.drainTimeout`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.minReplicas <= self.maxReplicas")
        .message("spec.autoscaling.minReplicas must not exceed maxReplicas")
)]
pub struct AutoscalingSpec {
    /// Fewest data-plane pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub min_replicas: i32,
    /// Most data-plane pods (at most one per node).
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Sessions one pod should carry.
    #[schemars(range(min = 1))]
    pub target_sessions_per_replica: u32,
    /// How long the recommendation must have stayed lower before replicas go down, as a
    /// Go duration (0s to 24h).
    #[serde(default = "default_scale_down_stabilization")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) <= duration('24h')"
        )
        .message("spec.autoscaling.scaleDownStabilization must be a duration from 0s to 24h, such as 10m")
    )]
    pub scale_down_stabilization: String,
}

fn default_scale_down_stabilization() -> String {
    "10m".to_owned()
}

impl AutoscalingSpec {
    /// `scaleDownStabilization` in whole seconds (10 min when it does not parse; compiling
    /// the gateway reports that).
    pub fn scale_down_stabilization_seconds(&self) -> u64 {
        seconds_up_to_a_day(&self.scale_down_stabilization, 600)
    }
}

/// A Go duration of at most 24 h in whole seconds, or `default` (compiling the gateway
/// reports a bad value with its field).
fn seconds_up_to_a_day(text: &str, default: u64) -> u64 {
    crate::parse_go_duration(text)
        .ok()
        .filter(|d| d.as_secs() <= MAX_DRAIN_TIMEOUT_SECONDS)
        .map_or(default, |d| d.as_secs())
}

fn default_replicas() -> i32 {
    1
}

/// Default of `spec.drainTimeout`.
pub const DEFAULT_DRAIN_TIMEOUT: &str = "1h";
/// Longest `spec.drainTimeout`, in seconds.
pub const MAX_DRAIN_TIMEOUT_SECONDS: u64 = 24 * 3600;

fn default_drain_timeout() -> String {
    DEFAULT_DRAIN_TIMEOUT.to_owned()
}

/// PPTP service settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PptpSpec {
    /// Whether PPTP is served.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// TCP port of the control connection.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
    /// Accepted authentication methods, most preferred first.
    #[serde(default = "default_authentication")]
    #[schemars(length(min = 1, max = 4))]
    #[x_kube(
        validation = Rule::new("self.all(m, self.exists_one(n, n == m))")
            .message("spec.pptp.authentication must not list a method twice")
    )]
    pub authentication: Vec<AuthenticationMethod>,
    /// MPPE policy.
    #[serde(default)]
    pub encryption: Encryption,
    /// MPPE settings.
    #[serde(default)]
    pub mppe: MppeSpec,
}

impl Default for PptpSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            port: DEFAULT_PPTP_PORT,
            authentication: default_authentication(),
            encryption: Encryption::default(),
            mppe: MppeSpec::default(),
        }
    }
}

/// L2TP service settings (RFC 2661 LNS).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct L2tpSpec {
    /// Whether L2TP is served.
    #[serde(default)]
    pub enabled: bool,
    /// UDP port (replies leave from it, on the address the request arrived on).
    #[serde(default = "default_l2tp_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
    /// Accepted PPP authentication methods, most preferred first.
    #[serde(default = "default_authentication")]
    #[schemars(length(min = 1, max = 4))]
    #[x_kube(
        validation = Rule::new("self.all(m, self.exists_one(n, n == m))")
            .message("spec.l2tp.authentication must not list a method twice")
    )]
    pub authentication: Vec<AuthenticationMethod>,
    /// MPPE inside L2TP: `deny` by default, IPsec provides confidentiality.
    #[serde(default = "default_l2tp_encryption")]
    pub encryption: Encryption,
    /// MPPE settings, when `encryption` allows it.
    #[serde(default)]
    pub mppe: MppeSpec,
    /// Secret (same namespace) for L2TP tunnel authentication and hidden AVPs (RFC 2661
    /// §4.3, §5.1.1); absent means tunnels are not authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_secret_ref: Option<TunnelSecretRef>,
    /// Control-channel silence before a HELLO is sent, as a Go duration (`0s` disables; at most `1h`).
    #[serde(default = "default_hello_interval")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) <= duration('1h')"
        )
        .message("spec.l2tp.helloInterval must be a duration of at most 1h, such as 60s")
    )]
    pub hello_interval: String,
    /// Serve L2TP without IPsec. L2TP itself encrypts nothing: only for labs and for
    /// networks that are already protected. With `ipsec` configured as well, L2TP that did not
    /// arrive under ESP is accepted in addition.
    #[serde(default)]
    pub allow_unencrypted: bool,
    /// IPsec protecting L2TP (IKEv1 Main Mode with a pre-shared key, transport-mode ESP).
    #[serde(default)]
    pub ipsec: IpsecSpec,
}

impl L2tpSpec {
    /// Whether L2TP is served inside IPsec: enabled, with a pre-shared key.
    pub fn ipsec_enabled(&self) -> bool {
        self.enabled && self.ipsec.pre_shared_key_secret_ref.is_some()
    }
}

impl Default for L2tpSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            port: DEFAULT_L2TP_PORT,
            authentication: default_authentication(),
            encryption: default_l2tp_encryption(),
            mppe: MppeSpec::default(),
            tunnel_secret_ref: None,
            hello_interval: default_hello_interval(),
            allow_unencrypted: false,
            ipsec: IpsecSpec::default(),
        }
    }
}

/// IPsec for L2TP (RFC 3193): IKEv1 Main Mode with a pre-shared key, then transport-mode ESP
/// (raw, or in UDP when NAT is in the way), NAT-T and DPD.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.ikePort != self.nattPort")
        .message("spec.l2tp.ipsec.nattPort must differ from spec.l2tp.ipsec.ikePort")
)]
pub struct IpsecSpec {
    /// Secret (same namespace) holding the Main Mode pre-shared key (8–256 bytes). Required
    /// when L2TP is enabled without `allowUnencrypted`; without it IPsec is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_shared_key_secret_ref: Option<PreSharedKeySecretRef>,
    /// `kubernetes.io/tls` Secret (same namespace; cert-manager issues these) with the
    /// gateway's certificate chain (`tls.crt`, leaf first) and RSA private key (`tls.key`),
    /// for Main Mode with RSA signatures (RFC 2409 §5.1). Needs `clientCaSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_secret_ref: Option<CertificateSecretRef>,
    /// Secret (same namespace) with the PEM CA certificates that client certificates must
    /// chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_secret_ref: Option<ClientCaSecretRef>,
    /// Phase 1 proposals (`aes256-sha256-modp2048`); empty: the defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 200)))]
    #[x_kube(
        validation = Rule::new("self.all(p, p.matches('^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$'))")
            .message("spec.l2tp.ipsec.ikeProposals must be proposals such as aes256-sha256-modp2048")
    )]
    pub ike_proposals: Vec<String>,
    /// ESP proposals (`aes256gcm16`, `aes128-sha1`, `aes256-sha256-modp2048` for PFS); empty:
    /// the defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 200)))]
    #[x_kube(
        validation = Rule::new("self.all(p, p.matches('^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$'))")
            .message("spec.l2tp.ipsec.espProposals must be proposals such as aes256gcm16 or aes128-sha1")
    )]
    pub esp_proposals: Vec<String>,
    /// Longest ISAKMP SA lifetime agreed to, as a Go duration (1m to 24h).
    #[serde(default = "default_ike_lifetime")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1m') && duration(self) <= duration('24h')"
        )
        .message("spec.l2tp.ipsec.ikeLifetime must be a duration from 1m to 24h, such as 8h")
    )]
    pub ike_lifetime: String,
    /// Longest ESP SA lifetime agreed to, as a Go duration (1m to 8h).
    #[serde(default = "default_esp_lifetime")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1m') && duration(self) <= duration('8h')"
        )
        .message("spec.l2tp.ipsec.espLifetime must be a duration from 1m to 8h, such as 1h")
    )]
    pub esp_lifetime: String,
    /// ESP SA volume limit in kilobytes; 0 means none.
    #[serde(default)]
    pub esp_lifetime_kilobytes: u64,
    /// How NAT-D is answered: `honest`, `parrot` or `forceEncapsulation`.
    #[serde(default)]
    pub nat_detection: NatDetection,
    /// Dead peer detection (RFC 3706).
    #[serde(default)]
    pub dpd: DpdSpec,
    /// Accept MD5 in proposals. MD5 is broken; only for clients that offer nothing else.
    #[serde(default)]
    pub allow_md5: bool,
    /// Answer IKEv1 Aggressive Mode (RFC 2409 §5.4). Off by default: its second message
    /// carries a hash of the pre-shared key that anyone can crack offline without knowing
    /// the key; only for old clients that cannot do Main Mode.
    #[serde(default)]
    pub allow_aggressive_mode: bool,
    /// UDP port of IKE.
    #[serde(default = "default_ike_port")]
    #[schemars(range(min = 1))]
    pub ike_port: u16,
    /// UDP port of NAT-T (IKE and ESP when NAT is in the way).
    #[serde(default = "default_natt_port")]
    #[schemars(range(min = 1))]
    pub natt_port: u16,
}

impl Default for IpsecSpec {
    fn default() -> Self {
        Self {
            pre_shared_key_secret_ref: None,
            certificate_secret_ref: None,
            client_ca_secret_ref: None,
            ike_proposals: Vec::new(),
            esp_proposals: Vec::new(),
            ike_lifetime: default_ike_lifetime(),
            esp_lifetime: default_esp_lifetime(),
            esp_lifetime_kilobytes: 0,
            nat_detection: NatDetection::default(),
            dpd: DpdSpec::default(),
            allow_md5: false,
            allow_aggressive_mode: false,
            ike_port: DEFAULT_IKE_PORT,
            natt_port: DEFAULT_NATT_PORT,
        }
    }
}

/// Reference to the key of a Secret (same namespace) holding the IPsec pre-shared key.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct PreSharedKeySecretRef {
    /// Name of the Secret.
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "default_pre_shared_key_key")]
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub key: String,
}

/// Reference to a `kubernetes.io/tls` Secret (same namespace): keys `tls.crt` and `tls.key`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct CertificateSecretRef {
    /// Name of the Secret.
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub name: String,
}

/// Reference to the key of a Secret (same namespace) holding PEM CA certificates.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ClientCaSecretRef {
    /// Name of the Secret.
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "default_client_ca_key")]
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub key: String,
}

fn default_client_ca_key() -> String {
    "ca.crt".into()
}

/// How the gateway answers NAT-D (RFC 3947 §3.2) when it is itself behind NAT.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NatDetection {
    // Plain comments, not doc comments: documented variants become a non-structural `oneOf`.
    // Hash the addresses really seen and used.
    #[default]
    Honest,
    // Echo the client's hash of the gateway's address: clients never see the gateway behind
    // NAT (Windows without AssumeUDPEncapsulationContextOnSendRule).
    Parrot,
    // Parrot, and make every client believe it is behind NAT: ESP always travels in UDP.
    ForceEncapsulation,
}

/// Dead peer detection (RFC 3706).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "!self.delay.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || \
         !self.timeout.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || \
         duration(self.timeout) > duration(self.delay)"
    )
    .message("spec.l2tp.ipsec.dpd.timeout must be longer than spec.l2tp.ipsec.dpd.delay")
)]
pub struct DpdSpec {
    /// Idle time before an R-U-THERE is sent, as a Go duration (`0s`: never probe, only
    /// answer; at most `1h`).
    #[serde(default = "default_dpd_delay")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) <= duration('1h')"
        )
        .message("spec.l2tp.ipsec.dpd.delay must be a duration of at most 1h, such as 30s")
    )]
    pub delay: String,
    /// Time without a sign of life before the client is declared dead, as a Go duration
    /// (longer than `delay`, at most `1h`).
    #[serde(default = "default_dpd_timeout")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) <= duration('1h')"
        )
        .message("spec.l2tp.ipsec.dpd.timeout must be a duration of at most 1h, such as 150s")
    )]
    pub timeout: String,
}

impl Default for DpdSpec {
    fn default() -> Self {
        Self {
            delay: default_dpd_delay(),
            timeout: default_dpd_timeout(),
        }
    }
}

fn default_pre_shared_key_key() -> String {
    DEFAULT_PRE_SHARED_KEY_KEY.to_owned()
}

pub(crate) fn default_ike_lifetime() -> String {
    crate::duration::format_go_duration(sluice_ike::policy::DEFAULT_IKE_LIFETIME.as_secs())
}

pub(crate) fn default_esp_lifetime() -> String {
    crate::duration::format_go_duration(sluice_ike::policy::DEFAULT_ESP_LIFETIME.as_secs())
}

fn default_dpd_delay() -> String {
    crate::duration::format_go_duration(sluice_ike::policy::DEFAULT_DPD_DELAY.as_secs())
}

fn default_dpd_timeout() -> String {
    crate::duration::format_go_duration(sluice_ike::policy::DEFAULT_DPD_TIMEOUT.as_secs())
}

pub(crate) fn default_ike_port() -> u16 {
    DEFAULT_IKE_PORT
}

pub(crate) fn default_natt_port() -> u16 {
    DEFAULT_NATT_PORT
}

/// Reference to the key of a Secret (same namespace) holding the L2TP tunnel secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct TunnelSecretRef {
    /// Name of the Secret.
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "default_tunnel_secret_key")]
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub key: String,
}

fn default_l2tp_port() -> u16 {
    DEFAULT_L2TP_PORT
}

fn default_l2tp_encryption() -> Encryption {
    Encryption::Deny
}

fn default_hello_interval() -> String {
    DEFAULT_HELLO_INTERVAL.to_owned()
}

fn default_tunnel_secret_key() -> String {
    DEFAULT_TUNNEL_SECRET_KEY.to_owned()
}

pub(crate) fn default_true() -> bool {
    true
}

fn default_port() -> u16 {
    DEFAULT_PPTP_PORT
}

pub(crate) fn default_authentication() -> Vec<AuthenticationMethod> {
    vec![AuthenticationMethod::Mschapv2]
}

/// A PPP authentication method.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthenticationMethod {
    // Password Authentication Protocol (RFC 1334): cleartext.
    Pap,
    // CHAP with MD5 (RFC 1994).
    Chap,
    // MS-CHAP v1 (RFC 2433).
    Mschapv1,
    // MS-CHAP v2 (RFC 2759); the only method that yields strong MPPE keys.
    Mschapv2,
}

impl AuthenticationMethod {
    /// Whether this method derives MPPE keys (RFC 3079).
    pub fn is_mschap(self) -> bool {
        matches!(self, Self::Mschapv1 | Self::Mschapv2)
    }
}

/// MPPE policy (MikroTik's `use-encryption`).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    // Never negotiate MPPE.
    Deny,
    // Do not ask for MPPE, accept it when the peer asks.
    Allow,
    // Ask for MPPE, fall back to none when the peer refuses.
    Prefer,
    // MPPE or no session.
    #[default]
    Require,
}

/// MPPE settings (RFC 3078).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MppeSpec {
    /// Accepted key lengths in bits (40, 56, 128); the strongest both sides accept is used.
    #[serde(default = "default_key_lengths")]
    #[schemars(length(min = 1, max = 3))]
    #[x_kube(
        validation = Rule::new("self.all(k, k == 40 || k == 56 || k == 128)")
            .message("mppe.keyLengths may only contain 40, 56 and 128")
    )]
    pub key_lengths: Vec<u32>,
    /// Stateful MPPE: `refuse` (stateless only), `allow` (when the client asks for it) or
    /// `prefer` (ask for it; stateless when the client insists).
    #[serde(default)]
    pub stateful: StatefulMppe,
}

impl Default for MppeSpec {
    fn default() -> Self {
        Self {
            key_lengths: default_key_lengths(),
            stateful: StatefulMppe::default(),
        }
    }
}

/// Stateful MPPE policy (RFC 3078 §2). Stateless mode (a new key every packet) is always
/// acceptable; stateful mode is cheaper per packet but loses packets until the next re-key
/// after any loss.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatefulMppe {
    // Plain comments, not doc comments: documented variants become a non-structural `oneOf`.
    // Stateless only.
    Refuse,
    // Agree to stateful when the client asks for it.
    #[default]
    Allow,
    // Ask for stateful; stateless when the client insists (pppd's `mppe-stateful` only goes
    // stateful when the server asks).
    Prefer,
}

fn default_key_lengths() -> Vec<u32> {
    vec![128]
}

/// PPP link and address settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "!isIP(self.localAddress) || !isCIDR(self.addressPool) || \
         !(ip(self.localAddress) == cidr(self.addressPool).masked().ip())"
    )
    .message("spec.ppp.localAddress must not be the network address of spec.ppp.addressPool"),
    validation = Rule::new(
        "!has(self.staticAddresses) || !isCIDR(self.addressPool) || \
         self.staticAddresses.all(c, !isCIDR(c) || \
           (!cidr(self.addressPool).containsCIDR(c) && !cidr(c).containsCIDR(self.addressPool)))"
    )
    .message("spec.ppp.staticAddresses must not overlap spec.ppp.addressPool")
)]
pub struct PppSpec {
    /// Maximum transmit unit (576..=1436).
    #[serde(default = "default_mtu")]
    #[schemars(range(min = MIN_MTU, max = MAX_MTU))]
    pub mtu: u32,
    /// Maximum receive unit (576..=1436).
    #[serde(default = "default_mtu")]
    #[schemars(range(min = MIN_MTU, max = MAX_MTU))]
    pub mru: u32,
    /// Silence before LCP echoes start, as a Go duration (`30s`, `1m30s`; `0s` disables; at most `1h`).
    #[serde(default = "default_keepalive")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(
            "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) <= duration('1h')"
        )
        .message("spec.ppp.keepaliveTimeout must be a duration of at most 1h, such as 30s or 1m30s")
    )]
    pub keepalive_timeout: String,
    /// The gateway's own IPv4 address inside the tunnel.
    #[schemars(length(max = 15))]
    #[x_kube(
        validation = Rule::new("isIP(self) && ip(self).family() == 4")
            .message("spec.ppp.localAddress must be an IPv4 address")
    )]
    pub local_address: String,
    /// Dynamic IPv4 address pool (CIDR, /30 or larger).
    #[schemars(length(max = 18))]
    #[x_kube(
        validation = Rule::new(
            "isCIDR(self) && cidr(self).ip().family() == 4 && cidr(self).prefixLength() <= 30"
        )
        .message("spec.ppp.addressPool must be an IPv4 CIDR of /30 or larger, such as 10.200.0.0/24")
    )]
    pub address_pool: String,
    /// DNS servers offered to clients (at most two IPv4 addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2), inner(length(max = 15)))]
    #[x_kube(
        validation = Rule::new("self.all(a, isIP(a) && ip(a).family() == 4)")
            .message("spec.ppp.dnsServers must be IPv4 addresses")
    )]
    pub dns_servers: Vec<String>,
    /// IPv4 CIDRs outside the pool where users' static addresses may live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_LIST_ITEMS), inner(length(max = 18)))]
    #[x_kube(
        validation = Rule::new("self.all(c, isCIDR(c) && cidr(c).ip().family() == 4)")
            .message("spec.ppp.staticAddresses must be IPv4 CIDRs")
    )]
    pub static_addresses: Vec<String>,
}

pub(crate) fn default_mtu() -> u32 {
    DEFAULT_MTU
}

pub(crate) fn default_keepalive() -> String {
    DEFAULT_KEEPALIVE.to_owned()
}

/// NAT settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatSpec {
    /// Masquerade traffic from the pool toward the node's egress.
    #[serde(default)]
    pub masquerade: bool,
}

/// `spec.metrics`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// Export per-user series (`sluice_user_sessions_active`, `sluice_user_bytes_total`,
    /// labelled by user name): one series per user who connected, so the cardinality is
    /// the number of users. Off by default.
    #[serde(default)]
    pub per_user: bool,
}

/// Observed state of a `VpnGateway` (filled by the operator).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpnGatewayStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Data-plane pods that exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Data-plane pods that are ready (have applied a configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Data-plane pods whose agent reported draining: they refuse new sessions, keep the
    /// ones they have, and exit once empty or at `spec.drainTimeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draining_replicas: Option<i32>,
    /// Label selector of the data-plane pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Node addresses clients dial: ExternalIP of ready pods' nodes, else InternalIP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// Live sessions across all pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionCounts>,
    /// Version (content hash) of the configuration compiled for this gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<String>,
    /// What a firewall in front of the nodes must let through for the enabled protocols.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewall: Vec<FirewallRule>,
    /// `Ready`, `Progressing` and `Degraded`, each with a reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Live session counts.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionCounts {
    /// All sessions.
    pub total: u32,
    /// PPTP sessions.
    #[serde(default)]
    pub pptp: u32,
    /// L2TP sessions.
    #[serde(default)]
    pub l2tp: u32,
}

/// One inbound flow a firewall must allow to the gateway's nodes.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirewallRule {
    /// IP protocol: `tcp`, `udp`, `gre` (47) or `esp` (50).
    pub protocol: String,
    /// Destination port (TCP and UDP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// What the flow carries.
    pub purpose: String,
}

impl VpnGatewaySpec {
    /// `spec.drainTimeout` in whole seconds (the default when it does not parse; compiling
    /// the gateway reports that).
    pub fn drain_timeout_seconds(&self) -> u64 {
        seconds_up_to_a_day(&self.drain_timeout, 3600)
    }

    /// Names of the Secrets (in the gateway's namespace) the gateway itself reads: the L2TP
    /// tunnel secret, the IPsec pre-shared key, certificate and client CAs. A change to one
    /// of them must recompile it.
    pub fn secret_names(&self) -> Vec<&str> {
        let l2tp = &self.l2tp;
        let mut names: Vec<&str> = l2tp
            .tunnel_secret_ref
            .iter()
            .map(|r| r.name.as_str())
            .chain(
                l2tp.ipsec
                    .pre_shared_key_secret_ref
                    .iter()
                    .map(|r| r.name.as_str()),
            )
            .chain(
                l2tp.ipsec
                    .certificate_secret_ref
                    .iter()
                    .map(|r| r.name.as_str()),
            )
            .chain(
                l2tp.ipsec
                    .client_ca_secret_ref
                    .iter()
                    .map(|r| r.name.as_str()),
            )
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The inbound flows the enabled protocols need (RFC 2637 §1.3: TCP 1723 and GRE;
    /// RFC 2661 §8.1: UDP 1701; RFC 3193 §4 and RFC 3948: UDP 500, UDP 4500 and ESP).
    ///
    /// With IPsec, L2TP travels inside ESP, so UDP 1701 is listed only when
    /// `allowUnencrypted` accepts plain L2TP; ESP (IP protocol 50) is left out with
    /// `natDetection: forceEncapsulation`, where every client sends ESP in UDP.
    pub fn firewall_rules(&self) -> Vec<FirewallRule> {
        let mut rules = Vec::new();
        if self.pptp.enabled {
            rules.push(FirewallRule {
                protocol: "tcp".into(),
                port: Some(self.pptp.port),
                purpose: "PPTP control connection".into(),
            });
            rules.push(FirewallRule {
                protocol: "gre".into(),
                port: None,
                purpose: "PPTP data (IP protocol 47, both directions)".into(),
            });
        }
        if self.l2tp.enabled && self.l2tp.allow_unencrypted {
            rules.push(FirewallRule {
                protocol: "udp".into(),
                port: Some(self.l2tp.port),
                purpose: "L2TP control and data".into(),
            });
        }
        if self.l2tp.ipsec_enabled() {
            let ipsec = &self.l2tp.ipsec;
            rules.push(FirewallRule {
                protocol: "udp".into(),
                port: Some(ipsec.ike_port),
                purpose: "IPsec key exchange (IKE)".into(),
            });
            rules.push(FirewallRule {
                protocol: "udp".into(),
                port: Some(ipsec.natt_port),
                purpose: "IKE and ESP through NAT (NAT-T)".into(),
            });
            if ipsec.nat_detection != NatDetection::ForceEncapsulation {
                rules.push(FirewallRule {
                    protocol: "esp".into(),
                    port: None,
                    purpose: "IPsec ESP carrying L2TP (IP protocol 50, both directions)".into(),
                });
            }
        }
        rules
    }
}
