//! Diffie-Hellman groups of Phase 1 and PFS (RFC 2409 §6.2, RFC 3526 MODP; RFC 5903 ECP).
//!
//! MODP exponentiation uses crypto-bigint's constant-time Montgomery `pow` with a fixed
//! exponent length per group (RFC 3526 §8: at least twice the group's strength in bits).
//! ECP uses the RustCrypto `p256`/`p384` curves; the KE payload is x ‖ y and the shared secret
//! the x coordinate (RFC 5903 §7, §9).

use std::sync::OnceLock;

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// A Diffie-Hellman group (Group Description attribute, RFC 2409 Appendix A class 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// 2: 1024-bit MODP (RFC 2409 §6.2).
    Modp1024,
    /// 5: 1536-bit MODP (RFC 3526 §2).
    Modp1536,
    /// 14: 2048-bit MODP (RFC 3526 §3).
    Modp2048,
    /// 15: 3072-bit MODP (RFC 3526 §4).
    Modp3072,
    /// 16: 4096-bit MODP (RFC 3526 §5).
    Modp4096,
    /// 19: 256-bit random ECP group (RFC 5903 §3.1).
    Ecp256,
    /// 20: 384-bit random ECP group (RFC 5903 §3.2).
    Ecp384,
}

/// Why a peer's public value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DhError {
    /// The KE payload is not the group's length.
    #[error("key exchange data is {got} octets, group needs {want}")]
    Length {
        /// Received length.
        got: usize,
        /// Required length.
        want: usize,
    },
    /// A MODP value outside 2..p-2, or an ECP point not on the curve.
    #[error("invalid public value for the group")]
    Invalid,
}

impl Group {
    /// Every supported group, strongest first.
    pub const ALL: [Group; 7] = [
        Group::Ecp384,
        Group::Ecp256,
        Group::Modp4096,
        Group::Modp3072,
        Group::Modp2048,
        Group::Modp1536,
        Group::Modp1024,
    ];

    /// Group Description value.
    pub fn id(self) -> u16 {
        match self {
            Group::Modp1024 => 2,
            Group::Modp1536 => 5,
            Group::Modp2048 => 14,
            Group::Modp3072 => 15,
            Group::Modp4096 => 16,
            Group::Ecp256 => 19,
            Group::Ecp384 => 20,
        }
    }

    /// The group for a Group Description value, if supported.
    pub fn from_id(id: u16) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.id() == id)
    }

    /// strongSwan's proposal keyword.
    pub fn name(self) -> &'static str {
        match self {
            Group::Modp1024 => "modp1024",
            Group::Modp1536 => "modp1536",
            Group::Modp2048 => "modp2048",
            Group::Modp3072 => "modp3072",
            Group::Modp4096 => "modp4096",
            Group::Ecp256 => "ecp256",
            Group::Ecp384 => "ecp384",
        }
    }

    /// Length of the KE payload data (and, for MODP, of the shared secret g^xy).
    pub fn public_len(self) -> usize {
        match self {
            Group::Modp1024 => 128,
            Group::Modp1536 => 192,
            Group::Modp2048 => 256,
            Group::Modp3072 => 384,
            Group::Modp4096 => 512,
            Group::Ecp256 => 64,
            Group::Ecp384 => 96,
        }
    }

    /// Bits of the private exponent (MODP) or scalar (ECP).
    fn secret_bits(self) -> u32 {
        match self {
            Group::Modp1024 | Group::Modp1536 | Group::Modp2048 => 256,
            Group::Modp3072 => 320,
            Group::Modp4096 => 384,
            Group::Ecp256 => 256,
            Group::Ecp384 => 384,
        }
    }
}

/// Our half of one exchange: the private value and the public value for the KE payload.
#[cfg_attr(fuzzing, derive(Clone))]
pub struct KeyPair {
    group: Group,
    secret: Secret,
    public: Vec<u8>,
}

#[cfg_attr(fuzzing, derive(Clone))]
enum Secret {
    Modp(Zeroizing<BoxedUint>),
    Ecp256(p256::NonZeroScalar),
    Ecp384(p384::NonZeroScalar),
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("group", &self.group)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl KeyPair {
    /// Draws a private value from `rng` and computes the public value.
    pub fn generate<R: CryptoRng + ?Sized>(group: Group, rng: &mut R) -> KeyPair {
        match group {
            Group::Ecp256 => {
                let s = <p256::NonZeroScalar as elliptic_curve::Generate>::generate_from_rng(rng);
                let public = ecp_public::<p256::NistP256>(&s);
                KeyPair {
                    group,
                    secret: Secret::Ecp256(s),
                    public,
                }
            }
            Group::Ecp384 => {
                let s = <p384::NonZeroScalar as elliptic_curve::Generate>::generate_from_rng(rng);
                let public = ecp_public::<p384::NistP384>(&s);
                KeyPair {
                    group,
                    secret: Secret::Ecp384(s),
                    public,
                }
            }
            _ => {
                let params = modp_params(group);
                let mut bytes = Zeroizing::new(vec![0u8; (group.secret_bits() / 8) as usize]);
                rng.fill_bytes(&mut bytes);
                let prec = params.bits_precision();
                let x = Zeroizing::new(BoxedUint::from_be_slice_truncated(&bytes, prec));
                let g = BoxedMontyForm::new(BoxedUint::from_be_slice_truncated(&[2], prec), params);
                let y = g.pow_bounded_exp(&x, group.secret_bits()).retrieve();
                let public = fixed_be(&y, group.public_len());
                KeyPair {
                    group,
                    secret: Secret::Modp(x),
                    public,
                }
            }
        }
    }

    /// The group.
    pub fn group(&self) -> Group {
        self.group
    }

    /// The KE payload data.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// g^xy from the peer's KE payload data: for MODP left-padded to the prime's length, for
    /// ECP the x coordinate.
    pub fn shared_secret(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, DhError> {
        let want = self.group.public_len();
        if peer.len() != want {
            return Err(DhError::Length {
                got: peer.len(),
                want,
            });
        }
        match &self.secret {
            Secret::Ecp256(s) => ecp_shared::<p256::NistP256>(s, peer),
            Secret::Ecp384(s) => ecp_shared::<p384::NistP384>(s, peer),
            Secret::Modp(x) => {
                let params = modp_params(self.group);
                let prec = params.bits_precision();
                let y = BoxedUint::from_be_slice_truncated(peer, prec);
                // Refuse 0, 1 and p-1 (and anything ≥ p): they force a known shared secret.
                let p = params.modulus().as_ref();
                let two = BoxedUint::from_be_slice_truncated(&[2], prec);
                let p_minus_1 = p.wrapping_sub(BoxedUint::from_be_slice_truncated(&[1], prec));
                if y < two || y >= p_minus_1 {
                    return Err(DhError::Invalid);
                }
                let k = BoxedMontyForm::new(y, params)
                    .pow_bounded_exp(x, self.group.secret_bits())
                    .retrieve();
                Ok(Zeroizing::new(fixed_be(&k, want)))
            }
        }
    }
}

fn fixed_be(v: &BoxedUint, len: usize) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut out = vec![0u8; len];
    let n = bytes.len().min(len);
    if let (Some(dst), Some(src)) = (out.get_mut(len - n..), bytes.get(bytes.len() - n..)) {
        dst.copy_from_slice(src);
    }
    out
}

fn ecp_public<C>(s: &elliptic_curve::NonZeroScalar<C>) -> Vec<u8>
where
    C: elliptic_curve::CurveArithmetic,
    elliptic_curve::AffinePoint<C>: elliptic_curve::sec1::ToSec1Point<C>,
    elliptic_curve::FieldBytesSize<C>: elliptic_curve::sec1::ModulusSize,
{
    use elliptic_curve::sec1::ToSec1Point;
    let pk = elliptic_curve::PublicKey::<C>::from_secret_scalar(s);
    let point = pk.as_affine().to_sec1_point(false);
    // Uncompressed SEC 1 encoding is 0x04 ‖ x ‖ y; IKE carries x ‖ y (RFC 5903 §7).
    point
        .as_bytes()
        .get(1..)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

fn ecp_shared<C>(
    s: &elliptic_curve::NonZeroScalar<C>,
    peer: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DhError>
where
    C: elliptic_curve::CurveArithmetic,
    elliptic_curve::AffinePoint<C>:
        elliptic_curve::sec1::FromSec1Point<C> + elliptic_curve::sec1::ToSec1Point<C>,
    elliptic_curve::FieldBytesSize<C>: elliptic_curve::sec1::ModulusSize,
{
    let mut sec1 = Vec::with_capacity(peer.len() + 1);
    sec1.push(0x04);
    sec1.extend_from_slice(peer);
    let pk =
        elliptic_curve::PublicKey::<C>::from_sec1_bytes(&sec1).map_err(|_| DhError::Invalid)?;
    let shared = elliptic_curve::ecdh::diffie_hellman(s, pk.as_affine());
    Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
}

fn modp_params(group: Group) -> &'static BoxedMontyParams {
    static P: [OnceLock<Option<BoxedMontyParams>>; 5] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let (slot, hex) = match group {
        Group::Modp1024 => (0, MODP_1024),
        Group::Modp1536 => (1, MODP_1536),
        Group::Modp3072 => (3, MODP_3072),
        Group::Modp4096 => (4, MODP_4096),
        // Only MODP groups reach here; ECP never asks for parameters.
        _ => (2, MODP_2048),
    };
    let cell = P.get(slot).unwrap_or(&P[2]);
    cell.get_or_init(|| {
        let bytes = decode_hex(hex);
        let bits = u32::try_from(bytes.len() * 8).ok()?;
        let n = BoxedUint::from_be_slice(&bytes, bits).ok()?;
        Odd::new(n).into_option().map(BoxedMontyParams::new)
    })
    .as_ref()
    .unwrap_or_else(|| unreachable!("the MODP constants are odd hex strings"))
}

fn decode_hex(s: &str) -> Vec<u8> {
    s.as_bytes()
        .chunks_exact(2)
        .filter_map(|c| {
            std::str::from_utf8(c)
                .ok()
                .and_then(|c| u8::from_str_radix(c, 16).ok())
        })
        .collect()
}

/// Group 2 prime (generated by `tests/vectors/modp_primes.py` from its defining formula).
const MODP_1024: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
);
/// Group 5 prime (generated by `tests/vectors/modp_primes.py` from its defining formula).
const MODP_1536: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
);
/// Group 14 prime (generated by `tests/vectors/modp_primes.py` from its defining formula).
const MODP_2048: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
);
/// Group 15 prime (generated by `tests/vectors/modp_primes.py` from its defining formula).
const MODP_3072: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);
/// Group 16 prime (generated by `tests/vectors/modp_primes.py` from its defining formula).
const MODP_4096: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7",
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8",
    "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2",
    "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9",
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn every_group_agrees() {
        let mut rng = ChaCha20Rng::from_seed([9; 32]);
        for g in Group::ALL {
            let a = KeyPair::generate(g, &mut rng);
            let b = KeyPair::generate(g, &mut rng);
            assert_eq!(a.public().len(), g.public_len(), "{g:?}");
            let ka = a.shared_secret(b.public()).unwrap();
            let kb = b.shared_secret(a.public()).unwrap();
            assert_eq!(*ka, *kb, "{g:?}");
            assert_eq!(Group::from_id(g.id()), Some(g));
        }
    }

    #[test]
    fn primes_have_the_rfc_shape() {
        for g in [
            Group::Modp1024,
            Group::Modp1536,
            Group::Modp2048,
            Group::Modp3072,
            Group::Modp4096,
        ] {
            let p = modp_params(g).modulus().as_ref().to_be_bytes();
            assert_eq!(p.len(), g.public_len());
            // 2^n - 2^(n-64) - 1 + 2^64 * (...): the top and bottom 64 bits are all ones.
            assert_eq!(&p[..8], &[0xff; 8]);
            assert_eq!(&p[p.len() - 8..], &[0xff; 8]);
        }
    }

    #[test]
    fn degenerate_values_are_refused() {
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let a = KeyPair::generate(Group::Modp1024, &mut rng);
        let zero = vec![0u8; 128];
        let mut one = vec![0u8; 128];
        one[127] = 1;
        let p = modp_params(Group::Modp1024)
            .modulus()
            .as_ref()
            .to_be_bytes()
            .to_vec();
        let mut p_minus_1 = p.clone();
        p_minus_1[127] -= 1;
        for bad in [zero, one, p, p_minus_1, vec![0xff; 128]] {
            assert_eq!(a.shared_secret(&bad), Err(DhError::Invalid));
        }
        assert_eq!(
            a.shared_secret(&[2; 12]),
            Err(DhError::Length { got: 12, want: 128 })
        );
        let e = KeyPair::generate(Group::Ecp256, &mut rng);
        assert_eq!(e.shared_secret(&[0; 64]), Err(DhError::Invalid));
        assert_eq!(e.shared_secret(&[1; 64]), Err(DhError::Invalid));
    }

    /// RFC 5903 §8.1 (256-bit random ECP group) test vector.
    #[test]
    fn rfc5903_ecp256() {
        use crate::testutil::hex;
        let i = hex("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433");
        let gir_x = hex("D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE");
        let r_pub = hex(concat!(
            "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63",
            "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB"
        ));
        let s = p256::NonZeroScalar::try_from(i.as_slice()).unwrap();
        let kp = KeyPair {
            group: Group::Ecp256,
            public: ecp_public::<p256::NistP256>(&s),
            secret: Secret::Ecp256(s),
        };
        assert_eq!(
            kp.public(),
            hex(concat!(
                "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180",
                "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3"
            ))
        );
        assert_eq!(*kp.shared_secret(&r_pub).unwrap(), gir_x);
    }
}
