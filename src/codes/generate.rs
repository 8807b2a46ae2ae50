//! Random stream codes: a CSPRNG over an alphabet that survives being read
//! aloud, printed and typed on a phone.
//!
//! The alphabet is lower case only (phones and spreadsheets change case, and
//! a stream code is matched exactly) and leaves out the look-alikes `0 o 1 l
//! i`, so 31 symbols remain: 4.95 bits each. The default of 40 bits takes 9
//! characters (44.6 bits): guessing one of 200 codes at a thousand guesses a
//! second would take centuries, and the server rate-limits failed joins on
//! top of that.

use std::collections::HashSet;

use rand::{CryptoRng, RngExt};

use crate::{Error, Result};

/// The symbols of generated codes: digits 2-9 and a-z without i, l, o.
pub const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// Default strength of generated codes, in bits.
pub const DEFAULT_BITS: u32 = 40;

/// Below this a code can be found by a patient guesser; refused.
pub const MIN_BITS: u32 = 30;

/// Longest code we make (the server's limit on a stream code is higher).
pub const MAX_LENGTH: usize = 64;

/// Bits of entropy carried by one symbol of [`ALPHABET`].
pub fn bits_per_symbol() -> f64 {
    (ALPHABET.len() as f64).log2()
}

/// Bits of entropy of a code of `length` random symbols.
pub fn bits_of_length(length: usize) -> f64 {
    length as f64 * bits_per_symbol()
}

/// The code length for `--bits B` or `--length L` (default: 40 bits). Refuses
/// codes weaker than [`MIN_BITS`], with the length that would do.
pub fn choose_length(bits: Option<u32>, length: Option<usize>) -> Result<usize> {
    let min_length = length_for_bits(MIN_BITS);
    let length = match (bits, length) {
        (_, Some(length)) => length,
        (Some(bits), None) => {
            if bits < MIN_BITS {
                return Err(Error::Invalid(format!(
                    "--bits {bits} makes codes that can be guessed; use at least --bits \
                     {MIN_BITS} (default {DEFAULT_BITS})"
                )));
            }
            length_for_bits(bits)
        }
        (None, None) => length_for_bits(DEFAULT_BITS),
    };
    if length < min_length {
        return Err(Error::Invalid(format!(
            "--length {length} gives only {:.1} bits, which can be guessed; use at least \
             --length {min_length} ({MIN_BITS} bits)",
            bits_of_length(length)
        )));
    }
    if length > MAX_LENGTH {
        return Err(Error::Invalid(format!(
            "codes longer than {MAX_LENGTH} characters are not needed ({:.0} bits); pick a \
             smaller --length or --bits",
            bits_of_length(MAX_LENGTH)
        )));
    }
    Ok(length)
}

/// The fewest symbols carrying at least `bits` bits.
pub fn length_for_bits(bits: u32) -> usize {
    (f64::from(bits) / bits_per_symbol()).ceil() as usize
}

/// One code of `length` symbols, each drawn uniformly from [`ALPHABET`].
pub fn random_code<R: CryptoRng + ?Sized>(rng: &mut R, length: usize) -> String {
    (0..length)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// `count` distinct codes that also differ from every code in `taken`
/// (redrawn on the rare collision, so a roster never holds one code twice).
pub fn unique_codes<R: CryptoRng + ?Sized>(
    rng: &mut R,
    count: usize,
    length: usize,
    taken: &HashSet<String>,
) -> Result<Vec<String>> {
    let space = bits_of_length(length);
    // A full or nearly full code space would loop for long: refuse early.
    if (count as f64).log2() > space - 8.0 {
        return Err(Error::Invalid(format!(
            "{count} codes of {length} characters would collide too often; use longer codes"
        )));
    }
    let mut seen: HashSet<String> = HashSet::with_capacity(count);
    let mut codes = Vec::with_capacity(count);
    while codes.len() < count {
        let code = random_code(rng, length);
        if !taken.contains(&code) && seen.insert(code.clone()) {
            codes.push(code);
        }
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_has_no_look_alikes_and_no_repeats() {
        for c in b"0Oo1lIi" {
            assert!(!ALPHABET.contains(c), "{} in alphabet", char::from(*c));
        }
        let set: HashSet<u8> = ALPHABET.iter().copied().collect();
        assert_eq!(set.len(), ALPHABET.len());
        assert_eq!(ALPHABET.len(), 31);
        assert!(
            ALPHABET
                .iter()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
    }

    #[test]
    fn default_length_carries_forty_bits() {
        let n = choose_length(None, None).unwrap();
        assert_eq!(n, 9);
        assert!(bits_of_length(n) >= 40.0);
        assert!(bits_of_length(n - 1) < 40.0);
        assert_eq!(choose_length(Some(64), None).unwrap(), 13);
        assert_eq!(choose_length(None, Some(12)).unwrap(), 12);
    }

    #[test]
    fn weak_codes_are_refused() {
        let e = choose_length(Some(29), None).unwrap_err().to_string();
        assert!(e.contains("--bits 30"), "{e}");
        let e = choose_length(None, Some(6)).unwrap_err().to_string();
        assert!(e.contains("--length 7"), "{e}");
        assert!(choose_length(Some(30), None).is_ok());
        assert!(choose_length(None, Some(65)).is_err());
    }

    #[test]
    fn many_codes_are_unique_well_formed_and_uniform() {
        let mut rng = rand::rng();
        let codes = unique_codes(&mut rng, 10_000, 9, &HashSet::new()).unwrap();
        let set: HashSet<&String> = codes.iter().collect();
        assert_eq!(set.len(), 10_000);
        let mut counts = [0u64; 256];
        for code in &codes {
            assert_eq!(code.len(), 9);
            for b in code.bytes() {
                assert!(ALPHABET.contains(&b), "{code}");
                counts[usize::from(b)] += 1;
            }
        }
        // Chi-squared against the uniform distribution over 31 symbols
        // (30 degrees of freedom): the 99.99th percentile is about 67.
        let total: u64 = counts.iter().sum();
        let expected = total as f64 / ALPHABET.len() as f64;
        let chi2: f64 = ALPHABET
            .iter()
            .map(|b| {
                let d = counts[usize::from(*b)] as f64 - expected;
                d * d / expected
            })
            .sum();
        assert!(
            chi2 < 67.0,
            "symbol counts are far from uniform: chi2 = {chi2}"
        );
        // Shannon entropy of the observed symbols is close to log2(31).
        let entropy: f64 = ALPHABET
            .iter()
            .map(|b| {
                let p = counts[usize::from(*b)] as f64 / total as f64;
                -p * p.log2()
            })
            .sum();
        assert!(entropy > bits_per_symbol() - 0.01, "entropy {entropy}");
    }

    #[test]
    fn position_by_position_the_symbols_vary() {
        // A generator stuck on one position (e.g. reusing a byte) would show
        // as a position with few distinct symbols.
        let mut rng = rand::rng();
        let codes = unique_codes(&mut rng, 2_000, 9, &HashSet::new()).unwrap();
        for pos in 0..9 {
            let distinct: HashSet<u8> = codes.iter().map(|c| c.as_bytes()[pos]).collect();
            assert_eq!(distinct.len(), 31, "position {pos}");
        }
    }

    #[test]
    fn taken_codes_are_avoided_and_full_spaces_refused() {
        let mut rng = rand::rng();
        let taken: HashSet<String> = unique_codes(&mut rng, 500, 7, &HashSet::new())
            .unwrap()
            .into_iter()
            .collect();
        let fresh = unique_codes(&mut rng, 500, 7, &taken).unwrap();
        assert!(fresh.iter().all(|c| !taken.contains(c)));
        assert!(unique_codes(&mut rng, 1 << 20, 4, &HashSet::new()).is_err());
    }
}
