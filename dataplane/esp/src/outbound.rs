//! Outbound (sending) SA: builds ESP packets, RFC 4303 §3.3.

use core::fmt;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng as _, SeedableRng as _};
use zeroize::Zeroize;

use crate::SaStats;
use crate::crypto::{CbcEncryptor, GCM_NONCE_LEN, GCM_TAG_LEN, Gcm, Hmacs};
use crate::error::{EncapError, KeyError};
use crate::keys::{SplitKeys, split_keymat};
use crate::suite::{ESP_HEADER_LEN, ESP_TRAILER_LEN, MAX_PAYLOAD_LEN, Suite};

/// After this many packets [`OutboundSa::needs_rekey`] turns true: 2^32 − 2^24,
/// leaving 16 777 215 sequence numbers (minutes at 10 Mpps) for IKE to
/// negotiate and install the replacement SA.
pub const SEQ_SOFT_LIMIT: u32 = u32::MAX - (1 << 24) + 1;

/// For 64-bit-block ciphers (3DES) [`OutboundSa::needs_rekey`] also turns true
/// after this many payload octets (1 GiB = 2^27 blocks), far below the 2^32
/// block birthday bound exploited by Sweet32.
pub const TRIPLE_DES_SOFT_BYTES: u64 = 1 << 30;

#[allow(
    clippy::large_enum_variant,
    reason = "one per SA, inline: boxing would add a pointer chase per packet"
)]
enum Transform {
    Cbc {
        cipher: CbcEncryptor,
        mac: Hmacs,
        icv_len: usize,
        /// CSPRNG for the unpredictable CBC IVs (RFC 3602 §2.1, RFC 4303 §3.3.2).
        iv_rng: ChaCha20Rng,
    },
    Gcm {
        aead: Gcm,
        salt: [u8; 4],
    },
}

/// The sending half of an ESP SA (transport or tunnel: the framing is the
/// same; the caller supplies the next-header value).
pub struct OutboundSa {
    spi: u32,
    suite: Suite,
    /// Last sequence number used; 0 before the first packet.
    seq: u32,
    stats: SaStats,
    transform: Transform,
}

impl OutboundSa {
    /// Builds the SA from the negotiated KEYMAT (encryption key [‖ salt] ‖
    /// integrity key, RFC 2409 §5.5 / RFC 4106 §8.1). `iv_seed` seeds the
    /// ChaCha20 CSPRNG that generates CBC IVs; the daemon must take it from
    /// the OS (tests may fix it) and use a fresh seed per SA. GCM needs no
    /// randomness: its IV is the 64-bit packet counter (RFC 4106 §3.1).
    ///
    /// # Errors
    /// [`KeyError`] on a reserved SPI, wrong KEYMAT length or degenerate
    /// 3DES key.
    pub fn new(spi: u32, suite: Suite, keymat: &[u8], iv_seed: [u8; 32]) -> Result<Self, KeyError> {
        crate::keys::check_spi(spi)?;
        let bad = KeyError::KeymatLength {
            expected: suite.keymat_len(),
            actual: keymat.len(),
        };
        let transform = match split_keymat(suite, keymat)? {
            SplitKeys::Cbc {
                enc,
                integrity,
                integ_key,
            } => Transform::Cbc {
                cipher: CbcEncryptor::new(suite.cipher(), enc).map_err(|_| bad)?,
                mac: Hmacs::new(integrity, integ_key).map_err(|_| bad)?,
                icv_len: integrity.icv_len(),
                iv_rng: ChaCha20Rng::from_seed(iv_seed),
            },
            SplitKeys::Gcm { key, salt } => Transform::Gcm {
                aead: Gcm::new(suite.cipher(), key).map_err(|_| bad)?,
                salt,
            },
        };
        Ok(Self {
            spi,
            suite,
            seq: 0,
            stats: SaStats::default(),
            transform,
        })
    }

    /// This SA's SPI.
    #[must_use]
    pub const fn spi(&self) -> u32 {
        self.spi
    }

    /// The negotiated suite.
    #[must_use]
    pub const fn suite(&self) -> Suite {
        self.suite
    }

    /// Sequence number of the last packet built (0 if none).
    #[must_use]
    pub const fn last_seq(&self) -> u32 {
        self.seq
    }

    /// Packets and payload octets sent, for IKE lifetimes in kilobytes.
    #[must_use]
    pub const fn stats(&self) -> SaStats {
        self.stats
    }

    /// True once [`SEQ_SOFT_LIMIT`] packets were sent (or, for 3DES,
    /// [`TRIPLE_DES_SOFT_BYTES`] payload octets): IKE should rekey now,
    /// before [`EncapError::SequenceExhausted`] stops the SA.
    #[must_use]
    pub fn needs_rekey(&self) -> bool {
        self.seq >= SEQ_SOFT_LIMIT
            || (self.suite.block_len() == 8 && self.stats.bytes >= TRIPLE_DES_SOFT_BYTES)
    }

    /// Appends one ESP packet to `out` (RFC 4303 §2):
    /// SPI ‖ Seq ‖ IV ‖ E(payload ‖ padding ‖ pad length ‖ next header) ‖ ICV,
    /// with the minimal monotonic padding 1, 2, 3, … (RFC 4303 §2.4).
    /// Exactly [`Suite::encapsulated_len`] octets are appended; allocation-free
    /// when `out` has that much spare capacity.
    ///
    /// # Errors
    /// [`EncapError::SequenceExhausted`] once 2^32 − 1 packets were sent,
    /// [`EncapError::PayloadTooLarge`]. `out` is unchanged on error.
    pub fn encapsulate(
        &mut self,
        next_header: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EncapError> {
        self.encapsulate_vec(next_header, payload, out, None)
    }

    /// The zero-copy variant: `buf` holds the payload at offset
    /// [`Suite::header_len`] (`payload_len` octets), and the packet is built
    /// around it in place. `buf` must be at least
    /// [`Suite::encapsulated_len`]`(payload_len)` octets; the packet occupies
    /// `buf[..n]` where `n` is the returned length.
    ///
    /// # Errors
    /// As [`encapsulate`](Self::encapsulate), plus
    /// [`EncapError::BufferTooSmall`]. Nothing is consumed on error.
    pub fn encapsulate_in_place(
        &mut self,
        next_header: u8,
        buf: &mut [u8],
        payload_len: usize,
    ) -> Result<usize, EncapError> {
        self.check_can_send(payload_len)?;
        let total = self.suite.encapsulated_len(payload_len);
        let actual = buf.len();
        let pkt = buf.get_mut(..total).ok_or(EncapError::BufferTooSmall {
            needed: total,
            actual,
        })?;
        self.seal(next_header, pkt, payload_len, None)?;
        Ok(total)
    }

    fn check_can_send(&self, payload_len: usize) -> Result<(), EncapError> {
        if payload_len > MAX_PAYLOAD_LEN {
            return Err(EncapError::PayloadTooLarge {
                len: payload_len,
                max: MAX_PAYLOAD_LEN,
            });
        }
        if self.seq == u32::MAX {
            return Err(EncapError::SequenceExhausted);
        }
        Ok(())
    }

    fn encapsulate_vec(
        &mut self,
        next_header: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
        forced_iv: Option<&[u8]>,
    ) -> Result<(), EncapError> {
        self.check_can_send(payload.len())?;
        let start = out.len();
        let header_len = self.suite.header_len();
        let total = self.suite.encapsulated_len(payload.len());
        out.reserve(total);
        out.resize(start + header_len, 0);
        out.extend_from_slice(payload);
        out.resize(start + total, 0);
        let result = match out.get_mut(start..) {
            Some(pkt) => self.seal(next_header, pkt, payload.len(), forced_iv),
            None => Err(EncapError::BufferTooSmall {
                needed: total,
                actual: 0,
            }),
        };
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Builds the packet in `pkt` (exactly `encapsulated_len(payload_len)`
    /// octets, payload already at `header_len`).
    fn seal(
        &mut self,
        next_header: u8,
        pkt: &mut [u8],
        payload_len: usize,
        forced_iv: Option<&[u8]>,
    ) -> Result<(), EncapError> {
        let seq = self
            .seq
            .checked_add(1)
            .ok_or(EncapError::SequenceExhausted)?;
        let too_small = EncapError::BufferTooSmall {
            needed: self.suite.encapsulated_len(payload_len),
            actual: pkt.len(),
        };
        let header_len = self.suite.header_len();
        let ct_len = self.suite.ciphertext_len(payload_len);
        let pad_len = ct_len - payload_len - ESP_TRAILER_LEN;

        let (header, rest) = pkt.split_at_mut_checked(header_len).ok_or(too_small)?;
        let (esp, iv) = header
            .split_at_mut_checked(ESP_HEADER_LEN)
            .ok_or(too_small)?;
        let (ct, icv) = rest.split_at_mut_checked(ct_len).ok_or(too_small)?;
        esp.copy_from_slice(&((u64::from(self.spi) << 32) | u64::from(seq)).to_be_bytes());

        // Trailer: padding 1, 2, 3, ..., pad length, next header (RFC 4303 §2.4).
        let trailer = ct.get_mut(payload_len..).ok_or(too_small)?;
        for (i, b) in trailer.iter_mut().enumerate() {
            *b = u8::try_from(i + 1).unwrap_or(0);
        }
        if let [.., pl, nh] = trailer {
            *pl = u8::try_from(pad_len).map_err(|_| too_small)?;
            *nh = next_header;
        }

        match &mut self.transform {
            Transform::Cbc {
                cipher,
                mac,
                icv_len,
                iv_rng,
            } => {
                match forced_iv {
                    Some(v) if v.len() == iv.len() => iv.copy_from_slice(v),
                    _ => iv_rng.fill_bytes(iv),
                }
                cipher.encrypt(iv, ct).map_err(|_| too_small)?;
                let authenticated = pkt.get(..header_len + ct_len).ok_or(too_small)?;
                let tag = mac.tag(authenticated);
                let (tag, icv_out) = (
                    tag.get(..*icv_len).ok_or(too_small)?,
                    pkt.get_mut(header_len + ct_len..).ok_or(too_small)?,
                );
                icv_out.copy_from_slice(tag);
            }
            Transform::Gcm { aead, salt } => {
                // RFC 4106 §3.1: the IV must be unique per key; the 64-bit
                // sequence counter is (cf. RFC 8750).
                let counter = u64::from(seq).to_be_bytes();
                if iv.len() != counter.len() {
                    return Err(too_small);
                }
                match forced_iv {
                    Some(v) if v.len() == iv.len() => iv.copy_from_slice(v),
                    _ => iv.copy_from_slice(&counter),
                }
                let mut nonce = [0u8; GCM_NONCE_LEN];
                let (n_salt, n_iv) = nonce.split_at_mut(4);
                n_salt.copy_from_slice(salt);
                n_iv.copy_from_slice(iv);
                let tag = aead.seal(&nonce, esp, ct).map_err(|_| too_small)?;
                if icv.len() != GCM_TAG_LEN {
                    return Err(too_small);
                }
                icv.copy_from_slice(&tag);
            }
        }
        self.seq = seq;
        self.stats.packets = self.stats.packets.saturating_add(1);
        self.stats.bytes = self.stats.bytes.saturating_add(payload_len as u64);
        Ok(())
    }

    /// Test hook: pretend `seq` packets were already sent.
    #[cfg(test)]
    pub(crate) fn set_last_seq(&mut self, seq: u32) {
        self.seq = seq;
    }

    /// Test hook: pretend this many payload octets were already sent.
    #[cfg(test)]
    pub(crate) fn set_bytes_sent(&mut self, bytes: u64) {
        self.stats.bytes = bytes;
    }

    /// Test hook: encapsulate with a fixed IV (to reproduce published packets).
    #[cfg(test)]
    pub(crate) fn encapsulate_with_iv(
        &mut self,
        next_header: u8,
        payload: &[u8],
        iv: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EncapError> {
        self.encapsulate_vec(next_header, payload, out, Some(iv))
    }
}

impl Drop for OutboundSa {
    fn drop(&mut self) {
        if let Transform::Gcm { salt, .. } = &mut self.transform {
            salt.zeroize();
        }
    }
}

/// Shows the SPI, suite and counters; never key material.
impl fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("suite", &format_args!("{}", self.suite))
            .field("last_seq", &self.seq)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
