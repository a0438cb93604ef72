//! Browser origins (`MCP_ALLOWED_ORIGINS`): parsed once, matched exactly, and answered with CORS.
//!
//! An origin is a scheme, a host and a port. An entry written without a port means the scheme's
//! default port (443, 80), as a browser serializes it; `:*` means any port. (rmcp, which checks
//! `Origin` on MCP requests too, would read a portless entry as any port: entries are handed to it
//! with the port spelled out.)
//!
//! Browser clients need CORS besides: a preflight (`OPTIONS`) is answered here, before
//! authentication (browsers send preflights without credentials), and answers to allowed origins
//! carry `Access-Control-Allow-Origin` and expose the headers an MCP client reads
//! (`WWW-Authenticate` for OAuth discovery, `Mcp-Session-Id`, `X-Request-Id`).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Port {
    Any,
    Exact(u16),
}

/// One allowed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigin {
    /// `null` (sandboxed frames, `file:` pages).
    Null,
    Tuple {
        scheme: String,
        host: String,
        port: Port,
    },
}

impl AllowedOrigin {
    /// `https://app.example.com`, `http://localhost:*`, `https://app.example.com:8443`, `null`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("null") {
            return Ok(Self::Null);
        }
        let (base, any_port) = match raw.strip_suffix(":*") {
            Some(base) => (base, true),
            None => (raw, false),
        };
        let (scheme, rest) = base
            .split_once("://")
            .ok_or_else(|| format!("`{raw}` has no scheme (e.g. https://app.example.com)"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return Err(format!("`{raw}`: the scheme must be http or https")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{raw}` is not an origin: no path, query or user (e.g. https://app.example.com)"
            ));
        }
        // `[::1]:3000` keeps its brackets; the port is what follows the last `:` outside them.
        let (host, port_text) = match authority.strip_prefix('[') {
            Some(v6) => {
                let end = v6
                    .find(']')
                    .ok_or_else(|| format!("`{raw}`: an IPv6 host needs its closing ]"))?;
                let host = &authority[..end + 2];
                match &v6[end + 1..] {
                    "" => (host, None),
                    rest => (
                        host,
                        Some(rest.strip_prefix(':').ok_or_else(|| {
                            format!("`{raw}`: expected :port after the IPv6 host")
                        })?),
                    ),
                }
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match (port_text, any_port) {
            (Some(_), true) => return Err(format!("`{raw}` names a port and :*")),
            (Some(port), false) => Port::Exact(
                port.parse::<u16>()
                    .map_err(|_| format!("`{raw}`: the port must be a number or *"))?,
            ),
            (None, true) => Port::Any,
            (None, false) => Port::Exact(default),
        };
        if host.is_empty() {
            return Err(format!("`{raw}` has no host"));
        }
        Ok(Self::Tuple {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether a request's `Origin` header value is this origin.
    pub fn matches(&self, origin: &str) -> bool {
        let Ok(seen) = Self::parse(origin) else {
            return false;
        };
        match (self, seen) {
            (Self::Null, Self::Null) => true,
            (
                Self::Tuple { scheme, host, port },
                Self::Tuple {
                    scheme: s,
                    host: h,
                    port: Port::Exact(p),
                },
            ) => {
                *scheme == s
                    && *host == h
                    && match port {
                        Port::Any => true,
                        Port::Exact(allowed) => *allowed == p,
                    }
            }
            _ => false,
        }
    }
}

/// The form rmcp reads: the port always spelled out.
impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::Tuple {
                scheme,
                host,
                port: Port::Any,
            } => write!(f, "{scheme}://{host}:*"),
            Self::Tuple {
                scheme,
                host,
                port: Port::Exact(port),
            } => write!(f, "{scheme}://{host}:{port}"),
        }
    }
}

/// Request headers a browser MCP client may send.
pub const ALLOW_HEADERS: &str = "content-type, accept, authorization, mcp-protocol-version, mcp-session-id, \
last-event-id, x-mcp-auth-token, x-dynatrace-token, x-dynatrace-tokens, x-request-id";
/// Answer headers a browser MCP client may read.
pub const EXPOSE_HEADERS: &str =
    "www-authenticate, mcp-session-id, mcp-protocol-version, x-request-id";
pub const ALLOW_METHODS: &str = "POST, GET, DELETE, OPTIONS";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_portless_entry_means_the_default_port_only() {
        let o = AllowedOrigin::parse("https://portal.example.com").unwrap();
        assert!(o.matches("https://portal.example.com"));
        assert!(o.matches("https://portal.example.com:443"));
        assert!(!o.matches("https://portal.example.com:8443"));
        assert!(!o.matches("http://portal.example.com"));
        assert!(!o.matches("https://evil.example.com"));
        assert_eq!(o.to_string(), "https://portal.example.com:443");
    }

    #[test]
    fn wildcard_ports_explicit_ports_null_and_ipv6() {
        let any = AllowedOrigin::parse("http://localhost:*").unwrap();
        assert!(any.matches("http://localhost:5173") && any.matches("http://localhost"));
        assert_eq!(any.to_string(), "http://localhost:*");
        let exact = AllowedOrigin::parse("https://App.Example.com:8443/").unwrap();
        assert!(exact.matches("https://app.example.com:8443"));
        assert!(!exact.matches("https://app.example.com"));
        assert!(AllowedOrigin::parse("null").unwrap().matches("null"));
        let v6 = AllowedOrigin::parse("http://[::1]:*").unwrap();
        assert!(v6.matches("http://[::1]:3000"));
        let v6 = AllowedOrigin::parse("http://[::1]").unwrap();
        assert!(v6.matches("http://[::1]") && !v6.matches("http://[::1]:3000"));
    }

    #[test]
    fn non_origins_are_refused() {
        for bad in [
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "https://app.example.com:99999",
            "https://app.example.com:443:*",
            "https://",
        ] {
            assert!(AllowedOrigin::parse(bad).is_err(), "{bad}");
        }
    }
}
