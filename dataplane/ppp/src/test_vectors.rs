//! Published test vectors shared by the unit tests (hex strings, whitespace ignored).

/// Decodes hex, ignoring whitespace.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = vec![0u8; clean.len() / 2];
    assert!(crate::mschap::parse_hex(&clean, &mut out), "bad hex {s}");
    out
}

/// Decodes hex into a fixed-size array.
pub(crate) fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

/// RFC 2759 §9.2: user name.
pub(crate) const V2_USER: &[u8] = b"User";
/// RFC 2759 §9.2: password.
pub(crate) const V2_PASSWORD: &[u8] = b"clientPass";
/// RFC 2759 §9.2: AuthenticatorChallenge.
pub(crate) const V2_AUTH_CHALLENGE: &str = "5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28";
/// RFC 2759 §9.2: PeerChallenge.
pub(crate) const V2_PEER_CHALLENGE: &str = "21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E";
/// RFC 2759 §9.2: ChallengeHash.
pub(crate) const V2_CHALLENGE_HASH: &str = "D0 2E 43 86 BC E9 12 26";
/// RFC 2759 §9.2: NtPasswordHash.
pub(crate) const V2_PASSWORD_HASH: &str = "44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE";
/// RFC 2759 §9.2: PasswordHashHash.
pub(crate) const V2_PASSWORD_HASH_HASH: &str = "41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F";
/// RFC 2759 §9.2: NT-Response.
pub(crate) const V2_NT_RESPONSE: &str =
    "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF";
/// RFC 2759 §9.2: AuthenticatorResponse.
pub(crate) const V2_AUTH_RESPONSE: &str = "S=407A5589115FD0D6209F510FE9C04566932CDA56";
/// RFC 3079 §3.5.1: MasterKey for the RFC 2759 §9.2 credentials.
pub(crate) const V2_MASTER_KEY: &str = "FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31";
/// RFC 3079 §3.5.1: SendStartKey128 (the server's send key, Magic3).
pub(crate) const V2_SERVER_SEND_START_KEY: &str = "8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB";

/// RFC 2433 B.2: password.
pub(crate) const V1_PASSWORD: &[u8] = b"MyPw";
/// RFC 2433 B.2 (also RFC 3079 §2.5): the 8-octet challenge.
pub(crate) const V1_CHALLENGE: &str = "10 2D B5 DF 08 5D 30 41";
/// RFC 2433 B.2: NtPasswordHash("MyPw").
pub(crate) const V1_PASSWORD_HASH: &str = "FC 15 6A F7 ED CD 6C 0E DD E3 33 7D 42 7F 4E AC";
/// RFC 2433 B.2: NtChallengeResponse.
pub(crate) const V1_NT_RESPONSE: &str =
    "4E 9D 3C 8F 9C FD 38 5D 5B F4 D3 24 67 91 95 6C A4 C3 51 AB 40 9A 3D 61";
