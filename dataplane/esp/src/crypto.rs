//! Per-SA precomputed cipher and MAC state over the RustCrypto crates.
//!
//! Key schedules are expanded once at SA setup; the HMAC is keyed once and
//! its inner/outer state cloned per packet. All of these types zeroize their
//! key material on drop (the crates' `zeroize` features are enabled).

use aes::{Aes128Dec, Aes128Enc, Aes192Dec, Aes192Enc, Aes256Dec, Aes256Enc};
use aes_gcm::aead::AeadInOut;
use aes_gcm::aes::cipher::consts::U12;
use aes_gcm::{AesGcm, KeyInit};
use cbc::cipher::array::Array;
use cbc::cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit,
};
use des::TdesEde3;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

use crate::suite::{AesKeyLen, Cipher, Integrity, MAX_ICV_LEN};

/// A length or layout invariant did not hold (never for well-formed calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

/// CBC encryption over `data` (a whole number of blocks) in place.
fn cbc_encrypt<C: BlockCipherEncrypt>(
    cipher: &C,
    iv: &[u8],
    data: &mut [u8],
) -> Result<(), Invalid> {
    let iv = Array::try_from(iv).map_err(|_| Invalid)?;
    let (blocks, rest) = Array::slice_as_chunks_mut(data);
    if !rest.is_empty() {
        return Err(Invalid);
    }
    cbc::Encryptor::<&C>::inner_iv_init(cipher, &iv).encrypt_blocks(blocks);
    Ok(())
}

/// CBC decryption in place; uses the cipher's parallel-blocks backend
/// (e.g. 8 AES-NI blocks at a time).
fn cbc_decrypt<C: BlockCipherDecrypt>(
    cipher: &C,
    iv: &[u8],
    data: &mut [u8],
) -> Result<(), Invalid> {
    let iv = Array::try_from(iv).map_err(|_| Invalid)?;
    let (blocks, rest) = Array::slice_as_chunks_mut(data);
    if !rest.is_empty() {
        return Err(Invalid);
    }
    cbc::Decryptor::<&C>::inner_iv_init(cipher, &iv).decrypt_blocks(blocks);
    Ok(())
}

fn key_init<T: KeyInit>(key: &[u8]) -> Result<T, Invalid> {
    T::new_from_slice(key).map_err(|_| Invalid)
}

/// Encrypt-only CBC key schedule.
pub(crate) enum CbcEncryptor {
    Aes128(Aes128Enc),
    Aes192(Aes192Enc),
    Aes256(Aes256Enc),
    TripleDes(TdesEde3),
}

impl CbcEncryptor {
    pub(crate) fn new(cipher: Cipher, key: &[u8]) -> Result<Self, Invalid> {
        Ok(match cipher {
            Cipher::AesCbc {
                key_len: AesKeyLen::Aes128,
            } => Self::Aes128(key_init(key)?),
            Cipher::AesCbc {
                key_len: AesKeyLen::Aes192,
            } => Self::Aes192(key_init(key)?),
            Cipher::AesCbc {
                key_len: AesKeyLen::Aes256,
            } => Self::Aes256(key_init(key)?),
            Cipher::TripleDesCbc => Self::TripleDes(key_init(key)?),
            Cipher::AesGcm16 { .. } => return Err(Invalid),
        })
    }

    pub(crate) fn encrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<(), Invalid> {
        match self {
            Self::Aes128(c) => cbc_encrypt(c, iv, data),
            Self::Aes192(c) => cbc_encrypt(c, iv, data),
            Self::Aes256(c) => cbc_encrypt(c, iv, data),
            Self::TripleDes(c) => cbc_encrypt(c, iv, data),
        }
    }
}

/// Decrypt-only CBC key schedule.
pub(crate) enum CbcDecryptor {
    Aes128(Aes128Dec),
    Aes192(Aes192Dec),
    Aes256(Aes256Dec),
    TripleDes(TdesEde3),
}

impl CbcDecryptor {
    pub(crate) fn new(cipher: Cipher, key: &[u8]) -> Result<Self, Invalid> {
        Ok(match cipher {
            Cipher::AesCbc {
                key_len: AesKeyLen::Aes128,
            } => Self::Aes128(key_init(key)?),
            Cipher::AesCbc {
                key_len: AesKeyLen::Aes192,
            } => Self::Aes192(key_init(key)?),
            Cipher::AesCbc {
                key_len: AesKeyLen::Aes256,
            } => Self::Aes256(key_init(key)?),
            Cipher::TripleDesCbc => Self::TripleDes(key_init(key)?),
            Cipher::AesGcm16 { .. } => return Err(Invalid),
        })
    }

    pub(crate) fn decrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<(), Invalid> {
        match self {
            Self::Aes128(c) => cbc_decrypt(c, iv, data),
            Self::Aes192(c) => cbc_decrypt(c, iv, data),
            Self::Aes256(c) => cbc_decrypt(c, iv, data),
            Self::TripleDes(c) => cbc_decrypt(c, iv, data),
        }
    }
}

/// GCM tag length (RFC 4106 "AES-GCM with a 16 octet ICV").
pub(crate) const GCM_TAG_LEN: usize = 16;
/// Salt ‖ explicit IV (RFC 4106 §4).
pub(crate) const GCM_NONCE_LEN: usize = 12;

/// AES-GCM with the encrypt-only key schedule and precomputed GHASH key.
pub(crate) enum Gcm {
    Aes128(AesGcm<Aes128Enc, U12>),
    Aes192(AesGcm<Aes192Enc, U12>),
    Aes256(AesGcm<Aes256Enc, U12>),
}

impl Gcm {
    pub(crate) fn new(cipher: Cipher, key: &[u8]) -> Result<Self, Invalid> {
        Ok(match cipher {
            Cipher::AesGcm16 {
                key_len: AesKeyLen::Aes128,
            } => Self::Aes128(key_init(key)?),
            Cipher::AesGcm16 {
                key_len: AesKeyLen::Aes192,
            } => Self::Aes192(key_init(key)?),
            Cipher::AesGcm16 {
                key_len: AesKeyLen::Aes256,
            } => Self::Aes256(key_init(key)?),
            _ => return Err(Invalid),
        })
    }

    /// Encrypts `data` in place and returns the tag.
    pub(crate) fn seal(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], Invalid> {
        let nonce = Array::from(*nonce);
        let tag = match self {
            Self::Aes128(c) => c.encrypt_inout_detached(&nonce, aad, data.into()),
            Self::Aes192(c) => c.encrypt_inout_detached(&nonce, aad, data.into()),
            Self::Aes256(c) => c.encrypt_inout_detached(&nonce, aad, data.into()),
        }
        .map_err(|_| Invalid)?;
        Ok(tag.into())
    }

    /// Verifies the tag (in constant time) and only then decrypts in place.
    pub(crate) fn open(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Invalid> {
        let nonce = Array::from(*nonce);
        let tag = Array::try_from(tag).map_err(|_| Invalid)?;
        match self {
            Self::Aes128(c) => c.decrypt_inout_detached(&nonce, aad, data.into(), &tag),
            Self::Aes192(c) => c.decrypt_inout_detached(&nonce, aad, data.into(), &tag),
            Self::Aes256(c) => c.decrypt_inout_detached(&nonce, aad, data.into(), &tag),
        }
        .map_err(|_| Invalid)
    }
}

/// A keyed HMAC whose ipad/opad state is computed once.
pub(crate) enum Hmacs {
    Md5(Hmac<Md5>),
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha384(Hmac<Sha384>),
    Sha512(Hmac<Sha512>),
}

fn tag_of<M: Mac + Clone>(keyed: &M, data: &[u8], out: &mut [u8; MAX_ICV_LEN]) {
    let mut m = keyed.clone();
    m.update(data);
    let full = m.finalize().into_bytes();
    for (o, b) in out.iter_mut().zip(full.iter()) {
        *o = *b;
    }
}

impl Hmacs {
    pub(crate) fn new(integrity: Integrity, key: &[u8]) -> Result<Self, Invalid> {
        Ok(match integrity {
            Integrity::HmacMd5_96 => Self::Md5(key_init(key)?),
            Integrity::HmacSha1_96 => Self::Sha1(key_init(key)?),
            Integrity::HmacSha256_128 => Self::Sha256(key_init(key)?),
            Integrity::HmacSha384_192 => Self::Sha384(key_init(key)?),
            Integrity::HmacSha512_256 => Self::Sha512(key_init(key)?),
        })
    }

    /// The HMAC of `data`; the ICV is its first `icv_len` octets.
    pub(crate) fn tag(&self, data: &[u8]) -> [u8; MAX_ICV_LEN] {
        let mut out = [0u8; MAX_ICV_LEN];
        match self {
            Self::Md5(m) => tag_of(m, data, &mut out),
            Self::Sha1(m) => tag_of(m, data, &mut out),
            Self::Sha256(m) => tag_of(m, data, &mut out),
            Self::Sha384(m) => tag_of(m, data, &mut out),
            Self::Sha512(m) => tag_of(m, data, &mut out),
        }
        out
    }

    /// The untruncated HMAC (tests compare it with RFC 4231's full outputs).
    #[cfg(test)]
    pub(crate) fn full_tag(&self, data: &[u8]) -> Vec<u8> {
        fn full<M: Mac + Clone>(m: &M, data: &[u8]) -> Vec<u8> {
            let mut m = m.clone();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Md5(m) => full(m, data),
            Self::Sha1(m) => full(m, data),
            Self::Sha256(m) => full(m, data),
            Self::Sha384(m) => full(m, data),
            Self::Sha512(m) => full(m, data),
        }
    }

    /// Constant-time comparison of the truncated HMAC of `data` with `icv`
    /// (whose length is the ICV length).
    pub(crate) fn verify(&self, data: &[u8], icv: &[u8]) -> bool {
        let tag = self.tag(data);
        !icv.is_empty()
            && tag
                .get(..icv.len())
                .is_some_and(|expected| bool::from(expected.ct_eq(icv)))
    }
}
