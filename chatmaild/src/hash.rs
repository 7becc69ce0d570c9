//! Password hashes in Dovecot's `{SCHEME}` syntax (SPEC §3.5).
//!
//! The default is glibc-compatible SHA-512-crypt with 5000 rounds and a 16-character
//! salt, written without a `rounds=` field exactly as Python's `crypt` does, so the
//! reference and Dovecot verify it. Argon2id is opt-in (`password_scheme = argon2id`) and
//! uses the PHC string Dovecot's libsodium-based `ARGON2ID` scheme verifies.

use crate::config::PasswordScheme;
use rand::RngCore;

use crate::error::{Error, HashError};

/// Hashes `password` with `scheme`; CPU-heavy, call it off the event loop.
pub fn hash_password(scheme: PasswordScheme, password: &str) -> Result<String, Error> {
    match scheme {
        PasswordScheme::Sha512Crypt => sha512_crypt(password),
        PasswordScheme::Argon2id => argon2id(password),
    }
}

/// Whether `password` matches `stored` (`{SCHEME}hash`, or a bare crypt string, as the
/// reference accepts). Schemes this service never writes are not verified: `false`.
pub fn verify_password(stored: &str, password: &str) -> bool {
    let (scheme, hash) = match stored.strip_prefix('{').and_then(|r| r.split_once('}')) {
        Some((scheme, hash)) => (scheme.to_ascii_uppercase(), hash),
        None => (String::new(), stored),
    };
    match scheme.as_str() {
        "SHA512-CRYPT" | "" if hash.starts_with("$6$") => {
            use sha_crypt::{PasswordVerifier, ShaCrypt};
            ShaCrypt::SHA512
                .verify_password(password.as_bytes(), hash)
                .is_ok()
        }
        "ARGON2ID" => {
            use argon2::password_hash::{PasswordHash, PasswordVerifier};
            PasswordHash::new(hash).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        }
        _ => false,
    }
}

fn sha512_crypt(password: &str) -> Result<String, Error> {
    use sha_crypt::{PasswordHasher, ShaCrypt};
    // 12 random bytes encode to the 16 salt characters glibc uses.
    let mut salt = [0u8; 12];
    rand::rng().fill_bytes(&mut salt);
    let mcf = ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(HashError::ShaCrypt)?
        .to_string();
    // The library always writes the default `rounds=5000$`; glibc omits it, and the
    // hash is the same either way.
    let plain = mcf.replacen("$rounds=5000$", "$", 1);
    if !plain.starts_with("$6$") || plain.contains("rounds=") {
        return Err(HashError::ShaCryptForm.into());
    }
    Ok(format!("{{SHA512-CRYPT}}{plain}"))
}

fn argon2id(password: &str) -> Result<String, Error> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(HashError::Argon2)?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(HashError::Argon2)?;
    Ok(format!("{{ARGON2ID}}{hash}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_crypt_shape() {
        let h = hash_password(PasswordScheme::Sha512Crypt, "secret password").unwrap();
        let rest = h.strip_prefix("{SHA512-CRYPT}$6$").unwrap();
        let (salt, hash) = rest.split_once('$').unwrap();
        assert_eq!(salt.len(), 16);
        assert_eq!(hash.len(), 86);
        let alphabet = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '/';
        assert!(salt.chars().all(alphabet) && hash.chars().all(alphabet));
        assert_ne!(
            h,
            hash_password(PasswordScheme::Sha512Crypt, "secret password").unwrap()
        );
    }

    #[test]
    fn sha512_crypt_verifies() {
        use sha_crypt::{PasswordVerifier, ShaCrypt};
        let h = hash_password(PasswordScheme::Sha512Crypt, "pässword").unwrap();
        let mcf = h.strip_prefix("{SHA512-CRYPT}").unwrap();
        assert!(
            ShaCrypt::SHA512
                .verify_password(b"p\xc3\xa4ssword", mcf)
                .is_ok()
        );
        assert!(ShaCrypt::SHA512.verify_password(b"wrong", mcf).is_err());
    }

    #[test]
    fn verify_both_schemes() {
        for scheme in [PasswordScheme::Sha512Crypt, PasswordScheme::Argon2id] {
            let h = hash_password(scheme, "pässword\twith tab").unwrap();
            assert!(verify_password(&h, "pässword\twith tab"), "{h}");
            assert!(!verify_password(&h, "pässword"), "{h}");
        }
        let h = hash_password(PasswordScheme::Sha512Crypt, "secret123").unwrap();
        let bare = h.strip_prefix("{SHA512-CRYPT}").unwrap();
        assert!(verify_password(bare, "secret123"));
        assert!(!verify_password("{PLAIN}secret123", "secret123"));
        assert!(!verify_password("{ARGON2ID}garbage", "x"));
        assert!(!verify_password("", ""));
    }

    #[test]
    fn argon2id_shape() {
        let h = hash_password(PasswordScheme::Argon2id, "secret password").unwrap();
        assert!(h.starts_with("{ARGON2ID}$argon2id$v=19$"), "{h}");
    }
}
