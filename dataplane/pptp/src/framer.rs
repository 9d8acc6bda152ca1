//! Reassembly of control messages from a TCP byte stream.
//!
//! The framer buffers at most one message ([`MAX_MESSAGE_LEN`] bytes). The 12-byte header is
//! validated ([`check_header`]) before any body byte is buffered, so a garbage stream is rejected
//! after at most 12 bytes. After an error the stream is desynchronised and every later call fails.

use crate::control::{ControlMessage, ControlPacket, HEADER_LEN, MAX_MESSAGE_LEN, check_header};
use crate::error::ParseError;

/// Incremental control-message framer.
#[derive(Debug, Clone)]
pub struct Framer {
    buf: Vec<u8>,
    /// Total length of the message being assembled, known once its header is in.
    expected: Option<usize>,
    failed: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// An empty framer.
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(MAX_MESSAGE_LEN),
            expected: None,
            failed: false,
        }
    }

    /// Bytes held for an incomplete message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether an earlier error poisoned the stream.
    pub fn has_failed(&self) -> bool {
        self.failed
    }

    /// Consumes bytes from the front of `input` until one message is complete.
    ///
    /// Returns `Ok(None)` when `input` is exhausted without completing a message (the partial
    /// message is kept). Call repeatedly until `Ok(None)` to drain a read.
    pub fn next_message(
        &mut self,
        input: &mut &[u8],
    ) -> Result<Option<ControlMessage>, ParseError> {
        if self.failed {
            return Err(ParseError::StreamFailed);
        }
        loop {
            let want = self.expected.unwrap_or(HEADER_LEN);
            let need = want.saturating_sub(self.buf.len());
            let (take, rest) = input
                .split_at_checked(need.min(input.len()))
                .unwrap_or((&[], input));
            self.buf.extend_from_slice(take);
            *input = rest;
            if self.buf.len() < want {
                return Ok(None);
            }
            match self.expected {
                None => {
                    let header = self
                        .buf
                        .first_chunk::<HEADER_LEN>()
                        .ok_or(ParseError::Truncated);
                    match header.and_then(check_header) {
                        Ok((_, len)) => self.expected = Some(len),
                        Err(e) => return Err(self.fail(e)),
                    }
                }
                Some(_) => {
                    let parsed = ControlPacket::new_checked(self.buf.as_slice())
                        .and_then(|p| ControlMessage::parse(&p));
                    self.buf.clear();
                    self.expected = None;
                    return match parsed {
                        Ok(msg) => Ok(Some(msg)),
                        Err(e) => Err(self.fail(e)),
                    };
                }
            }
        }
    }

    /// Feeds a whole read and collects every completed message (bounded by `input.len() / 16`).
    pub fn push(&mut self, mut input: &[u8]) -> Result<Vec<ControlMessage>, ParseError> {
        let mut out = Vec::new();
        while let Some(msg) = self.next_message(&mut input)? {
            out.push(msg);
        }
        Ok(out)
    }

    fn fail(&mut self, e: ParseError) -> ParseError {
        self.failed = true;
        self.buf.clear();
        self.expected = None;
        e
    }
}
