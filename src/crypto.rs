//! One cryptography library for the whole binary: *ring*.
//!
//! rustls (reqwest's TLS and the AWS SDK client's), and jsonwebtoken's signature checks all use
//! *ring*. Their default, aws-lc, is a second C library of about 0.7 MiB that the Lambda zip and
//! the image would carry for the same algorithms (bench/README.md, issue 12).
//!
//! jsonwebtoken ships providers for aws-lc and RustCrypto only; [`JWT`] is its documented
//! extension point ([`jsonwebtoken::crypto::CryptoProvider`]) filled with *ring*'s primitives, the
//! same calls its aws-lc provider makes (aws-lc-rs mirrors ring's API).

use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair};

/// Makes *ring* the process's provider for rustls and for jsonwebtoken. Idempotent; call it
/// before the first TLS client or token check (startup and the constructors of both do).
pub fn install() {
    // Both fail only when a provider is installed already, which is the point of calling twice.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = JWT.install_default();
}

/// jsonwebtoken's provider backed by *ring*.
pub static JWT: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    jwk_utils: JwkUtils {
        extract_rsa_public_key_components,
        extract_ec_public_key_coordinates,
        compute_digest,
    },
};

/// The key family an algorithm needs (jsonwebtoken's own mapping is crate-private).
fn family(algorithm: Algorithm) -> AlgorithmFamily {
    match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => AlgorithmFamily::Hmac,
        Algorithm::ES256 | Algorithm::ES384 => AlgorithmFamily::Ec,
        Algorithm::EdDSA => AlgorithmFamily::Ed,
        _ => AlgorithmFamily::Rsa,
    }
}

/// An RSA private key in PKCS#1 (`RSAPrivateKey`) or PKCS#8 DER, as jsonwebtoken's aws-lc
/// provider reads both.
fn rsa_key_pair(der: &[u8]) -> Result<sig::RsaKeyPair, ring::error::KeyRejected> {
    sig::RsaKeyPair::from_der(der).or_else(|_| sig::RsaKeyPair::from_pkcs8(der))
}

fn rsa_signing(algorithm: Algorithm) -> Option<&'static dyn sig::RsaEncoding> {
    Some(match algorithm {
        Algorithm::RS256 => &sig::RSA_PKCS1_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_SHA512,
        _ => return None,
    })
}

fn rsa_verification(algorithm: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match algorithm {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn hmac_algorithm(algorithm: Algorithm) -> Option<ring::hmac::Algorithm> {
    Some(match algorithm {
        Algorithm::HS256 => ring::hmac::HMAC_SHA256,
        Algorithm::HS384 => ring::hmac::HMAC_SHA384,
        Algorithm::HS512 => ring::hmac::HMAC_SHA512,
        _ => return None,
    })
}

fn ecdsa_signing(algorithm: Algorithm) -> Option<&'static sig::EcdsaSigningAlgorithm> {
    Some(match algorithm {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
        _ => return None,
    })
}

/// A signer: the algorithm and the key, checked for its family when made.
struct RingSigner {
    algorithm: Algorithm,
    key: EncodingKey,
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        let key = self.key.inner();
        if let Some(encoding) = rsa_signing(self.algorithm) {
            let pair = rsa_key_pair(key).map_err(|_| signature::Error::new())?;
            let mut out = vec![0; pair.public().modulus_len()];
            pair.sign(encoding, &rng, msg, &mut out)
                .map_err(|_| signature::Error::new())?;
            return Ok(out);
        }
        if let Some(hmac) = hmac_algorithm(self.algorithm) {
            let key = ring::hmac::Key::new(hmac, key);
            return Ok(ring::hmac::sign(&key, msg).as_ref().to_vec());
        }
        if let Some(ecdsa) = ecdsa_signing(self.algorithm) {
            let pair = sig::EcdsaKeyPair::from_pkcs8(ecdsa, key, &rng)
                .map_err(|_| signature::Error::new())?;
            let signed = pair.sign(&rng, msg).map_err(|_| signature::Error::new())?;
            return Ok(signed.as_ref().to_vec());
        }
        // EdDSA, the only algorithm left.
        let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(key)
            .map_err(|_| signature::Error::new())?;
        Ok(pair.sign(msg).as_ref().to_vec())
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

struct RingVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let failed = |_: ring::error::Unspecified| signature::Error::new();
        if let Some(params) = rsa_verification(self.algorithm) {
            return match self.key.kind() {
                DecodingKeyKind::SecretOrDer(der) => sig::UnparsedPublicKey::new(params, der)
                    .verify(msg, signature)
                    .map_err(failed),
                DecodingKeyKind::RsaModulusExponent { n, e } => {
                    sig::RsaPublicKeyComponents { n, e }
                        .verify(params, msg, signature)
                        .map_err(failed)
                }
            };
        }
        if let Some(hmac) = hmac_algorithm(self.algorithm) {
            let key = ring::hmac::Key::new(hmac, self.key.as_bytes());
            return ring::hmac::verify(&key, msg, signature).map_err(failed);
        }
        let algorithm: &dyn sig::VerificationAlgorithm = match self.algorithm {
            Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
            _ => &sig::ED25519,
        };
        sig::UnparsedPublicKey::new(algorithm, self.key.as_bytes())
            .verify(msg, signature)
            .map_err(failed)
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    if key.family() != family(*algorithm) {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingSigner {
        algorithm: *algorithm,
        key: key.clone(),
    }))
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    if key.family() != family(*algorithm) {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        key: key.clone(),
    }))
}

fn extract_rsa_public_key_components(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let pair = rsa_key_pair(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let public = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((public.n, public.e))
}

fn extract_ec_public_key_coordinates(
    pkcs8: &[u8],
    algorithm: Algorithm,
) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>), Error> {
    let (signing, curve, width) = match algorithm {
        Algorithm::ES256 => (
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            EllipticCurve::P256,
            32,
        ),
        Algorithm::ES384 => (
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            EllipticCurve::P384,
            48,
        ),
        _ => return Err(ErrorKind::InvalidEcdsaKey.into()),
    };
    let pair = sig::EcdsaKeyPair::from_pkcs8(signing, pkcs8, &SystemRandom::new())
        .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    // An uncompressed point: 0x04, then x and y of `width` bytes each.
    match pair.public_key().as_ref() {
        [4, xy @ ..] if xy.len() == 2 * width => {
            let (x, y) = xy.split_at(width);
            Ok((curve, x.to_vec(), y.to_vec()))
        }
        _ => Err(ErrorKind::InvalidEcdsaKey.into()),
    }
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Vec<u8> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
    };
    ring::digest::digest(algorithm, data).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Header, Validation, decode, encode};
    use serde_json::{Value, json};

    fn round_trip(algorithm: Algorithm, encoding: &EncodingKey, decoding: &DecodingKey) {
        install();
        let claims = json!({"sub": "alice", "exp": 4_000_000_000u64});
        let token = encode(&Header::new(algorithm), &claims, encoding).unwrap();
        let mut validation = Validation::new(algorithm);
        validation.validate_aud = false;
        let data = decode::<Value>(&token, decoding, &validation).unwrap();
        assert_eq!(data.claims["sub"], "alice");
        // One flipped bit in the signature fails the check.
        let (head, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = signature.as_bytes().to_vec();
        bytes[4] = if bytes[4] == b'A' { b'B' } else { b'A' };
        let forged = format!("{head}.{}", String::from_utf8(bytes).unwrap());
        let error = decode::<Value>(&forged, decoding, &validation).unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::InvalidSignature, "{algorithm:?}");
    }

    #[test]
    fn every_algorithm_signs_and_verifies_with_ring() {
        let rng = SystemRandom::new();
        let p256 =
            sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let p384 =
            sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let ed = sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        for (algorithm, pkcs8) in [
            (Algorithm::ES256, p256.as_ref()),
            (Algorithm::ES384, p384.as_ref()),
        ] {
            let encoding = EncodingKey::from_ec_der(pkcs8);
            let (_, x, y) = extract_ec_public_key_coordinates(pkcs8, algorithm).unwrap();
            let b64 = |b: &[u8]| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
            };
            let decoding = DecodingKey::from_ec_components(&b64(&x), &b64(&y)).unwrap();
            round_trip(algorithm, &encoding, &decoding);
        }
        let pair = sig::Ed25519KeyPair::from_pkcs8(ed.as_ref()).unwrap();
        round_trip(
            Algorithm::EdDSA,
            &EncodingKey::from_ed_der(ed.as_ref()),
            &DecodingKey::from_ed_der(pair.public_key().as_ref()),
        );
        for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            round_trip(
                algorithm,
                &EncodingKey::from_secret(b"k3y"),
                &DecodingKey::from_secret(b"k3y"),
            );
        }
    }

    #[test]
    fn rsa_keys_in_pkcs8_der_and_as_jwk_components_work_with_every_rsa_algorithm() {
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(include_str!("identity/testdata/key_a.der.b64").trim())
            .unwrap();
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_str(include_str!("identity/testdata/key_a.jwk.json")).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let (n, e) = extract_rsa_public_key_components(&der).unwrap();
        assert_eq!(e, [1, 0, 1]);
        assert_eq!(n.len(), 256, "a 2048-bit modulus");
        for algorithm in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ] {
            round_trip(algorithm, &EncodingKey::from_rsa_der(&der), &decoding);
        }
    }

    #[test]
    fn a_key_of_another_family_is_refused_before_any_check() {
        install();
        let hmac = DecodingKey::from_secret(b"k3y");
        assert!(new_verifier(&Algorithm::RS256, &hmac).is_err());
        assert!(new_verifier(&Algorithm::ES256, &hmac).is_err());
    }
}
