//! Bearer-token authentication: HS256 JWTs carrying the user id (`sub`)
//! and the organisations the user belongs to (`orgs`).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims the service reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id, as a decimal string.
    pub sub: String,
    /// Organisations the user may act in.
    pub orgs: Vec<i64>,
    /// Expiry, seconds since the epoch (required).
    pub exp: i64,
    /// Not valid before, seconds since the epoch (optional; honoured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct User {
    /// From `sub`.
    pub id: i64,
    /// From `orgs`.
    pub orgs: Vec<i64>,
}

impl User {
    /// Whether the user belongs to `organization_id`.
    pub fn is_member_of(&self, organization_id: i64) -> bool {
        self.orgs.contains(&organization_id)
    }
}

/// Why a token was refused; the text is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// Bad signature, algorithm, shape or claims.
    #[error("invalid bearer token")]
    Invalid,
    /// Past its `exp`.
    #[error("expired bearer token")]
    Expired,
    /// Before its `nbf`.
    #[error("bearer token not valid yet")]
    NotYetValid,
    /// More than one `Authorization` header: which one counts is
    /// ambiguous, so none does.
    #[error("send exactly one Authorization header")]
    Ambiguous,
}

/// Verifies tokens with one HS256 secret.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    /// HS256 only, `exp` required, `nbf` honoured when present: `alg:
    /// none` and every other algorithm fail the algorithm check before the
    /// signature is looked at.
    validation: Validation,
}

impl Verifier {
    /// A verifier for `secret`.
    pub fn new(secret: &str) -> anyhow::Result<Self> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        Ok(Self {
            key: DecodingKey::from_secret(secret.as_bytes())?,
            validation,
        })
    }

    /// Checks `token` and returns the user it names.
    pub fn verify(&self, token: &str) -> Result<User, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            _ => AuthError::Invalid,
        })?;
        let id = canonical_user_id(&data.claims.sub).ok_or(AuthError::Invalid)?;
        Ok(User {
            id,
            orgs: data.claims.orgs,
        })
    }
}

/// The user id `sub` names, if it is written canonically: a positive
/// decimal integer without sign or leading zeros that fits in an `i64`.
/// `042`, `+42`, `0`, `-5` and ` 42` all name no user, so one user has
/// exactly one spelling and no token can alias another user's id.
pub fn canonical_user_id(sub: &str) -> Option<i64> {
    let canonical = sub.bytes().all(|b| b.is_ascii_digit()) && !sub.starts_with('0') && !sub.is_empty();
    canonical.then(|| sub.parse::<i64>().ok()).flatten()
}

/// Issues a token for `user_id` in `orgs`, valid for `ttl_secs`. For
/// clients, tests and the harness; the service itself never mints tokens.
pub fn mint(secret: &str, user_id: i64, orgs: &[i64], ttl_secs: i64) -> anyhow::Result<String> {
    let claims = Claims {
        sub: user_id.to_string(),
        orgs: orgs.to_vec(),
        exp: chrono::Utc::now().timestamp() + ttl_secs,
        nbf: None,
    };
    encode(secret, &claims)
}

/// Signs any claims with HS256 (tests use it for tokens `mint` would
/// never issue: a future `nbf`, a non-canonical `sub`).
pub fn encode(secret: &str, claims: &Claims) -> anyhow::Result<String> {
    let key = EncodingKey::from_secret(secret.as_bytes())?;
    Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        // Unpadded URL-safe base64, enough for hand-made test tokens.
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = s.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn round_trip() {
        let token = mint("s3cret", 42, &[1, 2], 60).expect("mint");
        let user = Verifier::new("s3cret")
            .expect("verifier")
            .verify(&token)
            .expect("valid");
        assert_eq!(user.id, 42);
        assert!(user.is_member_of(2));
        assert!(!user.is_member_of(3));
    }

    #[test]
    fn wrong_secret_expired_and_garbage_are_refused() {
        let v = Verifier::new("s3cret").expect("verifier");
        let other = mint("other", 42, &[1], 60).expect("mint");
        assert_eq!(v.verify(&other).unwrap_err(), AuthError::Invalid);
        let expired = mint("s3cret", 42, &[1], -3600).expect("mint");
        assert_eq!(v.verify(&expired).unwrap_err(), AuthError::Expired);
        assert_eq!(v.verify("not.a.jwt").unwrap_err(), AuthError::Invalid);
    }

    #[test]
    fn alg_none_is_refused() {
        let exp = chrono::Utc::now().timestamp() + 60;
        let token = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(r#"{{"sub":"42","orgs":[1],"exp":{exp}}}"#))
        );
        let v = Verifier::new("s3cret").expect("verifier");
        assert_eq!(v.verify(&token).unwrap_err(), AuthError::Invalid);
    }

    #[test]
    fn non_numeric_subject_is_refused() {
        let claims = Claims {
            sub: "alice".into(),
            orgs: vec![1],
            exp: chrono::Utc::now().timestamp() + 60,
            nbf: None,
        };
        let token = encode("s3cret", &claims).expect("encode");
        let v = Verifier::new("s3cret").expect("verifier");
        assert_eq!(v.verify(&token).unwrap_err(), AuthError::Invalid);
    }

    #[test]
    fn only_canonical_positive_user_ids_name_a_user() {
        for bad in [
            "",
            "0",
            "-5",
            "042",
            "+42",
            " 42",
            "42 ",
            "4_2",
            "1e3",
            "9223372036854775808",
        ] {
            assert_eq!(canonical_user_id(bad), None, "{bad:?}");
        }
        assert_eq!(canonical_user_id("42"), Some(42));
        assert_eq!(canonical_user_id("9223372036854775807"), Some(i64::MAX));
    }

    #[test]
    fn a_future_nbf_is_refused_and_a_past_one_accepted() {
        let now = chrono::Utc::now().timestamp();
        let claims = |nbf| Claims {
            sub: "7".into(),
            orgs: vec![1],
            exp: now + 3600,
            nbf: Some(nbf),
        };
        let v = Verifier::new("s3cret").expect("verifier");
        let future = encode("s3cret", &claims(now + 600)).expect("encode");
        assert_eq!(v.verify(&future).unwrap_err(), AuthError::NotYetValid);
        let past = encode("s3cret", &claims(now - 600)).expect("encode");
        assert_eq!(v.verify(&past).expect("valid").id, 7);
    }
}
