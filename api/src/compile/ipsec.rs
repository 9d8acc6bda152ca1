//! `spec.l2tp.ipsec` → `IpsecSettings`: the pre-shared key or certificates, proposals in the
//! engine's grammar, lifetimes, DPD and ports.

use k8s_openapi::api::core::v1::Secret;
use sluice_ike::policy::{EspProposal, IkeProposal, MAX_PROPOSALS, ProposalError};
use sluice_proto::v1::{IpsecSettings, NatDetection as WireNatDetection};

use super::{
    Errors, MAX_PRE_SHARED_KEY_BYTES, MIN_PRE_SHARED_KEY_BYTES, SizedSecret, seconds_between,
    sized_secret,
};
use crate::gateway::{IpsecSpec, NatDetection, PreSharedKeySecretRef, VpnGatewaySpec};
use crate::wire::{esp_proposal_to_wire, ike_proposal_to_wire};

/// Checks `spec.l2tp.ipsec` of an enabled L2TP service and builds its settings; `None` when
/// neither a pre-shared key nor a certificate is configured (IPsec off, the other fields
/// unused and not checked).
pub(super) fn ipsec_settings(
    errs: &mut Errors,
    spec: &VpnGatewaySpec,
    ns: &str,
    secrets: &[Secret],
) -> Option<IpsecSettings> {
    const P: &str = "spec.l2tp.ipsec";
    let ipsec: &IpsecSpec = &spec.l2tp.ipsec;
    if ipsec.pre_shared_key_secret_ref.is_none() && ipsec.certificate_secret_ref.is_none() {
        return None;
    }
    let (certificate_chain, private_key, client_ca) =
        certificate_settings(errs, ipsec, ns, secrets);

    let pre_shared_key = ipsec
        .pre_shared_key_secret_ref
        .as_ref()
        .map(|r| pre_shared_key(errs, &format!("{P}.preSharedKeySecretRef"), ns, secrets, r))
        .unwrap_or_default();

    const MD5_HINT: &str = "set spec.l2tp.ipsec.allowMd5 to accept it";
    let ike_proposals = proposals(
        errs,
        &format!("{P}.ikeProposals"),
        &ipsec.ike_proposals,
        MD5_HINT,
        |p| IkeProposal::parse(p, ipsec.allow_md5).map(|p| ike_proposal_to_wire(&p)),
    );
    let esp_proposals = proposals(
        errs,
        &format!("{P}.espProposals"),
        &ipsec.esp_proposals,
        MD5_HINT,
        |p| EspProposal::parse(p, ipsec.allow_md5).map(|p| esp_proposal_to_wire(&p)),
    );

    let ike_lifetime = seconds_between(
        errs,
        &format!("{P}.ikeLifetime"),
        &ipsec.ike_lifetime,
        60,
        24 * 3600,
    );
    let esp_lifetime = seconds_between(
        errs,
        &format!("{P}.espLifetime"),
        &ipsec.esp_lifetime,
        60,
        8 * 3600,
    );
    let dpd_delay = seconds_between(errs, &format!("{P}.dpd.delay"), &ipsec.dpd.delay, 0, 3600);
    let dpd_timeout = seconds_between(
        errs,
        &format!("{P}.dpd.timeout"),
        &ipsec.dpd.timeout,
        1,
        3600,
    );
    if let (Some(delay), Some(timeout)) = (dpd_delay, dpd_timeout)
        && timeout <= delay
    {
        errs.push(
            format!("{P}.dpd.timeout"),
            format!(
                "{:?} must be longer than {P}.dpd.delay ({:?})",
                ipsec.dpd.timeout, ipsec.dpd.delay
            ),
        );
    }

    // Ports: each UDP port serves one protocol.
    let mut taken: Vec<(u16, &str)> = vec![(spec.l2tp.port, "spec.l2tp.port")];
    if spec.pptp.enabled {
        taken.push((spec.pptp.port, "spec.pptp.port"));
    }
    for (field, port) in [
        ("spec.l2tp.ipsec.ikePort", ipsec.ike_port),
        ("spec.l2tp.ipsec.nattPort", ipsec.natt_port),
    ] {
        if port == 0 {
            errs.push(field, "must be between 1 and 65535");
            continue;
        }
        if let Some((_, other)) = taken.iter().find(|(p, _)| *p == port) {
            errs.push(field, format!("{port} is also {other}"));
        }
        taken.push((port, field));
    }

    Some(IpsecSettings {
        pre_shared_key,
        ike_proposals,
        esp_proposals,
        ike_lifetime_seconds: ike_lifetime.unwrap_or(0),
        esp_lifetime_seconds: esp_lifetime.unwrap_or(0),
        esp_lifetime_kilobytes: ipsec.esp_lifetime_kilobytes,
        nat_detection: nat_detection(ipsec.nat_detection) as i32,
        dpd_delay_seconds: dpd_delay.unwrap_or(0),
        dpd_timeout_seconds: dpd_timeout.unwrap_or(0),
        ike_port: u32::from(ipsec.ike_port),
        natt_port: u32::from(ipsec.natt_port),
        allow_md5: ipsec.allow_md5,
        allow_aggressive_mode: ipsec.allow_aggressive_mode,
        certificate_chain,
        private_key,
        client_ca,
    })
}

/// Reads a pre-shared key: 8 to 256 bytes. Errors never show the value.
pub(super) fn pre_shared_key(
    errs: &mut Errors,
    field: &str,
    ns: &str,
    secrets: &[Secret],
    r: &PreSharedKeySecretRef,
) -> Vec<u8> {
    let key = (r.name.as_str(), r.key.as_str());
    let label = Some("pre-shared key");
    let s = sized_secret(
        errs,
        field,
        ns,
        secrets,
        key,
        label,
        MAX_PRE_SHARED_KEY_BYTES,
    );
    let Some(SizedSecret { value, what, sound }) = s else {
        return Vec::new();
    };
    if sound && value.len() < MIN_PRE_SHARED_KEY_BYTES {
        errs.push(
            field,
            format!(
                "{what} is {} bytes long, at least {MIN_PRE_SHARED_KEY_BYTES} are needed: \
                 anyone who poses as the other end once can test guesses of a pre-shared \
                 key offline, so use a long random one",
                value.len()
            ),
        );
    }
    value
}

/// Largest PEM value (certificate chain, key or CA bundle) taken from a Secret.
const MAX_PEM_BYTES: usize = 64 * 1024;

/// PEM blocks a certificate chain or CA bundle must have.
pub(super) const CERTIFICATE_PEM: &[&str] = &["-----BEGIN CERTIFICATE-----"];
/// PEM blocks a private key may have.
pub(super) const KEY_PEM: &[&str] = &[
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----",
];

/// Reads a PEM value of bounded size holding one of `markers`. The data plane parses and
/// checks it (chain, key match) on load.
pub(super) fn pem_value(
    errs: &mut Errors,
    field: &str,
    ns: &str,
    secrets: &[Secret],
    name: &str,
    key: &str,
    markers: &[&str],
) -> Vec<u8> {
    let s = sized_secret(errs, field, ns, secrets, (name, key), None, MAX_PEM_BYTES);
    let Some(SizedSecret { value, what, sound }) = s else {
        return Vec::new();
    };
    if sound
        && let Some(first) = markers.first()
        && !markers
            .iter()
            .any(|m| value.windows(m.len()).any(|w| w == m.as_bytes()))
    {
        errs.push(field, format!("{what} is not PEM (no {first:?} block)"));
    }
    value
}

/// `certificateSecretRef` (`tls.crt`, `tls.key`) and `clientCaSecretRef`: present together,
/// PEM of bounded size. The data plane parses and checks them (chain, key match) on load.
fn certificate_settings(
    errs: &mut Errors,
    ipsec: &IpsecSpec,
    ns: &str,
    secrets: &[Secret],
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    const P: &str = "spec.l2tp.ipsec";
    match (&ipsec.certificate_secret_ref, &ipsec.client_ca_secret_ref) {
        (None, None) => (Vec::new(), Vec::new(), Vec::new()),
        (Some(c), Some(ca)) => {
            let f = format!("{P}.certificateSecretRef");
            let chain = pem_value(errs, &f, ns, secrets, &c.name, "tls.crt", CERTIFICATE_PEM);
            let key = pem_value(errs, &f, ns, secrets, &c.name, "tls.key", KEY_PEM);
            let f = format!("{P}.clientCaSecretRef");
            let bundle = pem_value(errs, &f, ns, secrets, &ca.name, &ca.key, CERTIFICATE_PEM);
            (chain, key, bundle)
        }
        (Some(_), None) => {
            errs.push(
                format!("{P}.clientCaSecretRef"),
                "is required with certificateSecretRef: the CAs that client certificates must \
                 chain to",
            );
            (Vec::new(), Vec::new(), Vec::new())
        }
        (None, Some(_)) => {
            errs.push(
                format!("{P}.certificateSecretRef"),
                "is required with clientCaSecretRef: the gateway's own certificate and key",
            );
            (Vec::new(), Vec::new(), Vec::new())
        }
    }
}

/// Parses a proposal list under `field` with the engine's grammar (`sluice_ike::policy`);
/// `md5_hint` follows the error of a refused MD5 proposal.
pub(super) fn proposals<T>(
    errs: &mut Errors,
    field: &str,
    list: &[String],
    md5_hint: &str,
    parse: impl Fn(&str) -> Result<T, ProposalError>,
) -> Vec<T> {
    if list.len() > MAX_PROPOSALS {
        errs.push(
            field,
            format!(
                "lists {} proposals, at most {MAX_PROPOSALS} are allowed",
                list.len()
            ),
        );
        return Vec::new();
    }
    let mut seen: Vec<String> = Vec::with_capacity(list.len());
    let mut out = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let lower = p.to_ascii_lowercase();
        let at = format!("{field}[{i}]");
        match (parse(p), seen.iter().position(|q| *q == lower)) {
            (Err(ProposalError::Md5), _) => {
                errs.push(at, format!("{}; {md5_hint}", ProposalError::Md5))
            }
            (Err(why), _) => errs.push(at, why.to_string()),
            (Ok(_), Some(j)) => errs.push(at, format!("repeats {field}[{j}]")),
            (Ok(parsed), None) => out.push(parsed),
        }
        seen.push(lower);
    }
    out
}

fn nat_detection(n: NatDetection) -> WireNatDetection {
    match n {
        NatDetection::Honest => WireNatDetection::Honest,
        NatDetection::Parrot => WireNatDetection::Parrot,
        NatDetection::ForceEncapsulation => WireNatDetection::ForceEncapsulation,
    }
}
