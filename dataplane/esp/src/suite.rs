//! The negotiated ESP transform (RFC 4303 §3.2): a cipher and, for non-AEAD
//! ciphers, an integrity algorithm, plus the sizes callers need for MTU and
//! buffer planning.

use core::fmt;

use crate::error::SuiteError;

/// ESP header: SPI (4 octets) ‖ Sequence Number (4 octets), RFC 4303 §2.
pub const ESP_HEADER_LEN: usize = 8;
/// Pad Length ‖ Next Header, RFC 4303 §2.
pub const ESP_TRAILER_LEN: usize = 2;
/// Largest payload [`OutboundSa`](crate::OutboundSa) accepts: the largest
/// IPv4 datagram. Larger payloads cannot be carried in one ESP packet anyway.
pub const MAX_PAYLOAD_LEN: usize = 65_535;
/// Largest ICV of any supported suite (HMAC-SHA-512-256).
pub const MAX_ICV_LEN: usize = 32;

/// AES key size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AesKeyLen {
    /// 128-bit key.
    Aes128,
    /// 192-bit key.
    Aes192,
    /// 256-bit key.
    Aes256,
}

impl AesKeyLen {
    /// Key length in octets.
    #[must_use]
    pub const fn key_len(self) -> usize {
        match self {
            Self::Aes128 => 16,
            Self::Aes192 => 24,
            Self::Aes256 => 32,
        }
    }

    const fn bits(self) -> u16 {
        match self {
            Self::Aes128 => 128,
            Self::Aes192 => 192,
            Self::Aes256 => 256,
        }
    }
}

/// Encryption transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// AES in CBC mode with an explicit 16-octet IV (RFC 3602).
    AesCbc {
        /// AES key size.
        key_len: AesKeyLen,
    },
    /// DES-EDE3 in CBC mode with an explicit 8-octet IV (RFC 2451).
    TripleDesCbc,
    /// AES-GCM with a 16-octet ICV, 8-octet explicit IV and 4-octet salt
    /// (RFC 4106). A combined-mode (AEAD) cipher.
    AesGcm16 {
        /// AES key size.
        key_len: AesKeyLen,
    },
}

impl Cipher {
    /// Whether the cipher authenticates by itself (AEAD).
    #[must_use]
    pub const fn is_combined_mode(self) -> bool {
        matches!(self, Self::AesGcm16 { .. })
    }

    /// Cipher key length in octets, without the GCM salt.
    #[must_use]
    pub const fn key_len(self) -> usize {
        match self {
            Self::AesCbc { key_len } | Self::AesGcm16 { key_len } => key_len.key_len(),
            Self::TripleDesCbc => 24,
        }
    }

    /// Salt taken from KEYMAT after the key: 4 octets for GCM (RFC 4106 §8.1).
    #[must_use]
    pub const fn salt_len(self) -> usize {
        match self {
            Self::AesGcm16 { .. } => 4,
            _ => 0,
        }
    }

    /// Explicit IV carried in each packet (RFC 3602 §3, RFC 2451, RFC 4106 §3.1).
    #[must_use]
    pub const fn iv_len(self) -> usize {
        match self {
            Self::AesCbc { .. } => 16,
            Self::TripleDesCbc | Self::AesGcm16 { .. } => 8,
        }
    }

    /// Alignment of the encrypted part: the cipher block size for CBC, 4
    /// octets for GCM (RFC 4303 §2.4, RFC 4106 §3).
    #[must_use]
    pub const fn block_len(self) -> usize {
        match self {
            Self::AesCbc { .. } => 16,
            Self::TripleDesCbc => 8,
            Self::AesGcm16 { .. } => 4,
        }
    }
}

/// Integrity transform for CBC ciphers; each truncates the HMAC to the ICV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum Integrity {
    /// HMAC-MD5-96 (RFC 2403): 16-octet key, 12-octet ICV.
    HmacMd5_96,
    /// HMAC-SHA1-96 (RFC 2404): 20-octet key, 12-octet ICV.
    HmacSha1_96,
    /// HMAC-SHA-256-128 (RFC 4868): 32-octet key, 16-octet ICV.
    HmacSha256_128,
    /// HMAC-SHA-384-192 (RFC 4868): 48-octet key, 24-octet ICV.
    HmacSha384_192,
    /// HMAC-SHA-512-256 (RFC 4868): 64-octet key, 32-octet ICV.
    HmacSha512_256,
}

impl Integrity {
    /// Key length in octets (RFC 2403 §3, RFC 2404 §3, RFC 4868 §2.1.1).
    #[must_use]
    pub const fn key_len(self) -> usize {
        match self {
            Self::HmacMd5_96 => 16,
            Self::HmacSha1_96 => 20,
            Self::HmacSha256_128 => 32,
            Self::HmacSha384_192 => 48,
            Self::HmacSha512_256 => 64,
        }
    }

    /// ICV (truncated HMAC) length in octets.
    #[must_use]
    pub const fn icv_len(self) -> usize {
        match self {
            Self::HmacMd5_96 | Self::HmacSha1_96 => 12,
            Self::HmacSha256_128 => 16,
            Self::HmacSha384_192 => 24,
            Self::HmacSha512_256 => 32,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::HmacMd5_96 => "hmac-md5-96",
            Self::HmacSha1_96 => "hmac-sha1-96",
            Self::HmacSha256_128 => "hmac-sha256-128",
            Self::HmacSha384_192 => "hmac-sha384-192",
            Self::HmacSha512_256 => "hmac-sha512-256",
        }
    }
}

/// A valid cipher + integrity combination. Only [`Suite::new`] builds one,
/// so a combined-mode cipher with an extra MAC, or a CBC cipher without one,
/// cannot exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Suite {
    cipher: Cipher,
    integrity: Option<Integrity>,
}

impl Suite {
    /// Checks the combination: AES-GCM takes no integrity algorithm, CBC
    /// ciphers require one (RFC 4106 §4, RFC 8221 §3).
    ///
    /// # Errors
    /// [`SuiteError`] for the two forbidden combinations.
    pub const fn new(cipher: Cipher, integrity: Option<Integrity>) -> Result<Self, SuiteError> {
        match (cipher.is_combined_mode(), integrity.is_some()) {
            (true, true) => Err(SuiteError::IntegrityWithCombinedMode),
            (false, false) => Err(SuiteError::MissingIntegrity),
            _ => Ok(Self { cipher, integrity }),
        }
    }

    /// The cipher.
    #[must_use]
    pub const fn cipher(self) -> Cipher {
        self.cipher
    }

    /// The integrity algorithm (`None` exactly for combined-mode ciphers).
    #[must_use]
    pub const fn integrity(self) -> Option<Integrity> {
        self.integrity
    }

    /// Octets of KEYMAT for the cipher: key ‖ salt (RFC 4106 §8.1).
    #[must_use]
    pub const fn encryption_keymat_len(self) -> usize {
        self.cipher.key_len() + self.cipher.salt_len()
    }

    /// Octets of KEYMAT for the integrity algorithm.
    #[must_use]
    pub const fn integrity_key_len(self) -> usize {
        match self.integrity {
            Some(i) => i.key_len(),
            None => 0,
        }
    }

    /// Total KEYMAT an SA needs: the encryption key (with the 4-octet salt
    /// for GCM) followed by the integrity key, the order of RFC 2409 §5.5.
    #[must_use]
    pub const fn keymat_len(self) -> usize {
        self.encryption_keymat_len() + self.integrity_key_len()
    }

    /// Explicit IV length.
    #[must_use]
    pub const fn iv_len(self) -> usize {
        self.cipher.iv_len()
    }

    /// Alignment of the encrypted part (see [`Cipher::block_len`]).
    #[must_use]
    pub const fn block_len(self) -> usize {
        self.cipher.block_len()
    }

    /// ICV length: the truncated HMAC, or the 16-octet GCM tag.
    #[must_use]
    pub const fn icv_len(self) -> usize {
        match self.integrity {
            Some(i) => i.icv_len(),
            None => 16,
        }
    }

    /// SPI ‖ Seq ‖ IV: the octets in front of the ciphertext.
    #[must_use]
    pub const fn header_len(self) -> usize {
        ESP_HEADER_LEN + self.iv_len()
    }

    /// Length of the encrypted part for a payload: payload ‖ padding ‖
    /// pad length ‖ next header, rounded up to [`Self::block_len`] with the
    /// minimal padding. Saturates instead of overflowing.
    #[must_use]
    pub const fn ciphertext_len(self, payload_len: usize) -> usize {
        let block = self.block_len();
        let unpadded = payload_len.saturating_add(ESP_TRAILER_LEN);
        unpadded.saturating_add(block - 1) / block * block
    }

    /// Length of the whole ESP packet (from the SPI through the ICV) that
    /// [`OutboundSa::encapsulate`](crate::OutboundSa::encapsulate) produces
    /// for a payload. Saturates instead of overflowing.
    #[must_use]
    pub const fn encapsulated_len(self, payload_len: usize) -> usize {
        self.header_len()
            .saturating_add(self.ciphertext_len(payload_len))
            .saturating_add(self.icv_len())
    }

    /// Octets ESP adds to a payload of this length (header, IV, padding,
    /// trailer, ICV); the outer IP header and any UDP encapsulation
    /// (8 octets, RFC 3948) come on top.
    #[must_use]
    pub const fn overhead(self, payload_len: usize) -> usize {
        self.encapsulated_len(payload_len)
            .saturating_sub(payload_len)
    }

    /// The largest overhead for any payload length: the bound to use when
    /// the payload length is not known yet.
    #[must_use]
    pub const fn max_overhead(self) -> usize {
        self.header_len() + ESP_TRAILER_LEN + self.block_len() - 1 + self.icv_len()
    }

    /// The largest payload whose ESP packet fits in `budget` octets (for
    /// example the path MTU minus the outer IP and UDP headers), or 0.
    #[must_use]
    pub const fn max_payload_len(self, budget: usize) -> usize {
        let fixed = self.header_len() + self.icv_len();
        let ct = budget.saturating_sub(fixed) / self.block_len() * self.block_len();
        ct.saturating_sub(ESP_TRAILER_LEN)
    }

    /// The shortest packet that can possibly be valid: header, one cipher
    /// block (GCM: 4 octets holding at least the 2-octet trailer), ICV.
    #[must_use]
    pub const fn min_packet_len(self) -> usize {
        self.header_len() + self.block_len() + self.icv_len()
    }
}

/// Names in the style of strongSwan proposals, e.g. `aes128-cbc/hmac-sha1-96`
/// or `aes256-gcm16`.
impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cipher {
            Cipher::AesCbc { key_len } => write!(f, "aes{}-cbc", key_len.bits())?,
            Cipher::TripleDesCbc => f.write_str("3des-cbc")?,
            Cipher::AesGcm16 { key_len } => write!(f, "aes{}-gcm16", key_len.bits())?,
        }
        match self.integrity {
            Some(i) => write!(f, "/{}", i.name()),
            None => Ok(()),
        }
    }
}
