//! The L2TP header (RFC 2661 §3.1).
//!
//! ```text
//!  |T|L|x|x|S|x|O|P|x|x|x|x|  Ver  |          Length (opt)         |
//!  |           Tunnel ID           |           Session ID          |
//!  |             Ns (opt)          |             Nr (opt)          |
//!  |      Offset Size (opt)        |    Offset pad... (opt)
//! ```
//!
//! [`Packet`] is a checked view; [`HeaderRepr`] the validated representation. Reserved (x) bits
//! are sent as 0 and ignored on receipt (§3.1). Ver must be 2; 1 is L2F and 3 is L2TPv3, both
//! rejected. Control messages must have T=1, L=1, S=1, O=0, P=0. When L=1 the Length field must
//! cover the header and lie within the datagram; bytes after Length are ignored.
//!
//! Data path: [`DataHeader::parse`] and [`emit_data_header`]. We emit data messages **without**
//! the Length field (L=0, as the Linux kernel does): UDP already delimits the datagram, and the
//! header can then be written before the payload length is known.

use std::ops::Range;

use crate::error::ParseError;

/// T bit: control message.
pub const FLAG_TYPE: u16 = 0x8000;
/// L bit: Length field present.
pub const FLAG_LENGTH: u16 = 0x4000;
/// S bit: Ns and Nr present.
pub const FLAG_SEQUENCE: u16 = 0x0800;
/// O bit: Offset Size present.
pub const FLAG_OFFSET: u16 = 0x0200;
/// P bit: priority (data messages only).
pub const FLAG_PRIORITY: u16 = 0x0100;
/// Ver field mask.
pub const VERSION_MASK: u16 = 0x000F;
/// The only header version supported (§3.1).
pub const VERSION: u8 = 2;
/// Length of a control message header: flags, Length, Tunnel ID, Session ID, Ns, Nr.
pub const CONTROL_HEADER_LEN: usize = 12;
/// Offset of Ns in a control header.
pub const NS_OFFSET: usize = 8;
/// Offset of Nr in a control header.
pub const NR_OFFSET: usize = 10;
/// Smallest header: flags, Tunnel ID, Session ID.
pub const MIN_HEADER_LEN: usize = 6;

/// Whether the first octet has the T bit set (a control message). `false` for empty input.
pub fn is_control_message(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| b & 0x80 != 0)
}

fn be16(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// Field positions of a header, computed once by [`Packet::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    flags: u16,
    length: Option<u16>,
    ids_at: usize,
    seq_at: Option<usize>,
    offset_size: Option<u16>,
    header_len: usize,
    end: usize,
}

fn layout(buf: &[u8]) -> Result<Layout, ParseError> {
    let flags = be16(buf, 0).ok_or(ParseError::Truncated)?;
    let version = (flags & VERSION_MASK) as u8;
    if version != VERSION {
        return Err(ParseError::BadVersion(version));
    }
    let control = flags & FLAG_TYPE != 0;
    if control
        && (flags & FLAG_LENGTH == 0
            || flags & FLAG_SEQUENCE == 0
            || flags & (FLAG_OFFSET | FLAG_PRIORITY) != 0)
    {
        return Err(ParseError::BadControlFlags);
    }
    let mut at = 2usize;
    let length = if flags & FLAG_LENGTH != 0 {
        let l = be16(buf, at).ok_or(ParseError::Truncated)?;
        at += 2;
        Some(l)
    } else {
        None
    };
    let ids_at = at;
    at += 4;
    let seq_at = if flags & FLAG_SEQUENCE != 0 {
        let s = at;
        at += 4;
        Some(s)
    } else {
        None
    };
    let offset_size = if flags & FLAG_OFFSET != 0 {
        let o = be16(buf, at).ok_or(ParseError::Truncated)?;
        at += 2;
        Some(o)
    } else {
        None
    };
    let fixed_len = at;
    let end = match length {
        Some(l) => {
            if usize::from(l) < fixed_len {
                return Err(ParseError::BadLength(l));
            }
            if usize::from(l) > buf.len() {
                return Err(ParseError::Truncated);
            }
            usize::from(l)
        }
        None => buf.len(),
    };
    if fixed_len > end {
        return Err(ParseError::Truncated);
    }
    let header_len = match offset_size {
        Some(o) => {
            let h = fixed_len + usize::from(o);
            if h > end {
                return Err(ParseError::BadOffset(o));
            }
            h
        }
        None => fixed_len,
    };
    Ok(Layout {
        flags,
        length,
        ids_at,
        seq_at,
        offset_size,
        header_len,
        end,
    })
}

/// Checked view of one L2TP message.
///
/// After [`Packet::new_checked`] every accessor returns the field's value; none can panic even
/// on an unchecked packet (they return defaults).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without validation.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps and validates a buffer.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// Validates version, flag combinations, Length and Offset Size.
    pub fn check(&self) -> Result<(), ParseError> {
        layout(self.buffer.as_ref()).map(|_| ())
    }

    fn layout(&self) -> Option<Layout> {
        layout(self.buffer.as_ref()).ok()
    }

    /// The first 16 bits (flags and Ver).
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), 0).unwrap_or(0)
    }

    /// T bit.
    pub fn is_control(&self) -> bool {
        self.flags() & FLAG_TYPE != 0
    }

    /// P bit.
    pub fn priority(&self) -> bool {
        self.flags() & FLAG_PRIORITY != 0
    }

    /// Ver field.
    pub fn version(&self) -> u8 {
        (self.flags() & VERSION_MASK) as u8
    }

    /// Length field, if present.
    pub fn length(&self) -> Option<u16> {
        self.layout().and_then(|l| l.length)
    }

    /// Tunnel ID (of the recipient).
    pub fn tunnel_id(&self) -> u16 {
        self.layout()
            .and_then(|l| be16(self.buffer.as_ref(), l.ids_at))
            .unwrap_or(0)
    }

    /// Session ID (of the recipient).
    pub fn session_id(&self) -> u16 {
        self.layout()
            .and_then(|l| be16(self.buffer.as_ref(), l.ids_at + 2))
            .unwrap_or(0)
    }

    /// (Ns, Nr), if S=1.
    pub fn sequence(&self) -> Option<(u16, u16)> {
        let at = self.layout()?.seq_at?;
        Some((
            be16(self.buffer.as_ref(), at)?,
            be16(self.buffer.as_ref(), at + 2)?,
        ))
    }

    /// Offset Size, if O=1.
    pub fn offset_size(&self) -> Option<u16> {
        self.layout().and_then(|l| l.offset_size)
    }

    /// Header length including offset padding.
    pub fn header_len(&self) -> usize {
        self.layout().map_or(0, |l| l.header_len)
    }

    /// Byte range of the payload (AVPs of a control message, PPP frame of a data message).
    pub fn payload_range(&self) -> Range<usize> {
        self.layout().map_or(0..0, |l| l.header_len..l.end)
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(self.payload_range())
            .unwrap_or_default()
    }
}

/// Validated L2TP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRepr {
    /// T bit.
    pub control: bool,
    /// Whether the Length field is present (always for control messages).
    pub with_length: bool,
    /// Tunnel ID of the recipient.
    pub tunnel_id: u16,
    /// Session ID of the recipient.
    pub session_id: u16,
    /// (Ns, Nr), if present.
    pub sequence: Option<(u16, u16)>,
    /// Offset Size, if present (padding is emitted as zeros).
    pub offset_size: Option<u16>,
    /// P bit.
    pub priority: bool,
}

impl HeaderRepr {
    /// Parses a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self, ParseError> {
        packet.check()?;
        Ok(Self {
            control: packet.is_control(),
            with_length: packet.length().is_some(),
            tunnel_id: packet.tunnel_id(),
            session_id: packet.session_id(),
            sequence: packet.sequence(),
            offset_size: packet.offset_size(),
            priority: packet.priority(),
        })
    }

    /// A control header (T=1, L=1, S=1).
    pub fn control(tunnel_id: u16, session_id: u16, ns: u16, nr: u16) -> Self {
        Self {
            control: true,
            with_length: true,
            tunnel_id,
            session_id,
            sequence: Some((ns, nr)),
            offset_size: None,
            priority: false,
        }
    }

    /// Header length including offset padding.
    pub fn header_len(&self) -> usize {
        let mut n = MIN_HEADER_LEN;
        if self.with_length || self.control {
            n += 2;
        }
        if self.sequence.is_some() || self.control {
            n += 4;
        }
        if let Some(o) = self.offset_size {
            n += 2 + usize::from(o);
        }
        n
    }

    /// Appends the header for a payload of `payload_len` octets. The Length field saturates at
    /// 65535 (callers never build bigger messages).
    pub fn emit(&self, out: &mut Vec<u8>, payload_len: usize) {
        let control = self.control;
        let with_length = self.with_length || control;
        let sequence = if control {
            Some(self.sequence.unwrap_or((0, 0)))
        } else {
            self.sequence
        };
        let offset = if control { None } else { self.offset_size };
        let mut flags = u16::from(VERSION);
        if control {
            flags |= FLAG_TYPE;
        }
        if with_length {
            flags |= FLAG_LENGTH;
        }
        if sequence.is_some() {
            flags |= FLAG_SEQUENCE;
        }
        if offset.is_some() {
            flags |= FLAG_OFFSET;
        }
        if self.priority && !control {
            flags |= FLAG_PRIORITY;
        }
        let total = self.header_len().saturating_add(payload_len);
        out.extend_from_slice(&flags.to_be_bytes());
        if with_length {
            out.extend_from_slice(&u16::try_from(total).unwrap_or(u16::MAX).to_be_bytes());
        }
        out.extend_from_slice(&self.tunnel_id.to_be_bytes());
        out.extend_from_slice(&self.session_id.to_be_bytes());
        if let Some((ns, nr)) = sequence {
            out.extend_from_slice(&ns.to_be_bytes());
            out.extend_from_slice(&nr.to_be_bytes());
        }
        if let Some(o) = offset {
            out.extend_from_slice(&o.to_be_bytes());
            out.resize(out.len() + usize::from(o), 0);
        }
    }
}

/// A parsed data message header for the daemon's fast path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataHeader {
    /// Our Tunnel ID (the recipient's).
    pub tunnel_id: u16,
    /// Our Session ID.
    pub session_id: u16,
    /// (Ns, Nr) if S=1. Nr is reserved on data messages and must be ignored (§3.1).
    pub sequence: Option<(u16, u16)>,
    /// P bit.
    pub priority: bool,
    /// Byte range of the PPP frame inside the datagram.
    pub payload: Range<usize>,
}

impl DataHeader {
    /// Parses a data message (T=0). Control messages give [`ParseError::NotData`].
    pub fn parse(datagram: &[u8]) -> Result<Self, ParseError> {
        let l = layout(datagram)?;
        if l.flags & FLAG_TYPE != 0 {
            return Err(ParseError::NotData);
        }
        let tunnel_id = be16(datagram, l.ids_at).ok_or(ParseError::Truncated)?;
        let session_id = be16(datagram, l.ids_at + 2).ok_or(ParseError::Truncated)?;
        let sequence = match l.seq_at {
            Some(at) => Some((
                be16(datagram, at).ok_or(ParseError::Truncated)?,
                be16(datagram, at + 2).ok_or(ParseError::Truncated)?,
            )),
            None => None,
        };
        Ok(Self {
            tunnel_id,
            session_id,
            sequence,
            priority: l.flags & FLAG_PRIORITY != 0,
            payload: l.header_len..l.end,
        })
    }
}

/// Appends a data message header (T=0, L=0, no offset) addressed to the peer's tunnel and
/// session; with `seq` = Some((ns, nr)) the S bit and Ns/Nr are included. The caller appends
/// the PPP frame (address/control field `FF 03` included or not, per its framing).
pub fn emit_data_header(
    out: &mut Vec<u8>,
    peer_tunnel: u16,
    peer_session: u16,
    seq: Option<(u16, u16)>,
) {
    let mut flags = u16::from(VERSION);
    if seq.is_some() {
        flags |= FLAG_SEQUENCE;
    }
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&peer_tunnel.to_be_bytes());
    out.extend_from_slice(&peer_session.to_be_bytes());
    if let Some((ns, nr)) = seq {
        out.extend_from_slice(&ns.to_be_bytes());
        out.extend_from_slice(&nr.to_be_bytes());
    }
}

/// Writes `value` big-endian at `at` if in range (used to patch Ns/Nr/Length).
pub(crate) fn put16(buf: &mut [u8], at: usize, value: u16) {
    if let Some(b) = buf.get_mut(at..at + 2) {
        b.copy_from_slice(&value.to_be_bytes());
    }
}
