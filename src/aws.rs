//! The AWS SDK's shared configuration: one HTTPS client for Secrets Manager and DynamoDB, on
//! rustls with *ring* (`crate::crypto`), trusting the one certificate bundle the system has.
//!
//! The SDK's default client trusts the "native" roots, and loading them reads the bundle *and*
//! every file of the certificate directory (on Debian, /etc/ssl/certs holds some 300 entries):
//! most of the Lambda init time before the secret request was sent (bench/README.md). So the
//! roots come from one file: `SSL_CERT_FILE` when it is set (the image sets it), else the first
//! bundle found where Debian, Alpine and Amazon Linux (Lambda's) keep it. If none is found, or
//! a certificate in it does not parse, the SDK's native roots are used as before.

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

/// Where distributions keep the bundle of trusted roots, first match wins.
const BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",   // Amazon Linux (Lambda's runtimes), Fedora, RHEL
    "/etc/ssl/cert.pem",                  // Alpine, macOS
];

/// The SDK configuration with our HTTPS client, timeouts and retries.
pub async fn load(timeouts: TimeoutConfig, retries: RetryConfig) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .timeout_config(timeouts)
        .retry_config(retries)
        .load()
        .await
}

/// The HTTPS client every AWS SDK client of this server uses (the SDK is built without one of its
/// own): rustls on *ring*, trusting [`roots_file`]'s bundle.
pub fn http_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    crate::crypto::install();
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls_context())
        .build_https()
}

fn tls_context() -> TlsContext {
    let store = roots_file()
        .map(|pem| TrustStore::empty().with_pem_certificate(pem))
        .unwrap_or_default();
    TlsContext::builder()
        .with_trust_store(store)
        .build()
        .unwrap_or_default()
}

/// The bundle's bytes, when it is found and every certificate in it is one rustls accepts as a
/// root (the SDK's client would panic on one it does not, so that file is not handed over).
fn roots_file() -> Option<Vec<u8>> {
    let named = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let path = match &named {
        Some(path) => path.clone(),
        // SSL_CERT_DIR alone names a directory: the native loader is the one that reads those.
        None if std::env::var_os("SSL_CERT_DIR").is_some() => return None,
        None => BUNDLES
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.is_file())?,
    };
    let pem = std::fs::read(&path).ok().filter(|pem| usable_roots(pem));
    if pem.is_none() && named.is_some() {
        tracing::warn!(
            path = %path.display(),
            "SSL_CERT_FILE is not a readable PEM bundle of root certificates that rustls accepts; \
             the AWS SDK's client trusts the system's roots instead"
        );
    }
    pem
}

/// True when the PEM holds at least one certificate and every certificate in it is a valid root.
fn usable_roots(pem: &[u8]) -> bool {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let Ok(certs) = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>() else {
        return false;
    };
    let (valid, invalid) = rustls::RootCertStore::empty().add_parsable_certificates(certs);
    valid > 0 && invalid == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_is_usable_only_when_every_certificate_in_it_parses() {
        let Some(path) = BUNDLES.iter().find(|p| std::path::Path::new(p).is_file()) else {
            return; // no system bundle on this machine: nothing to read
        };
        let pem = std::fs::read(path).unwrap();
        assert!(usable_roots(&pem), "{path}");
        assert!(!usable_roots(b""), "an empty file holds no root");
        assert!(!usable_roots(b"not a certificate"));
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let mut mixed = pem.clone();
        mixed.extend_from_slice(broken);
        assert!(
            !usable_roots(&mixed),
            "one bad certificate and the native loader is used"
        );
    }
}
