//! Codes compatible with the RTCProctor Moodle plugin (`mod_rtcproctor`),
//! and a keyed variant for new deployments.
//!
//! The plugin derives each code as PHP's `hash('fnv1a32', $sid . "-in-" .
//! $cmid)`, where `$sid` is the part of the student's e-mail before the first
//! `@` (case kept) and `$cmid` the course-module id of the activity, printed
//! as 8 lower-case hex digits. Nothing is secret in that: anyone who knows a
//! classmate's e-mail and the activity id (it is in the activity's URL) can
//! compute the classmate's code. Codes made the same way keep an existing
//! Moodle course working; [`keyed_code`] mixes in a secret for new ones.

use hmac::{KeyInit, Mac};

use super::generate::ALPHABET;

/// FNV-1a, 32 bits (offset basis 0x811c9dc5, prime 0x01000193).
pub fn fnv1a32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5, |hash: u32, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// What the plugin hashes: `<local part>-in-<cmid>`.
fn plugin_input(local_part: &str, cmid: u64) -> String {
    format!("{local_part}-in-{cmid}")
}

/// The plugin's student ID: the e-mail's part before the first `@`, as is.
pub fn local_part(email: &str) -> &str {
    email.split('@').next().unwrap_or(email)
}

/// The code the plugin shows this student: 8 lower-case hex digits.
pub fn plugin_code(local_part: &str, cmid: u64) -> String {
    format!("{:08x}", fnv1a32(plugin_input(local_part, cmid).as_bytes()))
}

/// Shortest secret accepted for keyed codes, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// A keyed code: HMAC-SHA256 with `secret` over the same string the plugin
/// hashes, written as `length` symbols of the unambiguous alphabet. Without
/// the secret the codes cannot be computed, yet the same secret always gives
/// the same codes, so the roster can be made again.
pub fn keyed_code(secret: &[u8], local_part: &str, cmid: u64, length: usize) -> String {
    let mac = hmac_sha256(secret, plugin_input(local_part, cmid).as_bytes());
    to_alphabet(&mac, length)
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The first 128 bits of `bytes` as a number written in base 31 with the
/// code alphabet, low digit first. 31^25 < 2^128, so up to 25 symbols are
/// uniform to within 2^-4 and the default 9 symbols to within 2^-83.
fn to_alphabet(bytes: &[u8; 32], length: usize) -> String {
    let mut first = [0u8; 16];
    first.copy_from_slice(&bytes[..16]);
    let mut n = u128::from_be_bytes(first);
    let base = ALPHABET.len() as u128;
    (0..length.min(25))
        .map(|_| {
            let digit = (n % base) as usize;
            n /= base;
            char::from(ALPHABET[digit])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_check_values() {
        // From the protocol notes (PHP's hash('fnv1a32', ...)) and the FNV
        // reference test suite.
        assert_eq!(fnv1a32(b""), 0x811c9dc5);
        assert_eq!(format!("{:08x}", fnv1a32(b"a")), "e40c292c");
        assert_eq!(format!("{:08x}", fnv1a32(b"foobar")), "bf9cf968");
        assert_eq!(format!("{:08x}", fnv1a32(b"6400001-in-42")), "6b5207d7");
    }

    #[test]
    fn plugin_code_from_email() {
        assert_eq!(local_part("6400001@students.example.ac.th"), "6400001");
        assert_eq!(plugin_code(local_part("6400001@x.org"), 42), "6b5207d7");
        // Case is kept, as PHP's explode() keeps it.
        assert_ne!(plugin_code("Ann", 42), plugin_code("ann", 42));
        // Zero-padded to 8 digits.
        for cmid in 0..2000 {
            assert_eq!(plugin_code("s", cmid).len(), 8);
        }
    }

    #[test]
    fn hmac_sha256_rfc4231_case_2() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn keyed_codes_depend_on_secret_student_and_activity() {
        let secret = b"0123456789abcdef-secret";
        let a = keyed_code(secret, "6400001", 42, 9);
        assert_eq!(a, keyed_code(secret, "6400001", 42, 9));
        assert_eq!(a.len(), 9);
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(a, keyed_code(b"another-secret-of-16+", "6400001", 42, 9));
        assert_ne!(a, keyed_code(secret, "6400002", 42, 9));
        assert_ne!(a, keyed_code(secret, "6400001", 43, 9));
    }

    #[test]
    fn to_alphabet_is_base_31_low_digit_first() {
        let mut bytes = [0u8; 32];
        bytes[15] = 32; // 32 = 1 * 31 + 1
        assert_eq!(to_alphabet(&bytes, 3), "332");
    }
}
