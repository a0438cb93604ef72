//! The configuration parser: `Settings::from_source` for every front door, over a valid
//! configuration with some of `KNOWN_VARIABLES` set to near-valid or arbitrary values, and
//! `Source::overlay_secret` with an arbitrary secret.
//!
//! Properties: no panic; every error names a variable (one of `KNOWN_VARIABLES` or the secret's
//! id, possibly marked as coming from the secret); neither an error nor the accepted settings'
//! `Debug` and `summary()` ever show the value of a secret variable.

use dynatrace_mcp::config::{ConfigError, FrontDoor, KNOWN_VARIABLES, Settings, Source};
use serde_json::{Map, Value};

use crate::input::Input;

const SECRET_VARIABLES: &[&str] = &[
    "OAUTH_CLIENT_SECRET",
    "DT_PLATFORM_TOKEN",
    "MCP_AUTH_TOKEN",
    "MCP_SIGNING_KEY",
];

/// Values close to valid, per variable, so the parser gets past its first checks.
fn samples(variable: &str) -> &'static [&'static str] {
    match variable {
        "DT_ENVIRONMENT" => &[
            "https://abc12345.apps.dynatrace.com",
            "https://abc12345.apps.dynatrace.com/",
            "http://localhost:8080",
            "http://[::1]:1/",
            "https://abc12345.live.dynatrace.com",
            "ftp://x",
            "https://user:pw@abc.apps.dynatrace.com",
            "https://abc.apps.dynatrace.com?x#y",
        ],
        "DT_SSO_URL" | "MCP_OAUTH_ISSUER" | "MCP_OAUTH_JWKS_URL" => &[
            "https://sso.dynatrace.com/sso/oauth2/token",
            "http://localhost:9/x",
            "https://idp.example.com/",
            "not a url",
        ],
        "MCP_PUBLIC_URL" => &[
            "https://mcp.example.com/mcp",
            "https://mcp.example.com/",
            "https://mcp.example.com/other",
        ],
        "OAUTH_CLIENT_ID" => &["dt0s02.SANDBOX", "dt0s02.X"],
        "DT_ACCOUNT_URN" => &[
            "urn:dtaccount:00000000-0000-4000-8000-000000000001",
            "urn:x",
        ],
        "DT_PLATFORM_TOKEN" => &["dt0s16.SANDBOX.platform-token-not-a-real-one", "dt0c01.x"],
        "MCP_LOG_LEVEL" => &["info", "DEBUG", "access", "verbose"],
        "MCP_LOG_FORMAT" => &["json", "text", "pretty"],
        "MCP_ALLOWED_HOSTS" => &["*", "mcp.example.com,mcp.example.com:443", "https://x/"],
        "MCP_ALLOWED_ORIGINS" => &[
            "https://app.example.com,http://localhost:*",
            "*",
            "null",
            "https://a:99999",
        ],
        "MCP_ALLOW_UNAUTHENTICATED"
        | "DT_ENABLE_WRITE_TOOLS"
        | "DT_ENABLE_DAVIS_COPILOT"
        | "MCP_TRUST_GATEWAY_AUTHORIZER"
        | "MCP_STATE_FAIL_CLOSED" => &["1", "0", "true", "off", "maybe"],
        "DT_TOKEN_PASSTHROUGH" => &["1", "0", "required", "optional", "sometimes"],
        "MCP_AUDIT_LOG" => &["1", "0", "on", "off"],
        "MCP_TOOL_TIMEOUT_SECONDS"
        | "MCP_MAX_REQUEST_BYTES"
        | "MCP_RESULT_MAX_BYTES"
        | "MCP_CONFIRMATION_TTL_SECONDS"
        | "MCP_HEADER_READ_TIMEOUT_SECONDS"
        | "MCP_MAX_CONCURRENT_REQUESTS"
        | "MCP_MAX_CONNECTIONS"
        | "MCP_SHUTDOWN_GRACE_SECONDS" => &[
            "0",
            "1",
            "25",
            "900",
            "901",
            "4096",
            "1048576",
            "18446744073709551616",
            "-1",
            "1e3",
        ],
        "DT_GRAIL_QUERY_BUDGET_GB" | "DT_GRAIL_USER_BUDGET_GB" | "DT_QUERY_SCAN_LIMIT_GB" => &[
            "0", "-1", "1000", "0.5", "NaN", "inf", "1e308", "-0", "1000001",
        ],
        "MCP_RATE_LIMIT" => &["60/m", "10/s", "0/m", "5", "5/x", "1/h"],
        "MCP_AUTH_TOKEN" => &["test-auth-token-0123456789abcdef", "short"],
        "MCP_SIGNING_KEY" => &["0123456789abcdef0123456789abcdef", "short"],
        "MCP_AUTH_TOKEN_SCOPES" => &["read", "read,davis,write", "dynatrace:read", "admin"],
        "MCP_OAUTH_SCOPE_READ" | "MCP_OAUTH_SCOPE_DAVIS" | "MCP_OAUTH_SCOPE_WRITE" => {
            &["dynatrace:read", "mcp/write", "a b", "dynatrace:davis"]
        }
        "MCP_STATE_TABLE" => &["dynatrace-mcp-state", "ab", "bad name"],
        "DT_CA_BUNDLE" => &["/etc/hostname", "/nonexistent.pem", "/"],
        _ => &[],
    }
}

fn base() -> Vec<(String, String)> {
    [
        ("DT_ENVIRONMENT", "https://abc12345.apps.dynatrace.com"),
        ("OAUTH_CLIENT_ID", "dt0s02.SANDBOX"),
        (
            "OAUTH_CLIENT_SECRET",
            "dt0s02.SANDBOX.demo-client-secret-not-a-real-one",
        ),
        (
            "DT_ACCOUNT_URN",
            "urn:dtaccount:00000000-0000-4000-8000-000000000001",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub fn fuzz_one(data: &[u8]) {
    let mut input = Input::new(data);
    let mut pairs = if input.one_in(8) { Vec::new() } else { base() };
    // Now and then every variable at once; usually a few.
    let variables: Vec<String> = if input.one_in(8) {
        KNOWN_VARIABLES.iter().map(|v| v.to_string()).collect()
    } else {
        (0..input.below(8))
            .map(|_| {
                if input.one_in(16) {
                    input.string(16)
                } else {
                    input.pick(KNOWN_VARIABLES).to_string()
                }
            })
            .collect()
    };
    for variable in variables {
        let value = value_for(&mut input, &variable);
        pairs.retain(|(k, _)| *k != variable);
        pairs.push((variable, value));
    }
    let front_door = input.pick(&[FrontDoor::Http, FrontDoor::Lambda, FrontDoor::Stdio]);
    let secret = if input.one_in(4) {
        Some(secret_json(&mut input))
    } else {
        None
    };
    let secret_values = |pairs: &[(String, String)], secret: &Option<String>| -> Vec<String> {
        let mut values: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| SECRET_VARIABLES.contains(&k.as_str()))
            .map(|(_, v)| v.trim().to_string())
            .collect();
        if let Some(Value::Object(map)) =
            secret.as_deref().and_then(|s| serde_json::from_str(s).ok())
        {
            values.extend(
                map.iter()
                    .filter(|(k, _)| SECRET_VARIABLES.contains(&k.as_str()))
                    .filter_map(|(_, v)| v.as_str().map(|s| s.trim().to_string())),
            );
        }
        values
    };

    let first = parse(&pairs, &secret, front_door);
    // The same configuration with every secret value disguised (same length, letters and digits
    // rotated): a secret value that shows in both outputs is echoed, not a coincidence.
    let disguised_pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| {
            if SECRET_VARIABLES.contains(&k.as_str()) {
                (k.clone(), disguise(v))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let disguised_secret = secret.as_deref().map(|s| match serde_json::from_str(s) {
        Ok(Value::Object(map)) => Value::Object(
            map.into_iter()
                .map(|(k, v)| match v {
                    Value::String(text) if SECRET_VARIABLES.contains(&k.as_str()) => {
                        (k, Value::String(disguise(&text)))
                    }
                    v => (k, v),
                })
                .collect(),
        )
        .to_string(),
        _ => s.to_string(),
    });
    let second = parse(&disguised_pairs, &disguised_secret, front_door);
    for value in secret_values(&pairs, &secret) {
        // Short or letterless values occur in the messages' own text.
        if value.chars().filter(char::is_ascii_alphanumeric).count() < 6 {
            continue;
        }
        let shown = disguise(&value);
        assert!(
            !(first.contains(&value) && second.contains(&shown)),
            "a secret value is shown: {value:?} in {first}"
        );
    }
}

/// Parses and checks the outcome; returns everything the outcome shows (the error line, or the
/// settings' Debug and summary).
fn parse(pairs: &[(String, String)], secret: &Option<String>, front_door: FrontDoor) -> String {
    let mut source = Source::from_pairs(pairs.iter().cloned());
    if let Some(secret) = secret {
        match source.overlay_secret(secret) {
            Ok(unknown) => {
                for key in unknown {
                    assert!(!KNOWN_VARIABLES.contains(&key.as_str()));
                }
            }
            Err(e) => {
                check_error(&e);
                return e.to_string();
            }
        }
    }
    match Settings::from_source(&source, front_door) {
        Ok(settings) => format!("{settings:?} {:?}", settings.summary()),
        Err(e) => {
            check_error(&e);
            e.to_string()
        }
    }
}

fn check_error(e: &ConfigError) {
    let name = e
        .variable
        .trim_end_matches(" (from the secret)")
        .trim_end_matches(" (in secret)");
    assert!(
        KNOWN_VARIABLES.contains(&name) || name == "DT_SECRET_ID",
        "an error names no known variable: {e}"
    );
    assert!(!e.problem.trim().is_empty(), "an error says nothing: {e:?}");
}

fn value_for(input: &mut Input, variable: &str) -> String {
    let samples = samples(variable);
    match input.below(4) {
        0 => input.string(64),
        1 if !samples.is_empty() => format!("{}{}", input.pick(samples), input.string(8)),
        _ if !samples.is_empty() => input.pick(samples).to_string(),
        _ => input.string(64),
    }
}

fn secret_json(input: &mut Input) -> String {
    if input.one_in(8) {
        return input.string(64);
    }
    let mut map = Map::new();
    for _ in 0..input.below(6) {
        let key = if input.one_in(8) {
            input.string(12)
        } else {
            input.pick(KNOWN_VARIABLES).to_string()
        };
        let value = if input.one_in(4) {
            input.json(1)
        } else {
            Value::String(value_for(input, &key))
        };
        map.insert(key, value);
    }
    Value::Object(map).to_string()
}

/// Same length and shape, other letters and digits.
fn disguise(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            'a'..='z' => (((c as u8 - b'a' + 13) % 26) + b'a') as char,
            'A'..='Z' => (((c as u8 - b'A' + 13) % 26) + b'A') as char,
            '0'..='9' => (((c as u8 - b'0' + 5) % 10) + b'0') as char,
            c => c,
        })
        .collect()
}
