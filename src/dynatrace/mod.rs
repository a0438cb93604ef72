//! The outbound side: everything that talks to Dynatrace.
//!
//! [`client::DynatraceClient`] is the one client struct (auth, retries, deadlines, typed errors);
//! [`auth::TokenProvider`] hands out cached bearer tokens; [`grail`] and [`environment`] describe
//! the individual APIs; [`dql`] builds DQL safely from user input.

pub mod analyzers;
pub mod auth;
pub mod automation;
pub mod client;
pub mod copilot;
pub mod documents;
pub mod dql;
pub mod environment;
pub mod error;
pub mod grail;
pub mod notifications;
pub mod scopes;

pub use client::DynatraceClient;
pub use error::DynatraceError;

/// Builds the shared outbound HTTP client: rustls with the system's roots (which honour
/// `SSL_CERT_FILE`) plus an optional extra PEM bundle, proxies from `HTTPS_PROXY`/`NO_PROXY`,
/// pooled connections and bounded connect time.
pub fn http_client(extra_ca_pem: Option<&[u8]>) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context;
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("dynatrace-mcp/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(5))
        .pool_idle_timeout(std::time::Duration::from_secs(50))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = extra_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .context("DT_CA_BUNDLE: expected a PEM file of CA certificates")?;
        if certs.is_empty() {
            anyhow::bail!("DT_CA_BUNDLE: the file holds no PEM certificates");
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().context("building the HTTPS client")
}
