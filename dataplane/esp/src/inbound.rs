//! Inbound (receiving) SA: verifies and opens ESP packets, RFC 4303 §3.4.

use core::fmt;

use zeroize::Zeroize;

use crate::SaStats;
use crate::crypto::{CbcDecryptor, GCM_NONCE_LEN, Gcm, Hmacs};
use crate::error::{DecapError, KeyError};
use crate::keys::{SplitKeys, split_keymat};
use crate::replay::ReplayWindow;
use crate::suite::{ESP_HEADER_LEN, ESP_TRAILER_LEN, Suite};

/// Next Header value of a dummy packet (RFC 4303 §2.6; IANA "No Next Header").
pub const NEXT_HEADER_DUMMY: u8 = 59;

#[allow(
    clippy::large_enum_variant,
    reason = "one per SA, inline: boxing would add a pointer chase per packet"
)]
enum Transform {
    Cbc { cipher: CbcDecryptor, mac: Hmacs },
    Gcm { aead: Gcm, salt: [u8; 4] },
}

/// A successfully decapsulated packet. The payload was decrypted in place in
/// the caller's buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Decapsulated<'a> {
    /// Next Header: the protocol of `payload` (e.g. 17 for UDP).
    pub next_header: u8,
    /// The packet's sequence number.
    pub seq: u32,
    /// Offset of `payload` within the packet buffer (the header length).
    pub payload_offset: usize,
    /// The plaintext payload, without padding and trailer.
    pub payload: &'a mut [u8],
}

/// The receiving half of an ESP SA, with its anti-replay window.
pub struct InboundSa {
    spi: u32,
    suite: Suite,
    window: ReplayWindow,
    stats: SaStats,
    transform: Transform,
}

impl InboundSa {
    /// Builds the SA from the negotiated KEYMAT (same layout as
    /// [`OutboundSa::new`](crate::OutboundSa::new)). `replay_window` is the
    /// anti-replay window in packets; it is raised to at least
    /// [`ReplayWindow::MIN_SIZE`] (1024), capped at
    /// [`ReplayWindow::MAX_SIZE`] and rounded up to a multiple of 64.
    ///
    /// # Errors
    /// [`KeyError`] on a reserved SPI, wrong KEYMAT length or degenerate
    /// 3DES key.
    pub fn new(
        spi: u32,
        suite: Suite,
        keymat: &[u8],
        replay_window: usize,
    ) -> Result<Self, KeyError> {
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
                cipher: CbcDecryptor::new(suite.cipher(), enc).map_err(|_| bad)?,
                mac: Hmacs::new(integrity, integ_key).map_err(|_| bad)?,
            },
            SplitKeys::Gcm { key, salt } => Transform::Gcm {
                aead: Gcm::new(suite.cipher(), key).map_err(|_| bad)?,
                salt,
            },
        };
        Ok(Self {
            spi,
            suite,
            window: ReplayWindow::new(replay_window),
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

    /// The anti-replay window.
    #[must_use]
    pub const fn replay_window(&self) -> &ReplayWindow {
        &self.window
    }

    /// Packets and payload octets accepted (dummy packets included).
    #[must_use]
    pub const fn stats(&self) -> SaStats {
        self.stats
    }

    /// Verifies and decrypts one ESP packet (SPI through ICV, i.e. the IP or
    /// UDP payload) in place, RFC 4303 §3.4:
    ///
    /// 1. an ESP header is present, and the SPI is this SA's;
    /// 2. length and alignment: at least [`Suite::min_packet_len`], the
    ///    ciphertext a multiple of [`Suite::block_len`];
    /// 3. replay window, before any cryptography (cheap reject, §3.4.3);
    /// 4. ICV, in constant time (§3.4.4; `subtle` for the HMACs, the
    ///    `aes-gcm` crate's constant-time tag check for GCM, which verifies
    ///    before it decrypts);
    /// 5. decryption, then pad length and the monotonic padding (§2.4);
    /// 6. only then the replay window is updated.
    ///
    /// A refused packet leaves the SA unchanged (the buffer may have been
    /// decrypted if the refusal was for bad padding). An authentic dummy
    /// packet (next header 59, §2.6) updates the window and is reported as
    /// [`DecapError::DummyPacket`].
    ///
    /// # Errors
    /// One [`DecapError`] variant per reason.
    pub fn decapsulate<'a>(
        &mut self,
        packet: &'a mut [u8],
    ) -> Result<Decapsulated<'a>, DecapError> {
        let suite = self.suite;
        let len = packet.len();
        let (spi, seq) = parse_header(packet).ok_or(DecapError::Truncated)?;
        if spi != self.spi {
            return Err(DecapError::WrongSpi {
                expected: self.spi,
                got: spi,
            });
        }
        if len < suite.min_packet_len() {
            return Err(DecapError::Truncated);
        }
        let header_len = suite.header_len();
        let icv_len = suite.icv_len();
        let ct_len = len - header_len - icv_len;
        if !ct_len.is_multiple_of(suite.block_len()) {
            return Err(DecapError::BadLength);
        }
        self.window.check(seq).map_err(|e| e.into_decap(seq))?;

        let (authenticated, icv) = packet
            .split_at_mut_checked(len - icv_len)
            .ok_or(DecapError::Truncated)?;
        match &self.transform {
            Transform::Cbc { cipher, mac } => {
                if !mac.verify(authenticated, icv) {
                    return Err(DecapError::IntegrityFailed);
                }
                let (header, ct) = authenticated
                    .split_at_mut_checked(header_len)
                    .ok_or(DecapError::Truncated)?;
                let iv = header.get(ESP_HEADER_LEN..).ok_or(DecapError::Truncated)?;
                cipher.decrypt(iv, ct).map_err(|_| DecapError::BadLength)?;
            }
            Transform::Gcm { aead, salt } => {
                let (header, ct) = authenticated
                    .split_at_mut_checked(header_len)
                    .ok_or(DecapError::Truncated)?;
                let (esp, iv) = header
                    .split_at_checked(ESP_HEADER_LEN)
                    .ok_or(DecapError::Truncated)?;
                let mut nonce = [0u8; GCM_NONCE_LEN];
                let (n_salt, n_iv) = nonce.split_at_mut(4);
                n_salt.copy_from_slice(salt);
                if n_iv.len() != iv.len() {
                    return Err(DecapError::Truncated);
                }
                n_iv.copy_from_slice(iv);
                aead.open(&nonce, esp, ct, icv)
                    .map_err(|_| DecapError::IntegrityFailed)?;
            }
        }

        // Authentic from here on. RFC 4303 §2.4 trailer.
        let plaintext = packet
            .get_mut(header_len..header_len + ct_len)
            .ok_or(DecapError::Truncated)?;
        let payload_len = check_trailer(plaintext)?;
        let next_header = plaintext.last().copied().unwrap_or(0);

        self.window.update(seq).map_err(|e| e.into_decap(seq))?;
        self.stats.packets = self.stats.packets.saturating_add(1);
        self.stats.bytes = self.stats.bytes.saturating_add(payload_len as u64);
        if next_header == NEXT_HEADER_DUMMY {
            return Err(DecapError::DummyPacket);
        }
        let payload = plaintext
            .get_mut(..payload_len)
            .ok_or(DecapError::BadPadding)?;
        Ok(Decapsulated {
            next_header,
            seq,
            payload_offset: header_len,
            payload,
        })
    }

    /// Test hook: the window is an implementation detail otherwise.
    #[cfg(test)]
    pub(crate) fn window_mut(&mut self) -> &mut ReplayWindow {
        &mut self.window
    }
}

/// SPI and sequence number of an ESP header, if the packet has one.
fn parse_header(packet: &[u8]) -> Option<(u32, u32)> {
    let (header, _) = packet.split_first_chunk::<ESP_HEADER_LEN>()?;
    let v = u64::from_be_bytes(*header);
    Some(((v >> 32) as u32, v as u32))
}

/// Validates pad length and the 1, 2, 3, ... padding; returns the payload
/// length.
fn check_trailer(plaintext: &[u8]) -> Result<usize, DecapError> {
    let [.., pad_len, _next_header] = plaintext else {
        return Err(DecapError::BadPadding);
    };
    let pad_len = usize::from(*pad_len);
    let payload_len = plaintext
        .len()
        .checked_sub(ESP_TRAILER_LEN + pad_len)
        .ok_or(DecapError::BadPadding)?;
    let padding = plaintext
        .get(payload_len..payload_len + pad_len)
        .ok_or(DecapError::BadPadding)?;
    // Padding is authentic data here; no need for constant time.
    if padding.iter().zip(1u8..).any(|(&b, want)| b != want) {
        return Err(DecapError::BadPadding);
    }
    Ok(payload_len)
}

/// The SPI of an ESP packet, for demultiplexing to the right [`InboundSa`]:
/// `None` if the packet is shorter than the 8-octet ESP header or the SPI is
/// 0 (never valid on the wire, RFC 4303 §2.1).
#[must_use]
pub fn spi_of(packet: &[u8]) -> Option<u32> {
    parse_header(packet)
        .map(|(spi, _)| spi)
        .filter(|&spi| spi != 0)
}

impl Drop for InboundSa {
    fn drop(&mut self) {
        if let Transform::Gcm { salt, .. } = &mut self.transform {
            salt.zeroize();
        }
    }
}

/// Shows the SPI, suite, window and counters; never key material.
impl fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("suite", &format_args!("{}", self.suite))
            .field("window", &self.window)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
