//! The stdio front door: the same MCP handler over stdin/stdout. Stdout carries only JSON-RPC;
//! logs go to stderr.

use std::sync::Arc;

use rmcp::ServiceExt;

use crate::mcp::McpServer;
use crate::startup::AppState;

/// Serves MCP on stdin/stdout until the client closes stdin.
pub async fn serve(state: Arc<AppState>) -> anyhow::Result<()> {
    let server = McpServer::for_stdio(state);
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| anyhow::anyhow!("stdio transport failed to start: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| anyhow::anyhow!("stdio transport stopped: {e}"))?;
    Ok(())
}
