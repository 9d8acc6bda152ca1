//! `spec.l2tp` and `spec.l2tp.ipsec`: defaults, field errors, the pre-shared key and certificates, firewall rules.

use super::*;

#[test]
fn l2tp_is_off_by_default_and_defaults_are_explicit() {
    let c = compile_yaml(DEFAULTS).unwrap();
    let l2tp = c.l2tp.as_ref().unwrap();
    assert!(!l2tp.enabled);
    assert_eq!(l2tp.port, 1701);
    assert!(l2tp.tunnel_secret.is_empty());
    let m = load(DEFAULTS);
    assert_eq!(m.gateways[0].spec.firewall_rules().len(), 2);
}

const L2TP: &str = "\
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata:
  name: office
spec:
  l2tp:
    enabled: true
    allowUnencrypted: true
    tunnelSecretRef: {name: l2tp-secret}
  ppp:
    localAddress: 10.200.0.1
    addressPool: 10.200.0.0/24
---
apiVersion: v1
kind: Secret
metadata:
  name: l2tp-secret
stringData:
  secret: TUNNEL-SECRET
";

#[test]
fn l2tp_enabled_compiles_with_secret_and_defaults() {
    let c = compile_yaml(L2TP).unwrap();
    let l2tp = c.l2tp.as_ref().unwrap();
    assert!(l2tp.enabled && l2tp.allow_unencrypted);
    assert_eq!(l2tp.port, 1701);
    assert_eq!(l2tp.authentication, [AuthMethod::MschapV2 as i32]);
    assert_eq!(l2tp.encryption, EncryptionPolicy::Deny as i32);
    assert_eq!(l2tp.tunnel_secret, b"TUNNEL-SECRET");
    assert_eq!(l2tp.hello_interval_seconds, 60);
    let shown = format!("{:?}", redacted(&c));
    assert!(!shown.contains("TUNNEL-SECRET"), "{shown}");
    assert!(
        !shown.contains(&format!("{:?}", b"TUNNEL-SECRET")),
        "{shown}"
    );
    let rules = load(L2TP).gateways[0].spec.firewall_rules();
    assert!(
        rules
            .iter()
            .any(|r| r.protocol == "udp" && r.port == Some(1701)),
        "{rules:?}"
    );
}

#[test]
fn l2tp_field_errors() {
    type Edit = Box<dyn FnOnce(&mut sluice_api::VpnGatewaySpec)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|s| s.l2tp.allow_unencrypted = false),
            "spec.l2tp.ipsec.preSharedKeySecretRef is required (or spec.l2tp.ipsec.certificateSecretRef): L2TP is served only inside IPsec unless spec.l2tp.allowUnencrypted is set (L2TP alone encrypts nothing)",
        ),
        (
            Box::new(|s| s.l2tp.port = 0),
            "spec.l2tp.port must be between 1 and 65535",
        ),
        (
            Box::new(|s| s.l2tp.hello_interval = "2h".into()),
            "spec.l2tp.helloInterval \"2h\" is longer than 1h",
        ),
        (
            Box::new(|s| s.l2tp.authentication.clear()),
            "spec.l2tp.authentication must list at least one method",
        ),
        (
            Box::new(|s| {
                s.l2tp.authentication = vec![AuthenticationMethod::Chap];
                s.l2tp.encryption = Encryption::Require;
            }),
            "spec.l2tp.encryption require needs mschapv1 or mschapv2 in spec.l2tp.authentication (MPPE keys come from MS-CHAP)",
        ),
        (
            Box::new(|s| {
                if let Some(r) = &mut s.l2tp.tunnel_secret_ref {
                    r.name = "nope".into();
                }
            }),
            "spec.l2tp.tunnelSecretRef Secret \"nope\" not found",
        ),
        (
            Box::new(|s| {
                if let Some(r) = &mut s.l2tp.tunnel_secret_ref {
                    r.key = "other".into();
                }
            }),
            "spec.l2tp.tunnelSecretRef Secret \"l2tp-secret\" has no key \"other\"",
        ),
    ];
    for (edit, want) in cases {
        let mut m = load(L2TP);
        edit(&mut m.gateways[0].spec);
        assert_eq!(compile_errors(&m), [format!("VpnGateway/office: {want}")]);
    }
    // A disabled L2TP section is not checked.
    let mut m = load(L2TP);
    m.gateways[0].spec.l2tp.enabled = false;
    m.gateways[0].spec.l2tp.allow_unencrypted = false;
    assert!(compile_from_manifests(&m, None).is_ok());
}

#[test]
fn l2tp_without_ipsec_has_no_ipsec_settings_and_ignores_them() {
    let c = compile_yaml(L2TP).unwrap();
    assert_eq!(c.l2tp.unwrap().ipsec, None);
    // Without a pre-shared key the ipsec fields are unused and not checked.
    let mut m = load(L2TP);
    let ipsec = &mut m.gateways[0].spec.l2tp.ipsec;
    ipsec.ike_proposals = vec!["nonsense".into()];
    ipsec.ike_port = 1701;
    ipsec.ike_lifetime = "1y".into();
    assert_eq!(
        compile_from_manifests(&m, None)
            .unwrap()
            .l2tp
            .unwrap()
            .ipsec,
        None
    );
    // A disabled L2TP section is not checked, with or without IPsec.
    let mut m = load(L2TP_IPSEC);
    m.gateways[0].spec.l2tp.enabled = false;
    m.secrets.clear();
    let c = compile_from_manifests(&m, None).unwrap();
    assert_eq!(c.l2tp.unwrap().ipsec, None);
}

const L2TP_IPSEC: &str = "\
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata:
  name: office
spec:
  l2tp:
    enabled: true
    ipsec:
      preSharedKeySecretRef: {name: vpn-psk}
  ppp:
    localAddress: 10.200.0.1
    addressPool: 10.200.0.0/24
---
apiVersion: v1
kind: Secret
metadata:
  name: vpn-psk
stringData:
  psk: PRE-SHARED-KEY-123
";

#[test]
fn ipsec_compiles_with_psk_and_explicit_defaults() {
    let c = compile_yaml(L2TP_IPSEC).unwrap();
    let l2tp = c.l2tp.as_ref().unwrap();
    assert!(l2tp.enabled && !l2tp.allow_unencrypted);
    let ipsec = l2tp.ipsec.as_ref().unwrap();
    assert_eq!(
        *ipsec,
        IpsecSettings {
            pre_shared_key: b"PRE-SHARED-KEY-123".to_vec(),
            ike_proposals: vec![],
            esp_proposals: vec![],
            ike_lifetime_seconds: 8 * 3600,
            esp_lifetime_seconds: 3600,
            esp_lifetime_kilobytes: 0,
            nat_detection: NatDetection::Honest as i32,
            dpd_delay_seconds: 30,
            dpd_timeout_seconds: 150,
            ike_port: 500,
            natt_port: 4500,
            allow_md5: false,
            allow_aggressive_mode: false,
            certificate_chain: vec![],
            private_key: vec![],
            client_ca: vec![],
        }
    );
    // The pre-shared key changes the version, like every other input.
    let other =
        compile_yaml(&L2TP_IPSEC.replace("PRE-SHARED-KEY-123", "PRE-SHARED-KEY-456")).unwrap();
    assert_ne!(c.version, other.version);
}

#[test]
fn ipsec_fields_reach_the_config() {
    let yaml = L2TP_IPSEC.replace(
        "      preSharedKeySecretRef: {name: vpn-psk}\n",
        "      preSharedKeySecretRef: {name: vpn-psk, key: other}\n\
         \x20     ikeProposals: [AES256-SHA256-MODP2048, aes128-aes256-sha1-modp2048-modp1024]\n\
         \x20     espProposals: [aes256gcm16, aes128-sha1, aes256-sha256-modp2048]\n\
         \x20     ikeLifetime: 2h30m\n\
         \x20     espLifetime: 45m\n\
         \x20     espLifetimeKilobytes: 4000000\n\
         \x20     natDetection: forceEncapsulation\n\
         \x20     dpd: {delay: 0s, timeout: 2m}\n\
         \x20     allowMd5: true\n\
         \x20     allowAggressiveMode: true\n\
         \x20     ikePort: 5000\n\
         \x20     nattPort: 5001\n",
    ) + "  other: base64-or-not-this-is-long-enough\n";
    let c = compile_yaml(&yaml).unwrap();
    let ipsec = c.l2tp.unwrap().ipsec.unwrap();
    assert_eq!(ipsec.pre_shared_key, b"base64-or-not-this-is-long-enough");
    assert_eq!(
        ike_text(&ipsec.ike_proposals),
        [
            "aes256-sha256-modp2048",
            "aes128-aes256-sha1-modp2048-modp1024"
        ]
    );
    assert_eq!(
        esp_text(&ipsec.esp_proposals),
        ["aes256gcm16", "aes128-sha1", "aes256-sha256-modp2048"]
    );
    assert_eq!(
        (ipsec.ike_lifetime_seconds, ipsec.esp_lifetime_seconds),
        (9000, 2700)
    );
    assert_eq!(ipsec.esp_lifetime_kilobytes, 4_000_000);
    assert_eq!(ipsec.nat_detection(), NatDetection::ForceEncapsulation);
    assert_eq!(
        (ipsec.dpd_delay_seconds, ipsec.dpd_timeout_seconds),
        (0, 120)
    );
    assert!(ipsec.allow_md5);
    assert!(ipsec.allow_aggressive_mode);
    assert_eq!((ipsec.ike_port, ipsec.natt_port), (5000, 5001));
    for (mode, want) in [
        ("parrot", NatDetection::Parrot),
        ("honest", NatDetection::Honest),
    ] {
        let c = compile_yaml(&yaml.replace("forceEncapsulation", mode)).unwrap();
        assert_eq!(c.l2tp.unwrap().ipsec.unwrap().nat_detection(), want);
    }
}

#[test]
fn psk_from_secret_data_and_allow_unencrypted_together() {
    let mut m = load(L2TP_IPSEC);
    let s = &mut m.secrets[0];
    s.string_data = None;
    s.data = Some(
        [(
            "psk".to_owned(),
            k8s_openapi::ByteString(b"\x00\xffbinary-key".to_vec()),
        )]
        .into_iter()
        .collect(),
    );
    m.gateways[0].spec.l2tp.allow_unencrypted = true;
    let c = compile_from_manifests(&m, None).unwrap();
    let l2tp = c.l2tp.unwrap();
    // Both: IPsec is offered, and plain L2TP is accepted too.
    assert!(l2tp.allow_unencrypted);
    assert_eq!(l2tp.ipsec.unwrap().pre_shared_key, b"\x00\xffbinary-key");
}

#[test]
fn psk_never_appears_in_redacted_config_or_errors() {
    let c = compile_yaml(L2TP_IPSEC).unwrap();
    let shown = format!("{:?}", redacted(&c));
    assert!(!shown.contains("PRE-SHARED-KEY-123"), "{shown}");
    assert!(
        !shown.contains(&format!("{:?}", b"PRE-SHARED-KEY-123")),
        "{shown}"
    );
    assert_eq!(
        redacted(&c).l2tp.unwrap().ipsec.unwrap().pre_shared_key,
        Vec::<u8>::new()
    );
    // The rest of the IPsec settings survive redaction.
    assert_eq!(redacted(&c).l2tp.unwrap().ipsec.unwrap().ike_port, 500);
    // Rejected keys are described by length, never shown.
    for bad in ["SHORTK", &"LONG-SECRET-".repeat(30)] {
        let err = compile_yaml(&L2TP_IPSEC.replace("PRE-SHARED-KEY-123", bad)).unwrap_err();
        assert!(!err.to_string().contains(&bad[..6]), "{err}");
        assert!(!format!("{err:?}").contains(&bad[..6]), "{err:?}");
    }
}

#[test]
fn psk_errors() {
    type Edit = Box<dyn FnOnce(&mut Manifests)>;
    let set = |v: &[u8]| -> Edit {
        let v = String::from_utf8(v.to_vec()).unwrap();
        Box::new(move |m: &mut Manifests| {
            m.secrets[0].string_data = Some([("psk".to_owned(), v)].into_iter().collect());
        })
    };
    let cases: Vec<(Edit, &str)> = vec![
        (
            set(b""),
            "spec.l2tp.ipsec.preSharedKeySecretRef pre-shared key in Secret \"vpn-psk\" key \"psk\" is empty",
        ),
        (
            set(b"1234567"),
            "spec.l2tp.ipsec.preSharedKeySecretRef pre-shared key in Secret \"vpn-psk\" key \"psk\" is 7 bytes long, at least 8 are needed: anyone who poses as the other end once can test guesses of a pre-shared key offline, so use a long random one",
        ),
        (
            set(&[b'k'; 257]),
            "spec.l2tp.ipsec.preSharedKeySecretRef pre-shared key in Secret \"vpn-psk\" key \"psk\" is 257 bytes long, at most 256 are allowed",
        ),
        (
            Box::new(|m| m.secrets.clear()),
            "spec.l2tp.ipsec.preSharedKeySecretRef Secret \"vpn-psk\" not found",
        ),
        (
            Box::new(|m| m.secrets[0].metadata.namespace = Some("elsewhere".into())),
            "spec.l2tp.ipsec.preSharedKeySecretRef Secret \"vpn-psk\" not found",
        ),
        (
            Box::new(|m| {
                if let Some(r) = &mut m.gateways[0].spec.l2tp.ipsec.pre_shared_key_secret_ref {
                    r.key = "key".into();
                }
            }),
            "spec.l2tp.ipsec.preSharedKeySecretRef Secret \"vpn-psk\" has no key \"key\"",
        ),
        (
            Box::new(|m| m.gateways[0].spec.l2tp.ipsec.pre_shared_key_secret_ref = None),
            "spec.l2tp.ipsec.preSharedKeySecretRef is required (or spec.l2tp.ipsec.certificateSecretRef): L2TP is served only inside IPsec unless spec.l2tp.allowUnencrypted is set (L2TP alone encrypts nothing)",
        ),
    ];
    for (edit, want) in cases {
        let mut m = load(L2TP_IPSEC);
        edit(&mut m);
        assert_eq!(compile_errors(&m), [format!("VpnGateway/office: {want}")]);
    }
    // The limits themselves are accepted.
    for len in [8, 256] {
        let mut m = load(L2TP_IPSEC);
        set(&vec![b'k'; len])(&mut m);
        let c = compile_from_manifests(&m, None).unwrap();
        assert_eq!(c.l2tp.unwrap().ipsec.unwrap().pre_shared_key.len(), len);
    }
}

#[test]
fn ipsec_field_errors() {
    type Edit = Box<dyn FnOnce(&mut sluice_api::VpnGatewaySpec)>;
    let ike = |v: &[&str]| -> Edit {
        let v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
        Box::new(move |s| s.l2tp.ipsec.ike_proposals = v)
    };
    let esp = |v: &[&str]| -> Edit {
        let v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
        Box::new(move |s| s.l2tp.ipsec.esp_proposals = v)
    };
    let cases: Vec<(Edit, &str)> = vec![
        (
            ike(&["aes256-sha256-modp2048", "aes512-sha1-modp2048"]),
            "spec.l2tp.ipsec.ikeProposals[1] unknown algorithm \"aes512\" (IKE proposals accept aes128 aes192 aes256 3des md5 sha1 sha256 sha384 sha512 modp1024 modp1536 modp2048 modp3072 modp4096 ecp256 ecp384)",
        ),
        (
            ike(&["aes128gcm16-sha256-modp2048"]),
            "spec.l2tp.ipsec.ikeProposals[0] unknown algorithm \"aes128gcm16\" (AES-GCM is an ESP algorithm; IKEv1 has no AEAD ciphers)",
        ),
        (
            ike(&["aes128-sha1"]),
            "spec.l2tp.ipsec.ikeProposals[0] has no DH group (one of modp1024, modp1536, modp2048, modp3072, modp4096, ecp256, ecp384)",
        ),
        (
            ike(&["aes128-modp2048"]),
            "spec.l2tp.ipsec.ikeProposals[0] has no integrity algorithm (one of md5, sha1, sha256, sha384, sha512)",
        ),
        (
            ike(&["sha1-modp2048"]),
            "spec.l2tp.ipsec.ikeProposals[0] has no encryption algorithm (one of aes128, aes192, aes256, 3des)",
        ),
        (
            ike(&["aes128-md5-modp1024"]),
            "spec.l2tp.ipsec.ikeProposals[0] uses md5, which is refused: MD5 is broken (practical collisions); set spec.l2tp.ipsec.allowMd5 to accept it",
        ),
        (
            ike(&["aes128-sha1-modp2048", "AES128-SHA1-MODP2048"]),
            "spec.l2tp.ipsec.ikeProposals[1] repeats spec.l2tp.ipsec.ikeProposals[0]",
        ),
        (ike(&[""]), "spec.l2tp.ipsec.ikeProposals[0] is empty"),
        (
            ike(&["aes128-sha1-modp2048"; 17]),
            "spec.l2tp.ipsec.ikeProposals lists 17 proposals, at most 16 are allowed",
        ),
        (
            esp(&["aes128gcm16-sha1"]),
            "spec.l2tp.ipsec.espProposals[0] lists an integrity algorithm with only AES-GCM ciphers: GCM authenticates by itself, so GCM-only proposals take none",
        ),
        (
            esp(&["aes256gcm16", "aes128"]),
            "spec.l2tp.ipsec.espProposals[1] has no integrity algorithm (one of md5, sha1, sha256, sha384, sha512), which non-GCM ciphers need",
        ),
        (
            esp(&["aes128-md5"]),
            "spec.l2tp.ipsec.espProposals[0] uses md5, which is refused: MD5 is broken (practical collisions); set spec.l2tp.ipsec.allowMd5 to accept it",
        ),
        (
            esp(&["aes128-sha1-sha1"]),
            "spec.l2tp.ipsec.espProposals[0] lists sha1 twice",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.ike_lifetime = "59s".into()),
            "spec.l2tp.ipsec.ikeLifetime \"59s\" is shorter than 1m",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.ike_lifetime = "24h1s".into()),
            "spec.l2tp.ipsec.ikeLifetime \"24h1s\" is longer than 24h",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.esp_lifetime = "59s".into()),
            "spec.l2tp.ipsec.espLifetime \"59s\" is shorter than 1m",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.esp_lifetime = "9h".into()),
            "spec.l2tp.ipsec.espLifetime \"9h\" is longer than 8h",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.esp_lifetime = "1.5h".into()),
            "", // 5400 s: fractions are fine when they come to whole seconds
        ),
        (
            Box::new(|s| s.l2tp.ipsec.dpd.delay = "1h1m".into()),
            "spec.l2tp.ipsec.dpd.delay \"1h1m\" is longer than 1h",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.dpd.delay = "2.5s".into()),
            "spec.l2tp.ipsec.dpd.delay \"2.5s\" must be a whole number of seconds",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.dpd.timeout = "30s".into()),
            "spec.l2tp.ipsec.dpd.timeout \"30s\" must be longer than spec.l2tp.ipsec.dpd.delay (\"30s\")",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.dpd.timeout = "0s".into()),
            "spec.l2tp.ipsec.dpd.timeout \"0s\" is shorter than 1s",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.dpd.timeout = "soon".into()),
            "spec.l2tp.ipsec.dpd.timeout \"soon\" expects a number before each unit (expected a duration such as 30s or 1m30s)",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.ike_port = 0),
            "spec.l2tp.ipsec.ikePort must be between 1 and 65535",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.natt_port = 0),
            "spec.l2tp.ipsec.nattPort must be between 1 and 65535",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.natt_port = 500),
            "spec.l2tp.ipsec.nattPort 500 is also spec.l2tp.ipsec.ikePort",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.ike_port = 1701),
            "spec.l2tp.ipsec.ikePort 1701 is also spec.l2tp.port",
        ),
        (
            Box::new(|s| s.l2tp.port = 4500),
            "spec.l2tp.ipsec.nattPort 4500 is also spec.l2tp.port",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.natt_port = 1723),
            "spec.l2tp.ipsec.nattPort 1723 is also spec.pptp.port",
        ),
        (
            Box::new(|s| {
                s.pptp.enabled = false;
                s.l2tp.ipsec.natt_port = 1723;
            }),
            "", // a disabled PPTP's port is free
        ),
    ];
    for (edit, want) in cases {
        let mut m = load(L2TP_IPSEC);
        edit(&mut m.gateways[0].spec);
        if want.is_empty() {
            compile_from_manifests(&m, None).unwrap();
        } else {
            assert_eq!(compile_errors(&m), [format!("VpnGateway/office: {want}")]);
        }
    }
    // allowMd5 accepts MD5 in both lists.
    let mut m = load(L2TP_IPSEC);
    let ipsec = &mut m.gateways[0].spec.l2tp.ipsec;
    ipsec.allow_md5 = true;
    ipsec.ike_proposals = vec!["3des-md5-modp1024".into()];
    ipsec.esp_proposals = vec!["3des-md5".into()];
    let c = compile_from_manifests(&m, None).unwrap();
    assert!(c.l2tp.unwrap().ipsec.unwrap().allow_md5);
    // Every problem is reported, not just the first.
    let mut m = load(L2TP_IPSEC);
    let ipsec = &mut m.gateways[0].spec.l2tp.ipsec;
    ipsec.ike_proposals = vec!["x".into()];
    ipsec.esp_proposals = vec!["y".into()];
    ipsec.ike_lifetime = "30s".into();
    ipsec.natt_port = 500;
    assert_eq!(compile_errors(&m).len(), 4);
}

#[test]
fn ipsec_firewall_rules() {
    let fw = |edit: &dyn Fn(&mut sluice_api::VpnGatewaySpec)| {
        let mut m = load(L2TP_IPSEC);
        edit(&mut m.gateways[0].spec);
        m.gateways[0]
            .spec
            .firewall_rules()
            .into_iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r.protocol,
                    r.port.map(|p| p.to_string()).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
    };
    // IPsec only: L2TP (UDP 1701) travels inside ESP.
    assert_eq!(
        fw(&|_| {}),
        ["tcp/1723", "gre/", "udp/500", "udp/4500", "esp/"]
    );
    // allowUnencrypted adds plain L2TP.
    assert_eq!(
        fw(&|s| s.l2tp.allow_unencrypted = true),
        [
            "tcp/1723", "gre/", "udp/1701", "udp/500", "udp/4500", "esp/"
        ]
    );
    // forceEncapsulation: every client sends ESP in UDP, no IP protocol 50.
    assert_eq!(
        fw(&|s| {
            s.pptp.enabled = false;
            s.l2tp.ipsec.nat_detection = NatDetectionSpec::ForceEncapsulation;
            s.l2tp.ipsec.ike_port = 10500;
            s.l2tp.ipsec.natt_port = 14500;
        }),
        ["udp/10500", "udp/14500"]
    );
    assert_eq!(
        fw(&|s| s.l2tp.ipsec.nat_detection = NatDetectionSpec::Parrot),
        ["tcp/1723", "gre/", "udp/500", "udp/4500", "esp/"]
    );
    // Without a pre-shared key there is no IPsec to let in; L2TP off: nothing.
    assert_eq!(
        fw(&|s| {
            s.l2tp.allow_unencrypted = true;
            s.l2tp.ipsec.pre_shared_key_secret_ref = None;
        }),
        ["tcp/1723", "gre/", "udp/1701"]
    );
    assert_eq!(fw(&|s| s.l2tp.enabled = false), ["tcp/1723", "gre/"]);
}

#[test]
fn secret_names_list_what_the_gateway_reads() {
    let mut m = load(L2TP_IPSEC);
    assert_eq!(m.gateways[0].spec.secret_names(), ["vpn-psk"]);
    m.gateways[0].spec.l2tp.tunnel_secret_ref = Some(sluice_api::TunnelSecretRef {
        name: "l2tp-secret".into(),
        key: "secret".into(),
    });
    assert_eq!(
        m.gateways[0].spec.secret_names(),
        ["l2tp-secret", "vpn-psk"]
    );
    m.gateways[0].spec.l2tp.tunnel_secret_ref = Some(sluice_api::TunnelSecretRef {
        name: "vpn-psk".into(),
        key: "secret".into(),
    });
    assert_eq!(m.gateways[0].spec.secret_names(), ["vpn-psk"]);
    assert!(load(DEFAULTS).gateways[0].spec.secret_names().is_empty());
}

const CERT_SECRET: &str = "\
---
apiVersion: v1
kind: Secret
metadata:
  name: vpn-cert
type: kubernetes.io/tls
stringData:
  tls.crt: \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"
  tls.key: \"-----BEGIN PRIVATE KEY-----\\nSECRETKEYBYTES\\n-----END PRIVATE KEY-----\\n\"
  ca.crt: \"-----BEGIN CERTIFICATE-----\\nMIIC\\n-----END CERTIFICATE-----\\n\"
";

#[test]
fn ipsec_certificates_reach_the_config_and_the_key_is_redacted() {
    // Certificates alone are enough to serve L2TP/IPsec.
    let yaml = L2TP_IPSEC.replace(
        "      preSharedKeySecretRef: {name: vpn-psk}\n",
        "      certificateSecretRef: {name: vpn-cert}\n      clientCaSecretRef: {name: vpn-cert}\n",
    ) + CERT_SECRET;
    let c = compile_yaml(&yaml).unwrap();
    let ipsec = c.l2tp.as_ref().unwrap().ipsec.as_ref().unwrap();
    assert!(ipsec.pre_shared_key.is_empty());
    assert!(
        ipsec
            .certificate_chain
            .starts_with(b"-----BEGIN CERTIFICATE-----")
    );
    assert!(ipsec.client_ca.ends_with(b"-----END CERTIFICATE-----\n"));
    assert!(!ipsec.private_key.is_empty());
    let shown = redacted(&c).l2tp.unwrap().ipsec.unwrap();
    assert!(shown.private_key.is_empty());
    assert!(!format!("{:?}", redacted(&c)).contains("SECRETKEYBYTES"));
}

#[test]
fn ipsec_certificate_errors_name_the_field() {
    let only_cert = L2TP_IPSEC.replace(
        "      preSharedKeySecretRef: {name: vpn-psk}\n",
        "      certificateSecretRef: {name: vpn-cert}\n",
    ) + CERT_SECRET;
    let err = compile_yaml(&only_cert).unwrap_err().to_string();
    assert!(
        err.contains("spec.l2tp.ipsec.clientCaSecretRef") && err.contains("required"),
        "{err}"
    );
    let missing = L2TP_IPSEC.replace(
        "      preSharedKeySecretRef: {name: vpn-psk}\n",
        "      certificateSecretRef: {name: nope}\n      clientCaSecretRef: {name: vpn-cert}\n",
    ) + CERT_SECRET;
    let err = compile_yaml(&missing).unwrap_err().to_string();
    assert!(
        err.contains("spec.l2tp.ipsec.certificateSecretRef") && err.contains("\"nope\" not found"),
        "{err}"
    );
    let not_pem = (L2TP_IPSEC.replace(
        "      preSharedKeySecretRef: {name: vpn-psk}\n",
        "      certificateSecretRef: {name: vpn-cert}\n      clientCaSecretRef: {name: vpn-cert}\n",
    ) + CERT_SECRET)
        .replace("BEGIN PRIVATE KEY", "BEGIN NOTHING");
    let err = compile_yaml(&not_pem).unwrap_err().to_string();
    assert!(
        err.contains("spec.l2tp.ipsec.certificateSecretRef") && err.contains("tls.key"),
        "{err}"
    );
    assert!(!err.contains("SECRETKEYBYTES"), "{err}");
}
