//! Opaque, signed, expiring handles handed to clients.
//!
//! The server keeps no state between requests (Lambda instances and ALB targets share nothing),
//! so anything a client must bring back later — a running query's request token, and later a
//! write confirmation — travels inside the handle, signed with HMAC-SHA256. Any instance that
//! shares the signing key can verify it. The key is `MCP_SIGNING_KEY` when set; otherwise it is
//! derived from the Dynatrace credential and environment, which every instance of one deployment
//! shares and no client knows.
//!
//! Format: `base64url(json payload) "." base64url(first 16 bytes of the MAC)`. The payload is not
//! secret (it holds no credential), only tamper-proof.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;
const MAC_LEN: usize = 16;

/// Why a handle was refused; each says what the client should do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    #[error(
        "the handle is not one this server issued (it is malformed or was changed); use the handle exactly as it was returned"
    )]
    Invalid,
    #[error("the handle expired {0} s ago; start again")]
    Expired(u64),
}

#[derive(Serialize, serde::Deserialize)]
struct Envelope<T> {
    /// Purpose, so a handle of one kind can never be replayed as another.
    k: String,
    /// Expiry, Unix seconds.
    e: u64,
    p: T,
}

pub struct Signer {
    key: SecretSlice<u8>,
}

impl Signer {
    pub fn new(key_material: &[u8]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"dynatrace-mcp handle key v1\n")
            .chain_update(key_material)
            .finalize();
        Self {
            key: SecretSlice::from(digest.to_vec()),
        }
    }

    /// Signs `payload` for `kind`, valid for `ttl`.
    pub fn issue<T: Serialize>(&self, kind: &str, payload: &T, ttl: Duration) -> String {
        let envelope = Envelope {
            k: kind.to_string(),
            e: now_secs() + ttl.as_secs(),
            p: payload,
        };
        let body = serde_json::to_vec(&envelope).expect("handle payloads serialize");
        let encoded = URL_SAFE_NO_PAD.encode(&body);
        let mac = self.mac(encoded.as_bytes());
        format!("{encoded}.{}", URL_SAFE_NO_PAD.encode(&mac[..MAC_LEN]))
    }

    /// Verifies a handle of `kind` and returns its payload.
    pub fn open<T: DeserializeOwned>(&self, kind: &str, handle: &str) -> Result<T, HandleError> {
        let (encoded, mac) = handle.trim().split_once('.').ok_or(HandleError::Invalid)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| HandleError::Invalid)?;
        let expected = self.mac(encoded.as_bytes());
        if mac.len() != MAC_LEN
            || !bool::from(subtle::ConstantTimeEq::ct_eq(
                &expected[..MAC_LEN],
                &mac[..],
            ))
        {
            return Err(HandleError::Invalid);
        }
        let body = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| HandleError::Invalid)?;
        let envelope: Envelope<T> =
            serde_json::from_slice(&body).map_err(|_| HandleError::Invalid)?;
        if envelope.k != kind {
            return Err(HandleError::Invalid);
        }
        let now = now_secs();
        if now > envelope.e {
            return Err(HandleError::Expired(now - envelope.e));
        }
        Ok(envelope.p)
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(self.key.expose_secret())
            .expect("HMAC accepts any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
}

/// Seconds since the Unix epoch, the clock of handle and confirmation expiries.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_tampering_and_other_kinds() {
        let signer = Signer::new(b"key");
        let handle = signer.issue("query", &"token-1".to_string(), Duration::from_secs(60));
        assert_eq!(signer.open::<String>("query", &handle).unwrap(), "token-1");
        assert_eq!(
            signer.open::<String>("confirm", &handle),
            Err(HandleError::Invalid)
        );
        let mut tampered = handle.clone();
        tampered.insert(3, 'A');
        assert_eq!(
            signer.open::<String>("query", &tampered),
            Err(HandleError::Invalid)
        );
        assert_eq!(
            Signer::new(b"other").open::<String>("query", &handle),
            Err(HandleError::Invalid)
        );
        assert_eq!(
            signer.open::<String>("query", "garbage"),
            Err(HandleError::Invalid)
        );
    }

    #[test]
    fn expired_handles_are_refused() {
        let signer = Signer::new(b"key");
        let handle = signer.issue("query", &1u32, Duration::ZERO);
        // Expiry has one-second resolution: a zero-ttl handle is valid during its issuing second.
        std::thread::sleep(Duration::from_millis(1100));
        assert!(matches!(
            signer.open::<u32>("query", &handle),
            Err(HandleError::Expired(_))
        ));
    }
}
