//! IKEv1 key derivation (RFC 2409 §5, §5.5, Appendix B).

use zeroize::Zeroizing;

use crate::cipher::Cipher;
use crate::prf::HashAlg;

/// Secret bytes, zeroized on drop.
pub type SecretBytes = Zeroizing<Vec<u8>>;

/// How SKEYID is computed (RFC 2409 §5).
#[derive(Clone, Copy)]
pub enum SkeyidInput<'a> {
    /// Pre-shared key: SKEYID = prf(pre-shared-key, Ni_b | Nr_b).
    PreSharedKey(&'a [u8]),
    /// Signatures: SKEYID = prf(Ni_b | Nr_b, g^xy).
    Signature,
}

/// The keying material of an ISAKMP SA.
#[cfg_attr(fuzzing, derive(Clone))]
pub struct Phase1Keys {
    /// The PRF / hash.
    pub hash: HashAlg,
    /// The encryption algorithm.
    pub cipher: Cipher,
    /// SKEYID.
    pub skeyid: SecretBytes,
    /// SKEYID_d: derives Phase 2 KEYMAT.
    pub skeyid_d: SecretBytes,
    /// SKEYID_a: authenticates Phase 2 and Informational messages.
    pub skeyid_a: SecretBytes,
    /// SKEYID_e, from which the encryption key is taken.
    pub skeyid_e: SecretBytes,
    /// The Phase 1 encryption key (Appendix B).
    pub enc_key: SecretBytes,
}

impl std::fmt::Debug for Phase1Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phase1Keys")
            .field("hash", &self.hash)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// Inputs of the Phase 1 derivation.
pub struct Phase1Input<'a> {
    /// Negotiated hash (its HMAC is the PRF).
    pub hash: HashAlg,
    /// Negotiated encryption algorithm.
    pub cipher: Cipher,
    /// Authentication method input.
    pub auth: SkeyidInput<'a>,
    /// Ni_b: the body of the initiator's nonce payload.
    pub ni: &'a [u8],
    /// Nr_b.
    pub nr: &'a [u8],
    /// g^xy.
    pub gxy: &'a [u8],
    /// CKY-I.
    pub cky_i: [u8; 8],
    /// CKY-R.
    pub cky_r: [u8; 8],
}

/// SKEYID, SKEYID_d/a/e and the encryption key (RFC 2409 §5, Appendix B).
pub fn derive_phase1(i: &Phase1Input<'_>) -> Phase1Keys {
    let h = i.hash;
    let skeyid = match i.auth {
        SkeyidInput::PreSharedKey(psk) => h.prf(psk, &[i.ni, i.nr]),
        SkeyidInput::Signature => {
            let mut key = Zeroizing::new(Vec::with_capacity(i.ni.len() + i.nr.len()));
            key.extend_from_slice(i.ni);
            key.extend_from_slice(i.nr);
            h.prf(&key, &[i.gxy])
        }
    };
    let skeyid_d = h.prf(&skeyid, &[i.gxy, &i.cky_i, &i.cky_r, &[0]]);
    let skeyid_a = h.prf(&skeyid, &[&skeyid_d, i.gxy, &i.cky_i, &i.cky_r, &[1]]);
    let skeyid_e = h.prf(&skeyid, &[&skeyid_a, i.gxy, &i.cky_i, &i.cky_r, &[2]]);
    let enc_key = expand_enc_key(h, &skeyid_e, i.cipher.key_len());
    Phase1Keys {
        hash: h,
        cipher: i.cipher,
        skeyid,
        skeyid_d,
        skeyid_a,
        skeyid_e,
        enc_key,
    }
}

/// Appendix B: the key is the first bits of SKEYID_e, or, when SKEYID_e is too short,
/// of Ka = K1 | K2 | … with K1 = prf(SKEYID_e, 0) and Kn = prf(SKEYID_e, Kn-1).
pub fn expand_enc_key(h: HashAlg, skeyid_e: &[u8], len: usize) -> SecretBytes {
    let mut out = Zeroizing::new(Vec::with_capacity(len + h.output_len()));
    if skeyid_e.len() >= len {
        out.extend_from_slice(skeyid_e.get(..len).unwrap_or(skeyid_e));
        return out;
    }
    let mut k = h.prf(skeyid_e, &[&[0]]);
    out.extend_from_slice(&k);
    while out.len() < len {
        k = h.prf(skeyid_e, &[&k]);
        out.extend_from_slice(&k);
    }
    out.truncate(len);
    out
}

/// The first Phase 1 IV: hash(g^xi | g^xr) truncated to the block size (Appendix B).
pub fn phase1_iv(h: HashAlg, cipher: Cipher, gxi: &[u8], gxr: &[u8]) -> Vec<u8> {
    let mut iv = h.hash(&[gxi, gxr]);
    iv.truncate(cipher.block_len());
    iv
}

/// The IV of a Phase 2 or Informational exchange: hash(last Phase 1 CBC block | M-ID)
/// truncated to the block size (Appendix B).
pub fn phase2_iv(h: HashAlg, cipher: Cipher, last_phase1_block: &[u8], message_id: u32) -> Vec<u8> {
    let mut iv = h.hash(&[last_phase1_block, &message_id.to_be_bytes()]);
    iv.truncate(cipher.block_len());
    iv
}

/// HASH_I / HASH_R of Main Mode (§5): `prf(SKEYID, g^x(mine) | g^x(peer) | CKY(mine) |
/// CKY(peer) | SAi_b | ID_b)` where "mine" is the party the hash authenticates.
pub struct AuthHashInput<'a> {
    /// g^xi for HASH_I, g^xr for HASH_R.
    pub gx_self: &'a [u8],
    /// The other party's public value.
    pub gx_peer: &'a [u8],
    /// CKY-I for HASH_I, CKY-R for HASH_R.
    pub cky_self: [u8; 8],
    /// The other cookie.
    pub cky_peer: [u8; 8],
    /// The body of the initiator's SA payload.
    pub sai_b: &'a [u8],
    /// The body of the authenticated party's ID payload.
    pub id_b: &'a [u8],
}

/// HASH_I or HASH_R (RFC 2409 §5).
pub fn auth_hash(h: HashAlg, skeyid: &[u8], i: &AuthHashInput<'_>) -> SecretBytes {
    h.prf(
        skeyid,
        &[
            i.gx_self,
            i.gx_peer,
            &i.cky_self,
            &i.cky_peer,
            i.sai_b,
            i.id_b,
        ],
    )
}

/// Inputs of the Quick Mode KEYMAT derivation shared by both SAs of one exchange.
pub struct KeymatInput<'a> {
    /// The negotiated hash (PRF).
    pub hash: HashAlg,
    /// SKEYID_d.
    pub skeyid_d: &'a [u8],
    /// g(qm)^xy with PFS.
    pub pfs_gxy: Option<&'a [u8]>,
    /// Protocol ID (3 for ESP).
    pub protocol: u8,
    /// Ni_b of the Quick Mode exchange.
    pub ni_b: &'a [u8],
    /// Nr_b of the Quick Mode exchange.
    pub nr_b: &'a [u8],
}

/// Quick Mode KEYMAT for one SA (RFC 2409 §5.5): `prf(SKEYID_d, [g(qm)^xy |] protocol | SPI |
/// Ni_b | Nr_b)`, expanded as K1 | K2 | … with Kn+1 = prf(SKEYID_d, Kn | [g^xy |] protocol |
/// SPI | Ni_b | Nr_b). `spi` is the SPI the receiving end of that SA chose.
pub fn quick_mode_keymat(i: &KeymatInput<'_>, spi: u32, len: usize) -> SecretBytes {
    let h = i.hash;
    let gxy = i.pfs_gxy.unwrap_or(&[]);
    let spi = spi.to_be_bytes();
    let proto = [i.protocol];
    let mut out = Zeroizing::new(Vec::with_capacity(len + h.output_len()));
    let mut k = h.prf(i.skeyid_d, &[gxy, &proto, &spi, i.ni_b, i.nr_b]);
    out.extend_from_slice(&k);
    while out.len() < len {
        k = h.prf(i.skeyid_d, &[&k, gxy, &proto, &spi, i.ni_b, i.nr_b]);
        out.extend_from_slice(&k);
    }
    out.truncate(len);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cipher::AesKeyLen;
    use crate::testutil::hex;

    // Expected values come from tests/vectors/ikev1_kdf.py, an independent Python
    // implementation of RFC 2409 §5 / Appendix B (stdlib hmac + hashlib only).
    include!("../tests/vectors/ikev1_kdf.rs");

    #[test]
    fn psk_sha1_aes128_matches_the_reference() {
        let k = derive_phase1(&Phase1Input {
            hash: HashAlg::Sha1,
            cipher: Cipher::AesCbc(AesKeyLen::Aes128),
            auth: SkeyidInput::PreSharedKey(KDF_PSK),
            ni: &hex(KDF_NI),
            nr: &hex(KDF_NR),
            gxy: &hex(KDF_GXY),
            cky_i: hex(KDF_CKY_I).try_into().unwrap(),
            cky_r: hex(KDF_CKY_R).try_into().unwrap(),
        });
        assert_eq!(*k.skeyid, hex(SHA1_SKEYID));
        assert_eq!(*k.skeyid_d, hex(SHA1_SKEYID_D));
        assert_eq!(*k.skeyid_a, hex(SHA1_SKEYID_A));
        assert_eq!(*k.skeyid_e, hex(SHA1_SKEYID_E));
        assert_eq!(*k.enc_key, hex(SHA1_ENC_KEY_AES128));
    }

    /// Known answers recorded from a real strongSwan 5.9.8 session (Main Mode + Quick Mode,
    /// PSK, SHA-1, AES-128, MODP2048) with its keys logged: tests/vectors/strongswan_log.py.
    mod strongswan {
        use super::*;
        include!("../tests/vectors/strongswan_session.rs");

        #[test]
        fn phase1_keys_iv_and_hash_i_match_strongswan() {
            let (gxi, gxr) = (hex(SS_GXI), hex(SS_GXR));
            let (cky_i, cky_r): ([u8; 8], [u8; 8]) = (
                hex(SS_CKY_I).try_into().unwrap(),
                hex(SS_CKY_R).try_into().unwrap(),
            );
            let k = derive_phase1(&Phase1Input {
                hash: HashAlg::Sha1,
                cipher: Cipher::AesCbc(AesKeyLen::Aes128),
                auth: SkeyidInput::PreSharedKey(&hex(SS_PSK)),
                ni: &hex(SS_NI),
                nr: &hex(SS_NR),
                gxy: &hex(SS_GXY),
                cky_i,
                cky_r,
            });
            assert_eq!(*k.skeyid, hex(SS_SKEYID));
            assert_eq!(*k.skeyid_d, hex(SS_SKEYID_D));
            assert_eq!(*k.skeyid_a, hex(SS_SKEYID_A));
            assert_eq!(*k.skeyid_e, hex(SS_SKEYID_E));
            assert_eq!(*k.enc_key, hex(SS_KA));
            assert_eq!(
                phase1_iv(HashAlg::Sha1, Cipher::AesCbc(AesKeyLen::Aes128), &gxi, &gxr),
                hex(SS_IV1)
            );
            // HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b); strongSwan
            // logs the concatenation, so split it and check every part it should contain.
            let data = hex(SS_HASH_I_DATA);
            let (g, rest) = data.split_at(gxi.len() + gxr.len());
            assert_eq!(g, [gxi.as_slice(), &gxr].concat());
            let (cookies, rest) = rest.split_at(16);
            assert_eq!(cookies, [cky_i, cky_r].concat());
            // IDii: ID_IPV4_ADDR (type 1, protocol 0, port 0) and four address octets.
            let (sai_b, id_b) = rest.split_at(rest.len() - 8);
            assert_eq!(id_b.first(), Some(&1));
            let h = auth_hash(
                HashAlg::Sha1,
                &k.skeyid,
                &AuthHashInput {
                    gx_self: &gxi,
                    gx_peer: &gxr,
                    cky_self: cky_i,
                    cky_peer: cky_r,
                    sai_b,
                    id_b,
                },
            );
            assert_eq!(*h, hex(SS_HASH_I));
        }

        #[test]
        fn quick_mode_keymat_matches_strongswan() {
            // strongSwan's seeds are protocol | SPI | Ni_b | Nr_b; its "initiator" keys are
            // for the SA towards the responder (the responder's SPI), RFC 2409 §5.5.
            for (seed, enc, integ) in [
                (SS_SEED_I, SS_ENC_I, SS_INTEG_I),
                (SS_SEED_R, SS_ENC_R, SS_INTEG_R),
            ] {
                let seed = hex(seed);
                let (protocol, rest) = seed.split_first().unwrap();
                let (spi, nonces) = rest.split_at(4);
                let (ni_b, nr_b) = nonces.split_at(nonces.len() / 2);
                let keymat = quick_mode_keymat(
                    &KeymatInput {
                        hash: HashAlg::Sha1,
                        skeyid_d: &hex(SS_SKEYID_D),
                        pfs_gxy: None,
                        protocol: *protocol,
                        ni_b,
                        nr_b,
                    },
                    u32::from_be_bytes(spi.try_into().unwrap()),
                    36,
                );
                assert_eq!(*protocol, 3, "ESP");
                assert_eq!(*keymat, [hex(enc), hex(integ)].concat());
            }
        }
    }

    #[test]
    fn key_expansion_for_long_keys() {
        // SHA-1 gives 20 octets; AES-256 and 3DES need the Appendix B expansion.
        let e = hex(SHA1_SKEYID_E);
        assert_eq!(
            *expand_enc_key(HashAlg::Sha1, &e, 32),
            hex(SHA1_ENC_KEY_AES256)
        );
        assert_eq!(
            *expand_enc_key(HashAlg::Sha1, &e, 24),
            hex(SHA1_ENC_KEY_3DES)
        );
    }

    #[test]
    fn psk_sha256_and_signature_mode() {
        let base = Phase1Input {
            hash: HashAlg::Sha256,
            cipher: Cipher::AesCbc(AesKeyLen::Aes256),
            auth: SkeyidInput::PreSharedKey(KDF_PSK),
            ni: &hex(KDF_NI),
            nr: &hex(KDF_NR),
            gxy: &hex(KDF_GXY),
            cky_i: hex(KDF_CKY_I).try_into().unwrap(),
            cky_r: hex(KDF_CKY_R).try_into().unwrap(),
        };
        let k = derive_phase1(&base);
        assert_eq!(*k.skeyid_e, hex(SHA256_SKEYID_E));
        assert_eq!(*k.enc_key, hex(SHA256_ENC_KEY_AES256));
        let k = derive_phase1(&Phase1Input {
            auth: SkeyidInput::Signature,
            ..base
        });
        assert_eq!(*k.skeyid, hex(SHA256_SIG_SKEYID));
    }

    #[test]
    fn ivs_hashes_and_keymat() {
        let c = Cipher::AesCbc(AesKeyLen::Aes128);
        assert_eq!(
            phase1_iv(HashAlg::Sha1, c, &hex(KDF_GXI), &hex(KDF_GXR)),
            hex(SHA1_IV1)
        );
        assert_eq!(
            phase2_iv(HashAlg::Sha1, c, &hex(KDF_LAST_BLOCK), KDF_MSGID),
            hex(SHA1_IV_QM)
        );
        let h = auth_hash(
            HashAlg::Sha1,
            &hex(SHA1_SKEYID),
            &AuthHashInput {
                gx_self: &hex(KDF_GXI),
                gx_peer: &hex(KDF_GXR),
                cky_self: hex(KDF_CKY_I).try_into().unwrap(),
                cky_peer: hex(KDF_CKY_R).try_into().unwrap(),
                sai_b: &hex(KDF_SAI_B),
                id_b: &hex(KDF_IDII_B),
            },
        );
        assert_eq!(*h, hex(SHA1_HASH_I));
        let (d, ni, nr, gxy) = (hex(SHA1_SKEYID_D), hex(KDF_NI), hex(KDF_NR), hex(KDF_GXY));
        let mut input = KeymatInput {
            hash: HashAlg::Sha1,
            skeyid_d: &d,
            pfs_gxy: None,
            protocol: 3,
            ni_b: &ni,
            nr_b: &nr,
        };
        assert_eq!(*quick_mode_keymat(&input, KDF_SPI, 36), hex(SHA1_KEYMAT_36));
        input.pfs_gxy = Some(&gxy);
        let km = quick_mode_keymat(&input, KDF_SPI, 64);
        assert_eq!(*km, hex(SHA1_KEYMAT_PFS_64));
    }
}
