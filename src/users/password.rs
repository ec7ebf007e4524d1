//! Password hashing with Argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes, one
//! lane, as OWASP recommends). Hashes are PHC strings (`$argon2id$v=19$m=…$salt$hash`),
//! which carry their own parameters and salt, so stronger settings later still verify
//! the old hashes. Verification compares in constant time inside the crate.
//!
//! Both calls cost tens of milliseconds of CPU on purpose: async callers run them with
//! `spawn_blocking` (see [`super::Users`]).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Shortest password accepted for a user.
pub const MIN_LEN: usize = 8;
/// Longest, in bytes (hashing cost grows with it; nobody types more).
pub const MAX_LEN: usize = 1024;

/// The PHC string of `password` with a fresh random 16-byte salt.
pub fn hash(password: &str) -> Result<String, String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `phc`. A malformed `phc` never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the time of one verification without a real hash, so that a login for a name
/// that does not exist takes as long as one with a wrong password.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("no such user, no such password").unwrap_or_default());
    let _ = verify(password, phc);
}

/// Problems with a new password (empty when it will do).
pub fn problems(password: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if password.chars().count() < MIN_LEN {
        problems.push(format!("password: at least {MIN_LEN} characters"));
    }
    if password.len() > MAX_LEN {
        problems.push(format!("password: at most {MAX_LEN} bytes"));
    }
    problems
}

/// A new random password: 20 characters from an alphabet without look-alikes (about
/// 115 bits), for `threering user add` when none is given.
pub fn generate() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_argon2id_phc_strings_that_verify() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("correct horse"));
        assert!(verify("correct horse", &a));
        assert!(verify("correct horse", &b));
        assert!(!verify("correct hors", &a));
        assert!(!verify("correct horse", "not a phc string"));
    }

    #[test]
    fn password_rules_and_generated_passwords() {
        assert!(!problems("").is_empty());
        assert!(!problems("1234567").is_empty());
        assert!(problems("12345678").is_empty());
        assert!(problems("密码密码密码密码").is_empty());
        let generated = generate();
        assert_eq!(generated.len(), 20);
        assert!(problems(&generated).is_empty());
        assert_ne!(generated, generate());
    }
}
