//! OAuth 2.0 Protected Resource Metadata (RFC 9728) and the `WWW-Authenticate` challenges that
//! point clients to it: how an MCP client that knows only this server's URL finds the
//! authorization server to get a token from.
//!
//! Every URL is built from `MCP_PUBLIC_URL`, never from request headers, so the advertised URLs
//! are the public ones behind an ALB or API Gateway and cannot be steered by a forged `Host`.
//!
//! Where the document is served: RFC 9728 puts it at the origin, `/.well-known/oauth-protected-resource`
//! followed by the resource's path (`/mcp`). Behind an API Gateway stage the public path is
//! `/<stage>/mcp` and only `/<stage>/…` reaches the function, so the challenge then names
//! `/<stage>/.well-known/oauth-protected-resource/mcp`, which arrives here (stage stripped) as
//! `/.well-known/oauth-protected-resource/mcp`. The server answers all of these paths.

use serde_json::json;

use super::OAuthSettings;

pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    /// The serialized document.
    document: String,
    /// Where the challenge says the document is.
    url: String,
}

impl ResourceMetadata {
    /// `scopes`: the scope names of the tool groups this server offers.
    pub fn new(oauth: &OAuthSettings, scopes: &[&str]) -> Self {
        let public = &oauth.public_url;
        let origin = public.origin().ascii_serialization();
        let path = public.path();
        // The part before the endpoint (`/Prod` for `/Prod/mcp`), and the endpoint itself.
        let (prefix, endpoint) = match path.strip_suffix("/mcp") {
            Some(prefix) => (prefix, "/mcp"),
            None => (path.trim_end_matches('/'), ""),
        };
        let url = format!("{origin}{prefix}{WELL_KNOWN}{endpoint}");
        let document = json!({
            "resource": public.as_str(),
            "authorization_servers": [oauth.issuer],
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": crate::SERVER_NAME,
        })
        .to_string();
        Self { document, url }
    }

    pub fn document(&self) -> &str {
        &self.document
    }

    /// The metadata URL clients are told about.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `WWW-Authenticate` value of a 401 (`error` set when a token was presented and refused)
    /// or a 403 (`error="insufficient_scope"`), naming the scopes to ask for.
    pub fn challenge(&self, error: Option<(&str, &str)>, scope: &str) -> String {
        let mut value = String::from("Bearer");
        let mut params = Vec::new();
        if let Some((code, description)) = error {
            params.push(format!("error=\"{}\"", quoted(code)));
            params.push(format!("error_description=\"{}\"", quoted(description)));
        }
        params.push(format!("resource_metadata=\"{}\"", quoted(&self.url)));
        if !scope.is_empty() {
            params.push(format!("scope=\"{}\"", quoted(scope)));
        }
        value.push(' ');
        value.push_str(&params.join(", "));
        value
    }
}

/// Whether a request path is one the metadata is served at: the bare well-known path, or it
/// followed by any resource path (`/mcp`, `/Prod/mcp`).
pub fn is_metadata_path(path: &str) -> bool {
    path == WELL_KNOWN
        || path
            .strip_prefix(WELL_KNOWN)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A quoted-string value (RFC 9110): no quotes, backslashes or control characters inside.
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    fn oauth(public: &str) -> OAuthSettings {
        OAuthSettings {
            issuer: "https://idp.example.com".into(),
            public_url: Url::parse(public).unwrap(),
            audiences: vec![public.into()],
            jwks_url: None,
            client_ids: vec![],
        }
    }

    #[test]
    fn the_document_names_the_public_resource_and_issuer() {
        let m = ResourceMetadata::new(&oauth("https://mcp.example.com/mcp"), &["dynatrace:read"]);
        let doc: serde_json::Value = serde_json::from_str(m.document()).unwrap();
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
        assert_eq!(doc["authorization_servers"][0], "https://idp.example.com");
        assert_eq!(doc["scopes_supported"][0], "dynatrace:read");
        assert_eq!(doc["bearer_methods_supported"][0], "header");
        assert_eq!(
            m.url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
    }

    #[test]
    fn a_stage_prefix_keeps_the_metadata_reachable_through_the_stage() {
        let m = ResourceMetadata::new(
            &oauth("https://abc.execute-api.eu-central-1.amazonaws.com/Prod/mcp"),
            &[],
        );
        assert_eq!(
            m.url(),
            "https://abc.execute-api.eu-central-1.amazonaws.com/Prod/.well-known/oauth-protected-resource/mcp"
        );
        let root = ResourceMetadata::new(&oauth("https://mcp.example.com/"), &[]);
        assert_eq!(
            root.url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn challenges_carry_metadata_scope_and_error() {
        let m = ResourceMetadata::new(&oauth("https://mcp.example.com/mcp"), &[]);
        assert_eq!(
            m.challenge(None, "dynatrace:read dynatrace:write"),
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", scope=\"dynatrace:read dynatrace:write\""
        );
        let c = m.challenge(Some(("invalid_token", "the \"token\" expired\n")), "");
        assert!(
            c.starts_with(
                "Bearer error=\"invalid_token\", error_description=\"the 'token' expired\""
            ),
            "{c}"
        );
        assert!(http::HeaderValue::from_str(&c).is_ok());
    }

    #[test]
    fn metadata_paths() {
        assert!(is_metadata_path("/.well-known/oauth-protected-resource"));
        assert!(is_metadata_path(
            "/.well-known/oauth-protected-resource/mcp"
        ));
        assert!(is_metadata_path(
            "/.well-known/oauth-protected-resource/Prod/mcp"
        ));
        assert!(!is_metadata_path("/.well-known/oauth-protected-resourcex"));
        assert!(!is_metadata_path("/mcp"));
    }
}
