//! What identifies an idempotent request: the client's key, the scope it is
//! unique in, and the fingerprint of the payload it was first used with.

use std::fmt;

use sha2::{Digest, Sha256};

/// Longest key accepted, in bytes (the IETF draft leaves it to the server;
/// 255 fits any UUID or ULID with room for a prefix).
pub const MAX_KEY_LEN: usize = 255;

/// A client-chosen idempotency key: 1 to [`MAX_KEY_LEN`] printable ASCII
/// characters (0x21..=0x7E). Validated on construction so a stored key is
/// always one a client could have sent.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

/// Why a string is not a valid [`IdempotencyKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is the empty string.
    #[error("the idempotency key is empty")]
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    #[error("the idempotency key is longer than {MAX_KEY_LEN} characters")]
    TooLong,
    /// The key holds a byte outside printable ASCII (spaces included).
    #[error("the idempotency key may only hold printable ASCII characters (0x21-0x7E)")]
    NotPrintable,
}

impl IdempotencyKey {
    /// Validates `raw` as a key.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong);
        }
        if !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(KeyError::NotPrintable);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The space a key is unique in. Two requests share a record only when all
/// four parts match, so the same key string from another tenant, another
/// user or another endpoint can never replay someone else's result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// Tenant first: the Postgres constraint leads with it too, so one
    /// tenant's keys sit together in the index.
    pub organization_id: i64,
    /// The authenticated user: keys are generated per browser session, so
    /// two users of one organisation must not collide.
    pub user_id: i64,
    /// Which operation the key belongs to (e.g. `POST /api/v1/agents`), so
    /// the same machinery serves every creation endpoint.
    pub endpoint: String,
    /// The client's key.
    pub key: IdempotencyKey,
}

/// SHA-256 of a request's normalised payload. Compared on every reuse of a
/// key to tell a retry (same payload) from a mistaken reuse (another one).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprint of already-normalised bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Rebuilds a fingerprint read back from storage.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// Identifies one claim of a scope. A completion or release only takes
/// effect when it carries the token of the current claim, which is what
/// keeps a late owner (whose lease expired and was taken over) from
/// overwriting the new owner's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseToken(pub uuid::Uuid);

impl LeaseToken {
    /// A fresh random token (unique across processes and replicas).
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("8e03978e-40d5-43e8-bc93-6894a57f9324").is_ok());
        assert!(IdempotencyKey::parse("!~").is_ok());
        assert_eq!(IdempotencyKey::parse(""), Err(KeyError::Empty));
        assert_eq!(IdempotencyKey::parse(&"k".repeat(256)), Err(KeyError::TooLong));
        assert_eq!(IdempotencyKey::parse("a b"), Err(KeyError::NotPrintable));
        assert_eq!(IdempotencyKey::parse("tab\t"), Err(KeyError::NotPrintable));
        assert_eq!(IdempotencyKey::parse("clé"), Err(KeyError::NotPrintable));
    }

    #[test]
    fn a_key_reads_back_as_the_client_sent_it() {
        let key = IdempotencyKey::parse("8e03978e-40d5").expect("valid key");
        assert_eq!(key.as_str(), "8e03978e-40d5");
        assert_eq!(key.to_string(), "8e03978e-40d5");
        assert_eq!(format!("{key:?}"), "\"8e03978e-40d5\"");
    }

    #[test]
    fn a_fingerprint_shows_its_first_six_bytes_in_hex() {
        let mut bytes = [0xff; 32];
        bytes[..6].copy_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab]);
        assert_eq!(format!("{:?}", Fingerprint(bytes)), "0123456789ab…");
    }

    #[test]
    fn fingerprints_tell_payloads_apart() {
        assert_eq!(Fingerprint::of(b"x"), Fingerprint::of(b"x"));
        assert_ne!(Fingerprint::of(b"x"), Fingerprint::of(b"y"));
        let fp = Fingerprint::of(b"x");
        assert_eq!(Fingerprint::from_slice(&fp.0), Some(fp));
        assert_eq!(Fingerprint::from_slice(&[1, 2]), None);
    }
}
