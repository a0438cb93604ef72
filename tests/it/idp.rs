//! Real identity providers on loopback for the OAuth tests: `oidc-provider` (a certified OpenID
//! provider, npm, run with Node 22 from the tools cache) and moto's Cognito user pools. Nothing
//! here signs a token itself: the providers issue every token the end-to-end tests send.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// `tests/idp/oidc-provider.mjs`: clients `reader` (dynatrace:read), `analyst` (+ davis),
/// `operator` (+ write), `none` (no scope), each with secret `<id>-secret`; JWT access tokens
/// for the configured resource; `POST /_test/rotate` rotates the signing key.
pub struct OidcProvider {
    pub issuer: String,
    http: reqwest::Client,
    _child: tokio::process::Child,
}

fn tool(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: run scripts/test.sh, or `scripts/test-tools.sh python node` and `source .cache/tools/env.sh`"
        )
    })
}

fn repo_path(relative: &str) -> String {
    format!("{}/{relative}", env!("CARGO_MANIFEST_DIR"))
}

impl OidcProvider {
    /// Starts the provider; its access tokens are for `resource` (and a second, other resource).
    pub async fn start(resource: &str) -> Self {
        let mut child = tokio::process::Command::new(tool("NODE22"))
            .arg(repo_path("tests/idp/oidc-provider.mjs"))
            .args(["--port", "0", "--resource", resource])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts oidc-provider");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("oidc-provider announces itself within 30 s")
            .unwrap()
            .expect("oidc-provider printed its issuer");
        let ready: Value = serde_json::from_str(&line).unwrap();
        Self {
            issuer: ready["issuer"].as_str().unwrap().to_string(),
            http: reqwest::Client::new(),
            _child: child,
        }
    }

    /// A client-credentials access token of `client` for `resource`.
    pub async fn token(&self, client: &str, scope: &str, resource: &str) -> String {
        let response = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(format!("{client}-secret")))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("resource", resource),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "token request for {client}: {body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// Replaces the signing key by a new one with a new `kid`.
    pub async fn rotate(&self) {
        let status = self
            .http
            .post(format!("{}/_test/rotate", self.issuer))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "rotation answered {status}");
    }

    /// How many times the JWKS was fetched.
    pub async fn jwks_fetches(&self) -> u64 {
        let stats: Value = self
            .http
            .get(format!("{}/_test/stats", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["jwks_fetches"].as_u64().unwrap()
    }
}

/// moto's server, for Cognito user pools.
pub struct Moto {
    pub url: String,
    _child: tokio::process::Child,
}

impl Moto {
    pub async fn start() -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new(tool("MOTO_SERVER"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("moto_server starts");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..150 {
            if reqwest::get(format!("{url}/moto-api/")).await.is_ok() {
                return Self { url, _child: child };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not answer on {url}");
    }

    /// A new user pool (`tests/idp/cognito.py`): its issuer, JWKS URL, clients and the tokens
    /// moto issued (`alice_access`, `alice_id`, `bob_access`, …).
    pub async fn cognito_pool(&self) -> Value {
        let output = tokio::process::Command::new(tool("PYTHON"))
            .arg(repo_path("tests/idp/cognito.py"))
            .args(["--endpoint", &self.url])
            .output()
            .await
            .expect("python runs cognito.py");
        assert!(
            output.status.success(),
            "cognito.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }
}
