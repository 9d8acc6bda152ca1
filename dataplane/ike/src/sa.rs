//! Security Association, Proposal and Transform payloads (RFC 2408 §3.4–3.6) and their
//! data attributes (§3.3), with the IKE (RFC 2409 Appendix A) and IPsec DOI (RFC 2407 §4.5)
//! interpretations.

use crate::cipher::{AesKeyLen, Cipher};
use crate::dh::Group;
use crate::error::WireError;
use crate::payload::{ChainBuilder, be16, be32, kind, parse_chain};
use crate::prf::HashAlg;

/// Most proposals accepted in one SA payload.
pub const MAX_PROPOSALS: usize = 32;
/// Most transforms accepted in one proposal.
pub const MAX_TRANSFORMS: usize = 64;
/// Most attributes accepted in one transform.
pub const MAX_ATTRIBUTES: usize = 24;
/// Longest variable-length attribute value accepted.
pub const MAX_ATTRIBUTE_LEN: usize = 16;

/// DOI value of the IPsec DOI (RFC 2407 §4.2).
pub const DOI_IPSEC: u32 = 1;
/// SIT_IDENTITY_ONLY (RFC 2407 §4.2.1).
pub const SIT_IDENTITY_ONLY: u32 = 1;

/// Protocol IDs (RFC 2407 §4.4.1).
pub mod protocol {
    /// PROTO_ISAKMP.
    pub const ISAKMP: u8 = 1;
    /// PROTO_IPSEC_AH.
    pub const AH: u8 = 2;
    /// PROTO_IPSEC_ESP.
    pub const ESP: u8 = 3;
    /// PROTO_IPCOMP.
    pub const IPCOMP: u8 = 4;
}

/// A data attribute value: TV (AF=1, 16-bit) or TLV (§3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// Basic (TV) attribute.
    Basic(u16),
    /// Variable-length (TLV) attribute.
    Variable(Vec<u8>),
}

impl AttrValue {
    /// The value as an integer (variable values up to 8 octets, big-endian), saturated to u64.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            AttrValue::Basic(v) => Some(u64::from(*v)),
            AttrValue::Variable(b) if b.len() <= 8 && !b.is_empty() => {
                Some(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
            }
            AttrValue::Variable(_) => None,
        }
    }
}

/// One data attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute type (without the AF bit).
    pub kind: u16,
    /// Its value.
    pub value: AttrValue,
}

/// A transform payload (§3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// Transform #.
    pub number: u8,
    /// Transform ID.
    pub id: u8,
    /// SA attributes.
    pub attributes: Vec<Attribute>,
}

/// A proposal payload (§3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal #.
    pub number: u8,
    /// Protocol ID.
    pub protocol: u8,
    /// SPI (0 or 16 octets for ISAKMP, 4 for ESP).
    pub spi: Vec<u8>,
    /// Transforms, in the sender's order of preference.
    pub transforms: Vec<Transform>,
}

/// An SA payload body (§3.4) under the IPsec DOI with SIT_IDENTITY_ONLY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaPayload {
    /// Proposals, in the sender's order of preference.
    pub proposals: Vec<Proposal>,
}

impl SaPayload {
    /// Parses an SA payload body.
    pub fn parse(body: &[u8]) -> Result<SaPayload, WireError> {
        let doi = be32(body, 0).ok_or(WireError::Malformed("SA"))?;
        let situation = be32(body, 4).ok_or(WireError::Malformed("SA"))?;
        // Only SIT_IDENTITY_ONLY is defined without extra fields we would have to parse
        // (RFC 2407 §4.2: SIT_SECRECY / SIT_INTEGRITY add labelled domains).
        if doi != DOI_IPSEC || situation != SIT_IDENTITY_ONLY {
            return Err(WireError::Malformed("SA (DOI or situation)"));
        }
        let rest = body.get(8..).ok_or(WireError::Malformed("SA"))?;
        let chain = parse_chain(kind::PROPOSAL, rest)?;
        if chain.len() > MAX_PROPOSALS {
            return Err(WireError::TooMany("proposals"));
        }
        let mut proposals = Vec::with_capacity(chain.len());
        for p in chain {
            if p.kind != kind::PROPOSAL {
                return Err(WireError::Malformed("SA (non-proposal payload)"));
            }
            proposals.push(parse_proposal(p.body)?);
        }
        if proposals.is_empty() {
            return Err(WireError::Malformed("SA (no proposal)"));
        }
        Ok(SaPayload { proposals })
    }

    /// The SA payload body with these proposals.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&DOI_IPSEC.to_be_bytes());
        out.extend_from_slice(&SIT_IDENTITY_ONLY.to_be_bytes());
        let mut chain = ChainBuilder::new();
        for p in &self.proposals {
            chain.push(kind::PROPOSAL, &emit_proposal(p));
        }
        out.extend_from_slice(chain.bytes());
        out
    }
}

fn parse_proposal(body: &[u8]) -> Result<Proposal, WireError> {
    let (&[number, protocol, spi_size, count], rest) = body
        .split_first_chunk::<4>()
        .ok_or(WireError::Malformed("proposal"))?;
    let spi = rest
        .get(..usize::from(spi_size))
        .ok_or(WireError::Malformed("proposal (SPI)"))?
        .to_vec();
    let rest = rest.get(usize::from(spi_size)..).unwrap_or_default();
    let chain = parse_chain(kind::TRANSFORM, rest)?;
    if chain.len() > MAX_TRANSFORMS {
        return Err(WireError::TooMany("transforms"));
    }
    if chain.len() != usize::from(count) || chain.is_empty() {
        return Err(WireError::Malformed("proposal (# of transforms)"));
    }
    let mut transforms = Vec::with_capacity(chain.len());
    for t in chain {
        if t.kind != kind::TRANSFORM {
            return Err(WireError::Malformed("proposal (non-transform payload)"));
        }
        transforms.push(parse_transform(t.body)?);
    }
    Ok(Proposal {
        number,
        protocol,
        spi,
        transforms,
    })
}

fn parse_transform(body: &[u8]) -> Result<Transform, WireError> {
    let (&[number, id, _, _], mut rest) = body
        .split_first_chunk::<4>()
        .ok_or(WireError::Malformed("transform"))?;
    let mut attributes = Vec::new();
    while !rest.is_empty() {
        if attributes.len() == MAX_ATTRIBUTES {
            return Err(WireError::TooMany("attributes"));
        }
        let t = be16(rest, 0).ok_or(WireError::Malformed("attribute"))?;
        let v = be16(rest, 2).ok_or(WireError::Malformed("attribute"))?;
        if t & 0x8000 != 0 {
            attributes.push(Attribute {
                kind: t & 0x7fff,
                value: AttrValue::Basic(v),
            });
            rest = rest.get(4..).unwrap_or_default();
        } else {
            let len = usize::from(v);
            if len > MAX_ATTRIBUTE_LEN {
                return Err(WireError::Malformed("attribute (too long)"));
            }
            let value = rest
                .get(4..4 + len)
                .ok_or(WireError::Malformed("attribute"))?;
            attributes.push(Attribute {
                kind: t,
                value: AttrValue::Variable(value.to_vec()),
            });
            rest = rest.get(4 + len..).unwrap_or_default();
        }
    }
    Ok(Transform {
        number,
        id,
        attributes,
    })
}

fn emit_proposal(p: &Proposal) -> Vec<u8> {
    let mut out = vec![
        p.number,
        p.protocol,
        u8::try_from(p.spi.len()).unwrap_or(0),
        u8::try_from(p.transforms.len()).unwrap_or(0),
    ];
    out.extend_from_slice(&p.spi);
    let mut chain = ChainBuilder::new();
    for t in &p.transforms {
        let mut body = vec![t.number, t.id, 0, 0];
        encode_attributes(&t.attributes, &mut body);
        chain.push(kind::TRANSFORM, &body);
    }
    out.extend_from_slice(chain.bytes());
    out
}

/// Appends data attributes in TV (AF=1) or TLV form (RFC 2408 §3.3).
pub fn encode_attributes(attrs: &[Attribute], out: &mut Vec<u8>) {
    for a in attrs {
        match &a.value {
            AttrValue::Basic(v) => {
                out.extend_from_slice(&(a.kind | 0x8000).to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            AttrValue::Variable(v) => {
                out.extend_from_slice(&a.kind.to_be_bytes());
                out.extend_from_slice(&u16::try_from(v.len()).unwrap_or(0).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }
}

/// The IPsec DOI's SA Life Type / SA Life Duration attributes (RFC 2407 §4.5 classes 1–2), as
/// RESPONDER-LIFETIME carries them (§4.6.3.1).
pub fn esp_lifetime_attributes(l: Lifetime) -> Vec<Attribute> {
    let mut attrs = Vec::new();
    push_lifetime(&mut attrs, l, 1, 2);
    attrs
}

/// A lifetime (Life Type / Life Duration pairs, RFC 2409 Appendix A classes 11–12 and
/// RFC 2407 §4.5 classes 1–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetime {
    /// Seconds, if given.
    pub seconds: Option<u64>,
    /// Kilobytes, if given.
    pub kilobytes: Option<u64>,
}

/// Phase 1 authentication methods (RFC 2409 Appendix A class 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// 1: pre-shared key.
    PreSharedKey,
    /// 3: RSA signatures.
    RsaSignature,
}

impl AuthMethod {
    /// Name as strongSwan's `authby` spells it.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::PreSharedKey => "psk",
            AuthMethod::RsaSignature => "rsasig",
        }
    }

    /// Attribute value.
    pub fn id(self) -> u16 {
        match self {
            AuthMethod::PreSharedKey => 1,
            AuthMethod::RsaSignature => 3,
        }
    }
}

/// A Phase 1 (KEY_IKE) transform with every attribute understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeTransform {
    /// Encryption algorithm.
    pub cipher: Cipher,
    /// Hash (and PRF).
    pub hash: HashAlg,
    /// Authentication method.
    pub auth: AuthMethod,
    /// Diffie-Hellman group.
    pub group: Group,
    /// Proposed lifetime.
    pub lifetime: Lifetime,
}

/// Why a transform was not understood: unknown algorithm, missing mandatory attribute, …
/// (the transform is skipped, not the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unsupported transform: {0}")]
pub struct Unsupported(pub &'static str);

/// KEY_IKE transform ID (RFC 2409 Appendix A).
pub const KEY_IKE: u8 = 1;

impl IkeTransform {
    /// Interprets a KEY_IKE transform (RFC 2409 Appendix A).
    pub fn from_transform(t: &Transform) -> Result<IkeTransform, Unsupported> {
        if t.id != KEY_IKE {
            return Err(Unsupported("transform ID is not KEY_IKE"));
        }
        let (mut enc, mut hash, mut auth, mut group, mut key_len) = (None, None, None, None, None);
        let lifetime = lifetime(&t.attributes, 11, 12)?;
        for a in &t.attributes {
            let v = a.value.as_u64();
            match a.kind {
                1 => enc = v,
                2 => hash = v,
                3 => auth = v,
                4 => group = v,
                14 => key_len = v,
                11 | 12 => {}
                // Group Type/Prime/Generator/Curve (5–10) define a private group, PRF (13)
                // and Field Size (15) are unused by every client: refuse the transform.
                _ => return Err(Unsupported("attribute")),
            }
        }
        let small = |v: Option<u64>| v.and_then(|v| u16::try_from(v).ok());
        let cipher = match small(enc) {
            Some(7) => Cipher::AesCbc(
                small(key_len)
                    .and_then(AesKeyLen::from_bits)
                    .ok_or(Unsupported("AES key length"))?,
            ),
            Some(5) if key_len.is_none() => Cipher::TripleDesCbc,
            _ => return Err(Unsupported("encryption algorithm")),
        };
        let hash = small(hash)
            .and_then(HashAlg::from_id)
            .ok_or(Unsupported("hash"))?;
        let auth = match small(auth) {
            Some(1) => AuthMethod::PreSharedKey,
            Some(3) => AuthMethod::RsaSignature,
            _ => return Err(Unsupported("authentication method")),
        };
        let group = small(group)
            .and_then(Group::from_id)
            .ok_or(Unsupported("group"))?;
        Ok(IkeTransform {
            cipher,
            hash,
            auth,
            group,
            lifetime,
        })
    }

    /// The transform payload announcing this choice (attributes in RFC order).
    pub fn to_transform(&self, number: u8, lifetime: Lifetime) -> Transform {
        let mut attributes = vec![Attribute {
            kind: 1,
            value: AttrValue::Basic(self.cipher.id()),
        }];
        if let Cipher::AesCbc(k) = self.cipher {
            attributes.push(Attribute {
                kind: 14,
                value: AttrValue::Basic(k.bits()),
            });
        }
        attributes.push(Attribute {
            kind: 2,
            value: AttrValue::Basic(self.hash.id()),
        });
        attributes.push(Attribute {
            kind: 3,
            value: AttrValue::Basic(self.auth.id()),
        });
        attributes.push(Attribute {
            kind: 4,
            value: AttrValue::Basic(self.group.id()),
        });
        push_lifetime(&mut attributes, lifetime, 11, 12);
        Transform {
            number,
            id: KEY_IKE,
            attributes,
        }
    }
}

/// ESP encryption transforms (RFC 2407 §4.4.4, RFC 3602, RFC 4106).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EspCipher {
    /// ESP_AES (12), CBC.
    AesCbc(AesKeyLen),
    /// ESP_3DES (3).
    TripleDesCbc,
    /// ESP_AES-GCM with a 16-octet ICV (20).
    AesGcm16(AesKeyLen),
}

impl From<Cipher> for EspCipher {
    /// The same CBC cipher in ESP.
    fn from(c: Cipher) -> EspCipher {
        match c {
            Cipher::AesCbc(k) => EspCipher::AesCbc(k),
            Cipher::TripleDesCbc => EspCipher::TripleDesCbc,
        }
    }
}

impl EspCipher {
    /// The same cipher in Phase 1, if it has one there (IKEv1 has no AEAD ciphers).
    pub fn phase1(self) -> Option<Cipher> {
        match self {
            EspCipher::AesCbc(k) => Some(Cipher::AesCbc(k)),
            EspCipher::TripleDesCbc => Some(Cipher::TripleDesCbc),
            EspCipher::AesGcm16(_) => None,
        }
    }

    /// Transform ID.
    pub fn id(self) -> u8 {
        match self {
            EspCipher::AesCbc(_) => 12,
            EspCipher::TripleDesCbc => 3,
            EspCipher::AesGcm16(_) => 20,
        }
    }

    /// The AES key length, if the cipher has the Key Length attribute.
    pub fn key_len(self) -> Option<AesKeyLen> {
        match self {
            EspCipher::AesCbc(k) | EspCipher::AesGcm16(k) => Some(k),
            EspCipher::TripleDesCbc => None,
        }
    }

    /// Name as strongSwan spells it in ESP proposals.
    pub fn name(self) -> &'static str {
        match self {
            EspCipher::AesCbc(AesKeyLen::Aes128) => "aes128",
            EspCipher::AesCbc(AesKeyLen::Aes192) => "aes192",
            EspCipher::AesCbc(AesKeyLen::Aes256) => "aes256",
            EspCipher::TripleDesCbc => "3des",
            EspCipher::AesGcm16(AesKeyLen::Aes128) => "aes128gcm16",
            EspCipher::AesGcm16(AesKeyLen::Aes192) => "aes192gcm16",
            EspCipher::AesGcm16(AesKeyLen::Aes256) => "aes256gcm16",
        }
    }

    /// Whether the cipher is an AEAD (no separate integrity algorithm).
    pub fn is_aead(self) -> bool {
        matches!(self, EspCipher::AesGcm16(_))
    }

    /// Encryption key octets in KEYMAT (GCM: key + 4-octet salt, RFC 4106 §8.1).
    pub fn keymat_len(self) -> usize {
        match self {
            EspCipher::AesCbc(k) => usize::from(k.bits() / 8),
            EspCipher::TripleDesCbc => 24,
            EspCipher::AesGcm16(k) => usize::from(k.bits() / 8) + 4,
        }
    }
}

/// ESP authentication algorithms (RFC 2407 §4.5 class 5; RFC 4868 for SHA-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EspAuth {
    /// 1: HMAC-MD5-96 (only when a manifest allows MD5).
    HmacMd5,
    /// 2: HMAC-SHA1-96.
    HmacSha1,
    /// 5: HMAC-SHA-256-128.
    HmacSha256,
    /// 6: HMAC-SHA-384-192.
    HmacSha384,
    /// 7: HMAC-SHA-512-256.
    HmacSha512,
}

impl EspAuth {
    /// The HMAC over `hash` (the proposal grammar names both with the hash's word).
    pub fn with_hash(hash: HashAlg) -> EspAuth {
        match hash {
            HashAlg::Md5 => EspAuth::HmacMd5,
            HashAlg::Sha1 => EspAuth::HmacSha1,
            HashAlg::Sha256 => EspAuth::HmacSha256,
            HashAlg::Sha384 => EspAuth::HmacSha384,
            HashAlg::Sha512 => EspAuth::HmacSha512,
        }
    }

    /// The hash its HMAC is built on.
    pub fn hash(self) -> HashAlg {
        match self {
            EspAuth::HmacMd5 => HashAlg::Md5,
            EspAuth::HmacSha1 => HashAlg::Sha1,
            EspAuth::HmacSha256 => HashAlg::Sha256,
            EspAuth::HmacSha384 => HashAlg::Sha384,
            EspAuth::HmacSha512 => HashAlg::Sha512,
        }
    }

    /// Name as strongSwan spells it in ESP proposals.
    pub fn name(self) -> &'static str {
        match self {
            EspAuth::HmacMd5 => "md5",
            EspAuth::HmacSha1 => "sha1",
            EspAuth::HmacSha256 => "sha256",
            EspAuth::HmacSha384 => "sha384",
            EspAuth::HmacSha512 => "sha512",
        }
    }

    /// Attribute value.
    pub fn id(self) -> u16 {
        match self {
            EspAuth::HmacMd5 => 1,
            EspAuth::HmacSha1 => 2,
            EspAuth::HmacSha256 => 5,
            EspAuth::HmacSha384 => 6,
            EspAuth::HmacSha512 => 7,
        }
    }

    /// Key octets in KEYMAT.
    pub fn keymat_len(self) -> usize {
        match self {
            EspAuth::HmacMd5 => 16,
            EspAuth::HmacSha1 => 20,
            EspAuth::HmacSha256 => 32,
            EspAuth::HmacSha384 => 48,
            EspAuth::HmacSha512 => 64,
        }
    }
}

/// Encapsulation Mode (RFC 2407 §4.5 class 4, RFC 3947 §5.3, drafts 00–03: 61443/61444).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncapMode {
    /// 1.
    Tunnel,
    /// 2.
    Transport,
    /// 3 (or 61443).
    UdpTunnel,
    /// 4 (or 61444).
    UdpTransport,
}

/// An ESP transform with every attribute understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspTransform {
    /// Encryption.
    pub cipher: EspCipher,
    /// Integrity, absent for AEAD ciphers.
    pub auth: Option<EspAuth>,
    /// Encapsulation mode.
    pub mode: EncapMode,
    /// The encapsulation mode value as sent (to echo it back: 4 vs 61444).
    pub mode_value: u16,
    /// PFS group.
    pub group: Option<Group>,
    /// Proposed lifetime.
    pub lifetime: Lifetime,
}

impl EspTransform {
    /// Interprets an ESP transform (RFC 2407 §4.5).
    pub fn from_transform(t: &Transform) -> Result<EspTransform, Unsupported> {
        let (mut auth, mut mode, mut group, mut key_len) = (None, None, None, None);
        let lifetime = lifetime(&t.attributes, 1, 2)?;
        for a in &t.attributes {
            let v = a.value.as_u64().and_then(|v| u16::try_from(v).ok());
            match a.kind {
                1 | 2 => {}
                3 => group = Some(v.ok_or(Unsupported("group"))?),
                4 => mode = Some(v.ok_or(Unsupported("encapsulation mode"))?),
                5 => auth = Some(v.ok_or(Unsupported("authentication algorithm"))?),
                6 => key_len = Some(v.ok_or(Unsupported("key length"))?),
                _ => return Err(Unsupported("attribute")),
            }
        }
        let aes = || {
            key_len
                .and_then(AesKeyLen::from_bits)
                .ok_or(Unsupported("AES key length"))
        };
        let cipher = match t.id {
            12 => EspCipher::AesCbc(aes()?),
            20 => EspCipher::AesGcm16(aes()?),
            3 if key_len.is_none() => EspCipher::TripleDesCbc,
            _ => return Err(Unsupported("ESP transform")),
        };
        let auth = match (cipher.is_aead(), auth) {
            (true, None) => None,
            (true, Some(_)) => return Err(Unsupported("integrity with an AEAD cipher")),
            (false, Some(1)) => Some(EspAuth::HmacMd5),
            (false, Some(2)) => Some(EspAuth::HmacSha1),
            (false, Some(5)) => Some(EspAuth::HmacSha256),
            (false, Some(6)) => Some(EspAuth::HmacSha384),
            (false, Some(7)) => Some(EspAuth::HmacSha512),
            (false, _) => return Err(Unsupported("authentication algorithm")),
        };
        let mode_value = mode.unwrap_or(1);
        let mode = match mode_value {
            1 => EncapMode::Tunnel,
            2 => EncapMode::Transport,
            3 | 61443 => EncapMode::UdpTunnel,
            4 | 61444 => EncapMode::UdpTransport,
            _ => return Err(Unsupported("encapsulation mode")),
        };
        let group = match group {
            None => None,
            Some(g) => Some(Group::from_id(g).ok_or(Unsupported("PFS group"))?),
        };
        Ok(EspTransform {
            cipher,
            auth,
            mode,
            mode_value,
            group,
            lifetime,
        })
    }

    /// The transform payload announcing this choice.
    pub fn to_transform(&self, number: u8, lifetime: Lifetime) -> Transform {
        let mut attributes = Vec::new();
        push_lifetime(&mut attributes, lifetime, 1, 2);
        if let Some(g) = self.group {
            attributes.push(Attribute {
                kind: 3,
                value: AttrValue::Basic(g.id()),
            });
        }
        attributes.push(Attribute {
            kind: 4,
            value: AttrValue::Basic(self.mode_value),
        });
        if let Some(a) = self.auth {
            attributes.push(Attribute {
                kind: 5,
                value: AttrValue::Basic(a.id()),
            });
        }
        if let Some(k) = self.cipher.key_len() {
            attributes.push(Attribute {
                kind: 6,
                value: AttrValue::Basic(k.bits()),
            });
        }
        Transform {
            number,
            id: self.cipher.id(),
            attributes,
        }
    }

    /// KEYMAT octets one SA needs: encryption key then integrity key (RFC 2409 §5.5).
    pub fn keymat_len(&self) -> usize {
        self.cipher.keymat_len() + self.auth.map_or(0, EspAuth::keymat_len)
    }
}

/// Reads Life Type / Life Duration pairs (each duration follows its type).
/// The Life Type / Life Duration pairs of a transform. A duration of 0 reads as none given:
/// strongSwan proposes 0 when told not to rekey (`rekey=no`), meaning no limit of its own, and
/// the responder's lifetime then applies (taken literally, the SA would expire at once).
fn lifetime(attrs: &[Attribute], type_kind: u16, dur_kind: u16) -> Result<Lifetime, Unsupported> {
    let mut out = Lifetime::default();
    let mut current = None;
    for a in attrs {
        if a.kind == type_kind {
            current = a.value.as_u64();
        } else if a.kind == dur_kind {
            let d = a.value.as_u64().ok_or(Unsupported("life duration"))?;
            match current.take() {
                Some(1) => out.seconds = (d > 0).then_some(d),
                Some(2) => out.kilobytes = (d > 0).then_some(d),
                _ => return Err(Unsupported("life duration without a known life type")),
            }
        }
    }
    Ok(out)
}

fn push_lifetime(attrs: &mut Vec<Attribute>, l: Lifetime, type_kind: u16, dur_kind: u16) {
    let dur = |v: u64| match u16::try_from(v) {
        Ok(v) => AttrValue::Basic(v),
        Err(_) => AttrValue::Variable(u32::try_from(v).unwrap_or(u32::MAX).to_be_bytes().to_vec()),
    };
    if let Some(s) = l.seconds {
        attrs.push(Attribute {
            kind: type_kind,
            value: AttrValue::Basic(1),
        });
        attrs.push(Attribute {
            kind: dur_kind,
            value: dur(s),
        });
    }
    if let Some(k) = l.kilobytes {
        attrs.push(Attribute {
            kind: type_kind,
            value: AttrValue::Basic(2),
        });
        attrs.push(Attribute {
            kind: dur_kind,
            value: dur(k),
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ike(cipher: Cipher, hash: HashAlg, group: Group) -> IkeTransform {
        IkeTransform {
            cipher,
            hash,
            auth: AuthMethod::PreSharedKey,
            group,
            lifetime: Lifetime {
                seconds: Some(28800),
                kilobytes: None,
            },
        }
    }

    #[test]
    fn ike_transforms_round_trip() {
        let list = [
            ike(
                Cipher::AesCbc(AesKeyLen::Aes256),
                HashAlg::Sha256,
                Group::Modp2048,
            ),
            ike(Cipher::TripleDesCbc, HashAlg::Sha1, Group::Modp1024),
            ike(
                Cipher::AesCbc(AesKeyLen::Aes128),
                HashAlg::Sha512,
                Group::Ecp384,
            ),
        ];
        let sa = SaPayload {
            proposals: vec![Proposal {
                number: 1,
                protocol: protocol::ISAKMP,
                spi: vec![],
                transforms: list
                    .iter()
                    .enumerate()
                    .map(|(i, t)| t.to_transform(i as u8 + 1, t.lifetime))
                    .collect(),
            }],
        };
        let parsed = SaPayload::parse(&sa.emit()).unwrap();
        assert_eq!(parsed, sa);
        for (t, want) in parsed.proposals[0].transforms.iter().zip(list) {
            assert_eq!(IkeTransform::from_transform(t).unwrap(), want);
        }
    }

    #[test]
    fn esp_transforms_round_trip_and_refusals() {
        let t = EspTransform {
            cipher: EspCipher::AesCbc(AesKeyLen::Aes128),
            auth: Some(EspAuth::HmacSha256),
            mode: EncapMode::UdpTransport,
            mode_value: 61444,
            group: Some(Group::Modp2048),
            lifetime: Lifetime {
                seconds: Some(3600),
                kilobytes: Some(250_000),
            },
        };
        let wire = t.to_transform(1, t.lifetime);
        assert_eq!(EspTransform::from_transform(&wire).unwrap(), t);
        assert_eq!(t.keymat_len(), 16 + 32);
        let gcm = EspTransform {
            cipher: EspCipher::AesGcm16(AesKeyLen::Aes256),
            auth: None,
            mode: EncapMode::Transport,
            mode_value: 2,
            group: None,
            lifetime: Lifetime::default(),
        };
        assert_eq!(
            EspTransform::from_transform(&gcm.to_transform(2, Lifetime::default())).unwrap(),
            gcm
        );
        assert_eq!(gcm.keymat_len(), 36);
        // CBC without integrity, GCM with integrity, DES: refused.
        let mut bad = wire.clone();
        bad.attributes.retain(|a| a.kind != 5);
        assert!(EspTransform::from_transform(&bad).is_err());
        let mut bad = gcm.to_transform(2, Lifetime::default());
        bad.attributes.push(Attribute {
            kind: 5,
            value: AttrValue::Basic(2),
        });
        assert!(EspTransform::from_transform(&bad).is_err());
        let des = Transform {
            number: 1,
            id: 2,
            attributes: vec![],
        };
        assert!(EspTransform::from_transform(&des).is_err());
    }

    #[test]
    fn a_zero_life_duration_is_no_lifetime() {
        // strongSwan with `rekey=no`: Life Type seconds, Duration 0; kilobytes, 0.
        let zero = |kind| Attribute {
            kind,
            value: AttrValue::Basic(0),
        };
        let mut t = ike(
            Cipher::AesCbc(AesKeyLen::Aes128),
            HashAlg::Sha256,
            Group::Modp2048,
        )
        .to_transform(1, Lifetime::default());
        t.attributes.extend([
            Attribute {
                kind: 11,
                value: AttrValue::Basic(1),
            },
            zero(12),
            Attribute {
                kind: 11,
                value: AttrValue::Basic(2),
            },
            zero(12),
        ]);
        let parsed = IkeTransform::from_transform(&t).unwrap();
        assert_eq!(parsed.lifetime, Lifetime::default());
        let esp = EspTransform {
            cipher: EspCipher::AesGcm16(AesKeyLen::Aes128),
            auth: None,
            mode: EncapMode::Transport,
            mode_value: 2,
            group: None,
            lifetime: Lifetime::default(),
        };
        let mut w = esp.to_transform(1, Lifetime::default());
        w.attributes.extend([
            Attribute {
                kind: 1,
                value: AttrValue::Basic(1),
            },
            zero(2),
        ]);
        assert_eq!(EspTransform::from_transform(&w).unwrap(), esp);
    }

    #[test]
    fn malformed_sa_payloads() {
        let good = SaPayload {
            proposals: vec![Proposal {
                number: 1,
                protocol: protocol::ESP,
                spi: vec![1, 2, 3, 4],
                transforms: vec![Transform {
                    number: 1,
                    id: 12,
                    attributes: vec![],
                }],
            }],
        }
        .emit();
        for n in 0..good.len() {
            assert!(SaPayload::parse(&good[..n]).is_err(), "{n}");
        }
        let mut wrong_doi = good.clone();
        wrong_doi[3] = 2;
        assert!(SaPayload::parse(&wrong_doi).is_err());
        let mut wrong_count = good.clone();
        wrong_count[8 + 4 + 3] = 2;
        assert!(SaPayload::parse(&wrong_count).is_err());
        // An over-long variable attribute.
        let mut t = vec![1, 12, 0, 0, 0, 2, 0, 200];
        t.extend_from_slice(&[0; 200]);
        assert!(parse_transform(&t).is_err());
    }
}
