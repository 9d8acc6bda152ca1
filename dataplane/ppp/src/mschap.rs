//! MS-CHAP cryptography: MS-CHAPv1 (RFC 2433 appendix A) and MS-CHAPv2 (RFC 2759 §8).
//!
//! Passwords are given as bytes. When they are valid UTF-8 they are converted to UTF-16LE
//! ("unicode-char" in the RFCs); otherwise each byte is taken as one Latin-1 character.
//! At most 256 characters are used (RFC 2759 "0-to-256-unicode-char").

use des::Des;
use des::cipher::{Array, BlockCipherEncrypt, KeyInit};
use md4::{Digest as _, Md4};
use sha1::Sha1;
use subtle::ConstantTimeEq as _;

/// Maximum password length in characters (RFC 2759 §8.1).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Feeds the UTF-16LE form of `password` to `f`, two bytes at a time (bounded to 256 chars).
fn for_each_unicode_unit(password: &[u8], mut f: impl FnMut([u8; 2])) {
    match core::str::from_utf8(password) {
        Ok(s) => s
            .encode_utf16()
            .take(MAX_PASSWORD_CHARS)
            .for_each(|u| f(u.to_le_bytes())),
        Err(_) => password
            .iter()
            .take(MAX_PASSWORD_CHARS)
            .for_each(|&b| f(u16::from(b).to_le_bytes())),
    }
}

/// NtPasswordHash (RFC 2759 §8.3, RFC 2433 A.6): MD4 of the UTF-16LE password.
pub fn nt_password_hash(password: &[u8]) -> [u8; 16] {
    let mut h = Md4::new();
    for_each_unicode_unit(password, |u| h.update(u));
    h.finalize().into()
}

/// HashNtPasswordHash (RFC 2759 §8.4): MD4 of the password hash.
pub fn hash_nt_password_hash(password_hash: &[u8; 16]) -> [u8; 16] {
    Md4::digest(password_hash).into()
}

/// Strips a prepended `DOMAIN\` from a user name (RFC 2759 §8.2: only the user name is hashed).
pub fn strip_domain(username: &[u8]) -> &[u8] {
    match username.iter().rposition(|&b| b == b'\\') {
        Some(pos) => username.get(pos + 1..).unwrap_or_default(),
        None => username,
    }
}

/// ChallengeHash (RFC 2759 §8.2).
pub fn challenge_hash(
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    username: &[u8],
) -> [u8; 8] {
    let mut h = Sha1::new();
    h.update(peer_challenge);
    h.update(authenticator_challenge);
    h.update(strip_domain(username));
    let d: [u8; 20] = h.finalize().into();
    first8(&d)
}

fn first8(d: &[u8; 20]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
    out
}

/// Expands a 7-octet (56-bit) DES key to 8 octets with odd parity bits (RFC 2433 B.3).
pub fn des_key_from_7(key: &[u8; 7]) -> [u8; 8] {
    let mut v: u64 = 0;
    for &b in key {
        v = (v << 8) | u64::from(b);
    }
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        // Take 7 bits per output octet, from the most significant end of the 56-bit value.
        let shift = 49 - 7 * i as u32;
        let seven = ((v >> shift) & 0x7F) as u8;
        let b = seven << 1;
        // Odd parity in the low bit.
        *o = if b.count_ones().is_multiple_of(2) {
            b | 1
        } else {
            b
        };
    }
    out
}

/// DesEncrypt (RFC 2433 A.4): DES-ECB of one block with a 7-octet key.
pub fn des_encrypt(clear: &[u8; 8], key: &[u8; 7]) -> [u8; 8] {
    let cipher = Des::new(&Array::from(des_key_from_7(key)));
    let mut block = Array::from(*clear);
    cipher.encrypt_block(&mut block);
    block.into()
}

fn split7(z: &[u8; 21], i: usize) -> [u8; 7] {
    let mut k = [0u8; 7];
    if let Some(s) = z.get(i * 7..i * 7 + 7) {
        k.copy_from_slice(s);
    }
    k
}

/// ChallengeResponse (RFC 2759 §8.5, RFC 2433 A.7).
pub fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; 16]) -> [u8; 24] {
    let mut z = [0u8; 21];
    z[..16].copy_from_slice(password_hash);
    let mut out = [0u8; 24];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&des_encrypt(challenge, &split7(&z, i)));
    }
    out
}

/// GenerateNTResponse (RFC 2759 §8.1).
pub fn generate_nt_response(
    authenticator_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    username: &[u8],
    password: &[u8],
) -> [u8; 24] {
    generate_nt_response_with_hash(
        authenticator_challenge,
        peer_challenge,
        username,
        &nt_password_hash(password),
    )
}

/// GenerateNTResponse (RFC 2759 §8.1) from the NtPasswordHash (§8.3) instead of the password.
pub fn generate_nt_response_with_hash(
    authenticator_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    username: &[u8],
    password_hash: &[u8; 16],
) -> [u8; 24] {
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, username);
    challenge_response(&challenge, password_hash)
}

const AUTH_MAGIC1: &[u8; 39] = b"Magic server to client signing constant";
const AUTH_MAGIC2: &[u8; 41] = b"Pad to make it do more than one iteration";

/// GenerateAuthenticatorResponse (RFC 2759 §8.7), raw 20-octet digest.
pub fn generate_authenticator_response(
    password: &[u8],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    username: &[u8],
) -> [u8; 20] {
    generate_authenticator_response_with_hash(
        &nt_password_hash(password),
        nt_response,
        peer_challenge,
        authenticator_challenge,
        username,
    )
}

/// GenerateAuthenticatorResponse (RFC 2759 §8.7) from the NtPasswordHash (§8.3).
pub fn generate_authenticator_response_with_hash(
    password_hash: &[u8; 16],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    username: &[u8],
) -> [u8; 20] {
    let hh = hash_nt_password_hash(password_hash);
    let mut h = Sha1::new();
    h.update(hh);
    h.update(nt_response);
    h.update(AUTH_MAGIC1);
    let digest: [u8; 20] = h.finalize().into();
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, username);
    let mut h = Sha1::new();
    h.update(digest);
    h.update(challenge);
    h.update(AUTH_MAGIC2);
    h.finalize().into()
}

/// Formats an authenticator response as `S=<40 uppercase hex>` (RFC 2759 §5).
pub fn format_authenticator_response(digest: &[u8; 20]) -> String {
    let mut s = String::with_capacity(42);
    s.push_str("S=");
    push_hex_upper(&mut s, digest);
    s
}

/// Appends uppercase hex of `bytes` to `s`.
pub fn push_hex_upper(s: &mut String, bytes: &[u8]) {
    fn digit(n: u8) -> char {
        char::from(if n < 10 { b'0' + n } else { b'A' + n - 10 })
    }
    for &b in bytes {
        s.push(digit(b >> 4));
        s.push(digit(b & 0x0F));
    }
}

/// Parses hex (either case) into `out`; false if the length or a digit is wrong.
pub fn parse_hex(text: &[u8], out: &mut [u8]) -> bool {
    if text.len() != out.len() * 2 {
        return false;
    }
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        match (
            pair.first().copied().and_then(nib),
            pair.get(1).copied().and_then(nib),
        ) {
            (Some(h), Some(l)) => *o = (h << 4) | l,
            _ => return false,
        }
    }
    true
}

/// CheckAuthenticatorResponse (RFC 2759 §8.8): constant-time check of a received
/// `S=<40 hex>` string (extra text after the 42 characters is ignored).
pub fn check_authenticator_response(
    password: &[u8],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    username: &[u8],
    received: &[u8],
) -> bool {
    check_authenticator_response_with_hash(
        &nt_password_hash(password),
        nt_response,
        peer_challenge,
        authenticator_challenge,
        username,
        received,
    )
}

/// CheckAuthenticatorResponse (RFC 2759 §8.8) from the NtPasswordHash (§8.3).
pub fn check_authenticator_response_with_hash(
    password_hash: &[u8; 16],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    username: &[u8],
    received: &[u8],
) -> bool {
    let expected = generate_authenticator_response_with_hash(
        password_hash,
        nt_response,
        peer_challenge,
        authenticator_challenge,
        username,
    );
    let Some(hex) = received.strip_prefix(b"S=").and_then(|r| r.get(..40)) else {
        return false;
    };
    let mut got = [0u8; 20];
    if !parse_hex(hex, &mut got) {
        return false;
    }
    bool::from(got.ct_eq(&expected))
}

/// LmPasswordHash (RFC 2433 A.2): DES of "KGS!@#$%" under the uppercased, 14-char padded password.
pub fn lm_password_hash(password: &[u8]) -> [u8; 16] {
    let mut upper = [0u8; 14];
    for (u, &b) in upper.iter_mut().zip(password.iter()) {
        *u = b.to_ascii_uppercase();
    }
    const STD: &[u8; 8] = b"KGS!@#$%";
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        let mut k = [0u8; 7];
        if let Some(s) = upper.get(i * 7..i * 7 + 7) {
            k.copy_from_slice(s);
        }
        chunk.copy_from_slice(&des_encrypt(STD, &k));
    }
    out
}

/// LmChallengeResponse (RFC 2433 A.1).
pub fn lm_challenge_response(challenge: &[u8; 8], password: &[u8]) -> [u8; 24] {
    challenge_response(challenge, &lm_password_hash(password))
}

/// NtChallengeResponse (RFC 2433 A.5): the MS-CHAPv1 NT response.
pub fn nt_challenge_response(challenge: &[u8; 8], password: &[u8]) -> [u8; 24] {
    challenge_response(challenge, &nt_password_hash(password))
}

/// Constant-time equality of two 24-octet responses.
pub fn responses_equal(a: &[u8; 24], b: &[u8; 24]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_vectors::*;

    // RFC 2759 §9.2 Hash Example.
    #[test]
    fn rfc2759_hash_example() {
        let auth: [u8; 16] = arr(V2_AUTH_CHALLENGE);
        let peer: [u8; 16] = arr(V2_PEER_CHALLENGE);
        let (pw, user) = (V2_PASSWORD, V2_USER);
        assert_eq!(challenge_hash(&peer, &auth, user), arr(V2_CHALLENGE_HASH));
        let ph = nt_password_hash(pw);
        assert_eq!(ph, arr(V2_PASSWORD_HASH));
        let nt = generate_nt_response(&auth, &peer, user, pw);
        assert_eq!(nt, arr(V2_NT_RESPONSE));
        assert_eq!(generate_nt_response_with_hash(&auth, &peer, user, &ph), nt);
        assert_eq!(hash_nt_password_hash(&ph), arr(V2_PASSWORD_HASH_HASH));
        let ar = generate_authenticator_response(pw, &nt, &peer, &auth, user);
        assert_eq!(format_authenticator_response(&ar), V2_AUTH_RESPONSE);
        assert_eq!(
            generate_authenticator_response_with_hash(&ph, &nt, &peer, &auth, user),
            ar
        );
        let granted = format!("{V2_AUTH_RESPONSE} M=Access granted");
        assert!(check_authenticator_response(
            pw,
            &nt,
            &peer,
            &auth,
            user,
            granted.as_bytes()
        ));
        assert!(check_authenticator_response_with_hash(
            &ph,
            &nt,
            &peer,
            &auth,
            user,
            granted.as_bytes()
        ));
        assert!(check_authenticator_response(
            pw,
            &nt,
            &peer,
            &auth,
            user,
            b"S=407a5589115fd0d6209f510fe9c04566932cda56"
        ));
        assert!(!check_authenticator_response(
            pw,
            &nt,
            &peer,
            &auth,
            user,
            b"S=407A5589115FD0D6209F510FE9C04566932CDA57"
        ));
        assert!(!check_authenticator_response(
            pw, &nt, &peer, &auth, user, b"S=12"
        ));
        // A domain prefix is not hashed.
        assert_eq!(
            challenge_hash(&peer, &auth, b"CORP\\User"),
            arr(V2_CHALLENGE_HASH)
        );
    }

    // RFC 2433 B.2 / B.3.
    #[test]
    fn rfc2433_hash_example_and_des_keys() {
        let ch: [u8; 8] = arr(V1_CHALLENGE);
        assert_eq!(nt_password_hash(V1_PASSWORD), arr(V1_PASSWORD_HASH));
        assert_eq!(nt_challenge_response(&ch, V1_PASSWORD), arr(V1_NT_RESPONSE));
        assert_eq!(
            challenge_response(&ch, &arr(V1_PASSWORD_HASH)),
            arr(V1_NT_RESPONSE)
        );
        assert_eq!(
            des_key_from_7(&arr("FC 15 6A F7 ED CD 6C")),
            arr("FD 0B 5B 5E 7F 6E 34 D9")
        );
        assert_eq!(
            des_key_from_7(&arr("0E DD E3 33 7D 42 7F")),
            arr("0E 6E 79 67 37 EA 08 FE")
        );
    }

    // RFC 3079 §2.5.1 step 1: LmPasswordHash("clientPass").
    #[test]
    fn rfc3079_lm_password_hash() {
        assert_eq!(
            lm_password_hash(b"clientPass"),
            arr("76 a1 52 93 60 96 d7 83 0e 23 90 22 74 04 af d2")
        );
        // Same result for a lowercase password (LM uppercases).
        assert_eq!(
            lm_password_hash(b"CLIENTPASS"),
            lm_password_hash(b"clientpass")
        );
        let _ = lm_challenge_response(&[0; 8], b"x");
    }

    #[test]
    fn non_utf8_password_is_latin1() {
        // 0xE9 alone is not UTF-8; Latin-1 'é' is U+00E9, same as the UTF-8 "é".
        assert_eq!(nt_password_hash(&[0xE9]), nt_password_hash("é".as_bytes()));
        // Long passwords are bounded.
        let long = vec![b'a'; 1000];
        assert_eq!(nt_password_hash(&long), nt_password_hash(&long[..256]));
    }
}
