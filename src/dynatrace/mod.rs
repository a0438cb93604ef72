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

use std::sync::Arc;

pub use client::DynatraceClient;
pub use error::DynatraceError;

/// The shared outbound HTTP client: rustls with the system's roots (which honour `SSL_CERT_FILE`)
/// plus an optional extra PEM bundle, proxies from `HTTPS_PROXY`/`NO_PROXY`, pooled connections
/// and bounded connect time.
///
/// Loading the platform's trusted roots costs about 5 ms of CPU, more than half of a stdio cold
/// start, and `initialize` and `tools/list` never need it. So the client is built (on a blocking
/// thread) by the first call to Dynatrace, where 5 ms disappear next to a TLS handshake. Building
/// it in the background at start-up instead was measured: on two cores it competes with the first
/// answers and made the stdio cold start 2-3 ms slower (bench/README.md).
pub struct HttpClient {
    cell: tokio::sync::OnceCell<reqwest::Client>,
    extra_roots: Vec<reqwest::Certificate>,
    /// An environment's own proxy (`DT_ENVIRONMENTS` `proxy`), instead of `HTTPS_PROXY`.
    proxy: Option<reqwest::Proxy>,
}

impl HttpClient {
    /// Checks `extra_ca_pem` (the `DT_CA_BUNDLE` file) now, so a bad bundle stops start-up.
    pub fn new(extra_ca_pem: Option<&[u8]>) -> anyhow::Result<Arc<Self>> {
        Self::with_proxy(extra_ca_pem, None)
    }

    /// A client with its own proxy for every request (an environment's `proxy`).
    pub fn with_proxy(
        extra_ca_pem: Option<&[u8]>,
        proxy: Option<&url::Url>,
    ) -> anyhow::Result<Arc<Self>> {
        let proxy = proxy
            .map(|url| {
                reqwest::Proxy::all(url.as_str()).map_err(|_| {
                    anyhow::anyhow!(
                        "proxy: expected a proxy URL such as http://proxy.internal:3128"
                    )
                })
            })
            .transpose()?;
        let extra_roots = match extra_ca_pem {
            Some(pem) => {
                let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| {
                    anyhow::anyhow!("DT_CA_BUNDLE: expected a PEM file of CA certificates")
                })?;
                if certs.is_empty() {
                    anyhow::bail!("DT_CA_BUNDLE: the file holds no PEM certificates");
                }
                certs
            }
            None => Vec::new(),
        };
        Ok(Arc::new(Self {
            cell: tokio::sync::OnceCell::new(),
            extra_roots,
            proxy,
        }))
    }

    /// The client, built on first use.
    pub async fn get(&self) -> Result<&reqwest::Client, DynatraceError> {
        self.cell
            .get_or_try_init(|| async {
                let builder = self.builder();
                tokio::task::spawn_blocking(move || builder.build())
                    .await
                    .map_err(|e| {
                        DynatraceError::Network(format!("building the HTTPS client: {e}"))
                    })?
                    .map_err(|e| DynatraceError::Network(format!("building the HTTPS client: {e}")))
            })
            .await
    }

    fn builder(&self) -> reqwest::ClientBuilder {
        crate::crypto::install();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("dynatrace-mcp/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(5))
            .pool_idle_timeout(std::time::Duration::from_secs(50))
            .redirect(reqwest::redirect::Policy::none());
        if !self.extra_roots.is_empty() {
            builder = builder.tls_certs_merge(self.extra_roots.clone());
        }
        if let Some(proxy) = &self.proxy {
            builder = builder.proxy(proxy.clone());
        }
        builder
    }
}

/// Sends `builder` (a request to Dynatrace: `method` `url`) and reads its answer with `read`,
/// in a `CLIENT` span when traces are on, whose `traceparent` goes with the request. Returns the
/// status and what `read` made of the response.
pub(crate) async fn send_traced<T, Fut>(
    builder: reqwest::RequestBuilder,
    (method, url): (&reqwest::Method, &str),
    resend_count: u32,
    what: &'static str,
    read: impl FnOnce(reqwest::Response) -> Fut,
) -> Result<(u16, T), DynatraceError>
where
    Fut: std::future::Future<Output = Result<T, DynatraceError>>,
{
    let span = crate::telemetry::Outbound::start(method, url, resend_count);
    let builder = match &span {
        Some(span) => builder.headers(span.headers()),
        None => builder,
    };
    let sent: Result<(u16, T), DynatraceError> = async {
        let response = builder
            .send()
            .await
            .map_err(|e| auth::transport_error(e, what))?;
        let status = response.status().as_u16();
        Ok((status, read(response).await?))
    }
    .await;
    if let Some(span) = span {
        span.finish(match &sent {
            Ok((status, _)) => Ok(*status),
            Err(e) => Err(e.kind()),
        });
    }
    sent
}
