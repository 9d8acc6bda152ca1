//! Phase 1 encryption (RFC 2409 Appendix B): CBC over the ISAKMP payloads with the IV chained
//! from message to message.

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use des::TdesEde3;

/// Phase 1 encryption algorithm (RFC 2409 Appendix A class 1; AES per RFC 3602 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// 7 with Key Length 128, 192 or 256 bits.
    AesCbc(AesKeyLen),
    /// 5: 3DES-CBC (three-key EDE, 24-octet key).
    TripleDesCbc,
}

/// AES key lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AesKeyLen {
    /// 128 bits.
    Aes128,
    /// 192 bits.
    Aes192,
    /// 256 bits.
    Aes256,
}

impl AesKeyLen {
    /// Length in bits (the Key Length attribute value).
    pub fn bits(self) -> u16 {
        match self {
            AesKeyLen::Aes128 => 128,
            AesKeyLen::Aes192 => 192,
            AesKeyLen::Aes256 => 256,
        }
    }

    /// The key length for a Key Length attribute value in bits.
    pub fn from_bits(bits: u16) -> Option<AesKeyLen> {
        Some(match bits {
            128 => AesKeyLen::Aes128,
            192 => AesKeyLen::Aes192,
            256 => AesKeyLen::Aes256,
            _ => return None,
        })
    }
}

/// Why a CBC operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// Key or IV of the wrong length.
    #[error("wrong key or IV length")]
    KeyLength,
    /// Input not a whole number of blocks.
    #[error("ciphertext is not a whole number of {0}-octet blocks")]
    NotBlockAligned(usize),
}

impl Cipher {
    /// Attribute class 1 value.
    pub fn id(self) -> u16 {
        match self {
            Cipher::AesCbc(_) => 7,
            Cipher::TripleDesCbc => 5,
        }
    }

    /// Key length in octets.
    pub fn key_len(self) -> usize {
        match self {
            Cipher::AesCbc(k) => usize::from(k.bits() / 8),
            Cipher::TripleDesCbc => 24,
        }
    }

    /// Block (and IV) length in octets.
    pub fn block_len(self) -> usize {
        match self {
            Cipher::AesCbc(_) => 16,
            Cipher::TripleDesCbc => 8,
        }
    }

    /// Name as strongSwan spells it in proposals.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::AesCbc(AesKeyLen::Aes128) => "aes128",
            Cipher::AesCbc(AesKeyLen::Aes192) => "aes192",
            Cipher::AesCbc(AesKeyLen::Aes256) => "aes256",
            Cipher::TripleDesCbc => "3des",
        }
    }

    /// Encrypts `buf` (a whole number of blocks) in place with `iv`.
    pub fn encrypt(self, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CipherError> {
        match self {
            Cipher::AesCbc(AesKeyLen::Aes128) => enc::<Aes128>(key, iv, buf),
            Cipher::AesCbc(AesKeyLen::Aes192) => enc::<Aes192>(key, iv, buf),
            Cipher::AesCbc(AesKeyLen::Aes256) => enc::<Aes256>(key, iv, buf),
            Cipher::TripleDesCbc => enc::<TdesEde3>(key, iv, buf),
        }
    }

    /// Decrypts `buf` (a whole number of blocks) in place with `iv`.
    pub fn decrypt(self, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CipherError> {
        match self {
            Cipher::AesCbc(AesKeyLen::Aes128) => dec::<Aes128>(key, iv, buf),
            Cipher::AesCbc(AesKeyLen::Aes192) => dec::<Aes192>(key, iv, buf),
            Cipher::AesCbc(AesKeyLen::Aes256) => dec::<Aes256>(key, iv, buf),
            Cipher::TripleDesCbc => dec::<TdesEde3>(key, iv, buf),
        }
    }
}

fn enc<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CipherError>
where
    C: cbc::cipher::BlockCipherEncrypt + cbc::cipher::KeyInit,
{
    let mut e =
        cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(|_| CipherError::KeyLength)?;
    let bs = C::block_size();
    if !buf.len().is_multiple_of(bs) {
        return Err(CipherError::NotBlockAligned(bs));
    }
    for chunk in buf.chunks_exact_mut(bs) {
        let block = chunk
            .try_into()
            .map_err(|_| CipherError::NotBlockAligned(bs))?;
        e.encrypt_block(block);
    }
    Ok(())
}

fn dec<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CipherError>
where
    C: cbc::cipher::BlockCipherDecrypt + cbc::cipher::KeyInit,
{
    let mut d =
        cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| CipherError::KeyLength)?;
    let bs = C::block_size();
    if !buf.len().is_multiple_of(bs) {
        return Err(CipherError::NotBlockAligned(bs));
    }
    for chunk in buf.chunks_exact_mut(bs) {
        let block = chunk
            .try_into()
            .map_err(|_| CipherError::NotBlockAligned(bs))?;
        d.decrypt_block(block);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    /// NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt), first two blocks.
    #[test]
    fn sp800_38a_aes128_cbc() {
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let mut buf = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let c = Cipher::AesCbc(AesKeyLen::Aes128);
        c.encrypt(&key, &iv, &mut buf).unwrap();
        assert_eq!(
            buf,
            hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2")
        );
        c.decrypt(&key, &iv, &mut buf).unwrap();
        assert_eq!(
            buf,
            hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
        );
    }

    /// NIST SP 800-38A F.2.5 (CBC-AES256.Encrypt), first block.
    #[test]
    fn sp800_38a_aes256_cbc() {
        let key = hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let mut buf = hex("6bc1bee22e409f96e93d7e117393172a");
        Cipher::AesCbc(AesKeyLen::Aes256)
            .encrypt(&key, &iv, &mut buf)
            .unwrap();
        assert_eq!(buf, hex("f58c4c04d6e5f1ba779eabfb5f7bfbd6"));
    }

    #[test]
    fn tdes_round_trip_and_alignment() {
        let key: Vec<u8> = (0..24).collect();
        let iv = [7u8; 8];
        let mut buf = [0x5au8; 24];
        let c = Cipher::TripleDesCbc;
        c.encrypt(&key, &iv, &mut buf).unwrap();
        assert_ne!(buf, [0x5au8; 24]);
        c.decrypt(&key, &iv, &mut buf).unwrap();
        assert_eq!(buf, [0x5au8; 24]);
        assert_eq!(
            c.decrypt(&key, &iv, &mut [0u8; 12]),
            Err(CipherError::NotBlockAligned(8))
        );
        assert_eq!(
            c.decrypt(&key[..16], &iv, &mut [0u8; 8]),
            Err(CipherError::KeyLength)
        );
    }
}
