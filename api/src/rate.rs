//! Bit rates and byte sizes of `VpnUser.spec.rateLimit`: a decimal number with an
//! optional SI suffix `k`, `M` or `G` (powers of 1000), as in `10M` or `1.5G`.

/// Lowest accepted rate (bits per second).
pub const MIN_RATE_BPS: u64 = 8_000;
/// Highest accepted rate (bits per second).
pub const MAX_RATE_BPS: u64 = 100_000_000_000;
/// Smallest accepted bucket (two full-size packets).
pub const MIN_BURST_BYTES: u64 = 3_000;
/// Largest accepted bucket.
pub const MAX_BURST_BYTES: u64 = 1_000_000_000;
/// Default bucket: this much time at the rate.
pub const DEFAULT_BURST_MILLIS: u64 = 100;

/// Why a rate or size was refused; displays as a phrase that follows the field's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// Empty, or longer than 24 characters.
    #[error("must be a number with an optional k, M or G suffix, such as 10M")]
    Malformed,
    /// Not `<decimal>[k|M|G]`.
    #[error("{0:?} is not a number with an optional k, M or G suffix, such as 10M")]
    NotANumber(String),
    /// Beyond `u64`.
    #[error("{0:?} is too large")]
    TooLarge(String),
    /// A rate outside [`MIN_RATE_BPS`]..=[`MAX_RATE_BPS`].
    #[error("{0:?} must be from 8k to 100G bits per second")]
    RateOutOfRange(String),
    /// A bucket outside [`MIN_BURST_BYTES`]..=[`MAX_BURST_BYTES`].
    #[error("{0:?} must be from 3k to 1G bytes")]
    BurstOutOfRange(String),
}

/// Parses `<decimal>[k|M|G]` into a whole number (fractions below 1 are dropped).
/// Bounded work: at most 24 characters are looked at.
pub fn parse_si(s: &str) -> Result<u64, RateError> {
    if s.is_empty() || s.len() > 24 {
        return Err(RateError::Malformed);
    }
    let (num, scale) = match s.as_bytes().last() {
        Some(b'k') => (&s[..s.len() - 1], 1_000u128),
        Some(b'M') => (&s[..s.len() - 1], 1_000_000),
        Some(b'G') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s, 1),
    };
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (num, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !frac.is_none_or(digits) {
        return Err(RateError::NotANumber(s.to_owned()));
    }
    let too_big = || RateError::TooLarge(s.to_owned());
    let mut value = int
        .parse::<u128>()
        .map_err(|_| too_big())?
        .checked_mul(scale)
        .ok_or_else(too_big)?;
    let mut unit = scale;
    for d in frac.unwrap_or("").bytes() {
        unit /= 10;
        value += u128::from(d - b'0') * unit;
    }
    u64::try_from(value).map_err(|_| too_big())
}

/// A bit rate within [`MIN_RATE_BPS`]..=[`MAX_RATE_BPS`].
pub fn parse_rate(s: &str) -> Result<u64, RateError> {
    let v = parse_si(s)?;
    if !(MIN_RATE_BPS..=MAX_RATE_BPS).contains(&v) {
        return Err(RateError::RateOutOfRange(s.to_owned()));
    }
    Ok(v)
}

/// A bucket size within [`MIN_BURST_BYTES`]..=[`MAX_BURST_BYTES`].
pub fn parse_burst(s: &str) -> Result<u64, RateError> {
    let v = parse_si(s)?;
    if !(MIN_BURST_BYTES..=MAX_BURST_BYTES).contains(&v) {
        return Err(RateError::BurstOutOfRange(s.to_owned()));
    }
    Ok(v)
}

/// The bucket for a rate when none is given: [`DEFAULT_BURST_MILLIS`] at the rate, at
/// least [`MIN_BURST_BYTES`].
pub fn default_burst(rate_bps: u64) -> u64 {
    (rate_bps / 8 * DEFAULT_BURST_MILLIS / 1000).max(MIN_BURST_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_numbers() {
        assert_eq!(parse_si("10M"), Ok(10_000_000));
        assert_eq!(parse_si("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_si("512k"), Ok(512_000));
        assert_eq!(parse_si("64000"), Ok(64_000));
        assert_eq!(parse_si("0.5k"), Ok(500));
        for bad in [
            "",
            "M",
            "1.M",
            ".5M",
            "10m",
            "10 M",
            "-1M",
            "1e6",
            "1kk",
            "99999999999999999999G",
        ] {
            assert!(parse_si(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bounds() {
        assert!(parse_rate("7999").is_err());
        assert_eq!(parse_rate("8k"), Ok(8_000));
        assert!(parse_rate("101G").is_err());
        assert!(parse_burst("2k").is_err());
        assert_eq!(parse_burst("64k"), Ok(64_000));
        assert_eq!(default_burst(10_000_000), 125_000);
        assert_eq!(default_burst(8_000), MIN_BURST_BYTES);
    }
}
