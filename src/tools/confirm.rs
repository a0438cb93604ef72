//! Confirmation for tools that change things, without sessions.
//!
//! The first call of a write tool returns a preview of exactly what would be sent and a
//! short-lived confirmation token: an HMAC-signed handle binding the tool name to a hash of the
//! planned request. Calling the tool again with the same arguments and that token performs it.
//! A token is refused when the arguments changed (the planned request hashes differently), when
//! it expired, when another caller presents it (the token is bound to the principal that saw the
//! preview), or when it was already used: its nonce is claimed once in the [`crate::state`] store
//! (a conditional write in DynamoDB with `MCP_STATE_TABLE`, so across every instance). When the
//! store cannot record the claim, nothing is done (fail closed): a write that cannot be made
//! single-use is not made.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{ToolContext, ToolError, ToolOutput};
use crate::signing::{HandleError, now_secs};
use crate::state::StateError;

const KIND: &str = "write-confirmation";

#[derive(Serialize, Deserialize)]
struct Payload {
    /// Tool name.
    t: String,
    /// SHA-256 of the planned request.
    h: String,
    /// Nonce.
    n: String,
    /// Expiry (Unix seconds), for the replay guard.
    e: u64,
    /// The caller the preview was shown to ([`crate::identity::Principal::binding`]).
    #[serde(default)]
    p: String,
    /// The environment (alias) the action is for.
    #[serde(default)]
    v: String,
}

/// `structuredContent` of a preview.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// Always `confirmation_required`.
    pub status: String,
    /// What the call would do.
    pub action: String,
    /// The request that would be sent to Dynatrace.
    pub request: Value,
    /// Pass this back, with the same arguments, to perform the action.
    pub confirmation_token: String,
    /// Seconds the token stays valid.
    pub expires_in_seconds: u64,
}

/// The outcome of [`check`]: either go ahead, or answer with a preview.
pub enum Confirmation {
    Granted,
    Preview(ToolOutput),
}

fn hash(tool: &str, planned: &Value) -> String {
    // serde_json's map is ordered, so equal requests serialize identically.
    let digest = Sha256::new()
        .chain_update(tool.as_bytes())
        .chain_update(b"\n")
        .chain_update(serde_json::to_vec(planned).expect("JSON serializes"))
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `token` against the planned request, or builds the preview when there is none.
pub async fn check(
    ctx: &ToolContext,
    tool: &str,
    action: String,
    planned: Value,
    token: Option<&str>,
) -> Result<Confirmation, ToolError> {
    let signer = &ctx.state.signer;
    let expected = hash(tool, &planned);
    // With several environments, the preview says which one the action is for.
    let action = if ctx.state.environments.len() > 1 {
        format!(
            "{action} in the environment `{}` ({})",
            ctx.environment.alias,
            ctx.environment.url().base()
        )
    } else {
        action
    };
    let ttl = ctx.state.settings.confirmation_ttl;
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
        let expires_at = now_secs() + ttl.as_secs();
        let token = signer.issue(
            KIND,
            &Payload {
                t: tool.to_string(),
                h: expected,
                n: format!("{:032x}", rand::random::<u128>()),
                e: expires_at,
                p: ctx.principal.binding(),
                v: ctx.environment.alias.clone(),
            },
            ttl,
        );
        let text = format!(
            "Confirmation needed: this would {action}.\nRequest that would be sent:\n```json\n{}\n```\n\
             Show this to the user. To go ahead, call {tool} again with exactly the same arguments plus \
             confirmationToken \"{token}\" (valid for {} s).",
            serde_json::to_string_pretty(&planned).expect("JSON serializes"),
            ttl.as_secs()
        );
        let preview = Preview {
            status: "confirmation_required".into(),
            action,
            request: planned,
            confirmation_token: token,
            expires_in_seconds: ttl.as_secs(),
        };
        return Ok(Confirmation::Preview(
            ToolOutput::text(text).with_structured(&preview),
        ));
    };
    let payload: Payload = signer.open(KIND, token).map_err(|e| match e {
        HandleError::Invalid => ToolError::InvalidArguments(format!(
            "confirmationToken: {e}; call {tool} without confirmationToken to get a new preview"
        )),
        HandleError::Expired(secs) => ToolError::Refused(format!(
            "the confirmation expired {secs} s ago: call {tool} again without confirmationToken for a new preview"
        )),
    })?;
    if payload.t != tool {
        return Err(ToolError::Refused(format!(
            "this confirmationToken was issued for {}, not {tool}: call {tool} without it for a preview",
            payload.t
        )));
    }
    if payload.p != ctx.principal.binding() {
        return Err(ToolError::Refused(format!(
            "this confirmationToken was issued to another caller, so nothing was done: call {tool} without it \
             to see the preview yourself"
        )));
    }
    // Tokens from before several environments carry none: they were the default's.
    let issued_for = if payload.v.is_empty() {
        ctx.state.environments.default_environment().alias.clone()
    } else {
        payload.v.clone()
    };
    if !issued_for.eq_ignore_ascii_case(&ctx.environment.alias) {
        return Err(ToolError::Refused(format!(
            "this confirmationToken was issued for the environment `{}`, not `{}`, so nothing was done: \
             call {tool} with environment \"{}\" to go ahead there, or without confirmationToken for a preview here",
            issued_for, ctx.environment.alias, issued_for
        )));
    }
    if payload.h != expected {
        return Err(ToolError::Refused(format!(
            "the arguments differ from the ones previewed with this confirmationToken, so nothing was done: \
             call {tool} without confirmationToken to preview the new arguments"
        )));
    }
    let claimed = ctx
        .state
        .store
        // Kept a minute past the token's own expiry, so no clock rounding reopens it.
        .claim(&format!("confirm#{}", payload.n), payload.e + 60, ctx.deadline)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, tool, "a confirmation could not be recorded; the write was not made");
            ToolError::Refused(format!(
                "{}, so this confirmation could not be made single-use and nothing was done: call {tool} again \
                 with the same confirmationToken shortly",
                StateError::PUBLIC
            ))
        })?;
    if !claimed {
        return Err(ToolError::Refused(format!(
            "this confirmationToken was already used, so nothing was done again (if an earlier call with it got no \
             answer, check whether it took effect): call {tool} without it for a new preview if the action really \
             should happen twice"
        )));
    }
    Ok(Confirmation::Granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_depend_on_tool_and_request() {
        let a = hash("send_email", &serde_json::json!({"subject": "x"}));
        assert_eq!(a, hash("send_email", &serde_json::json!({"subject": "x"})));
        assert_ne!(a, hash("send_email", &serde_json::json!({"subject": "y"})));
        assert_ne!(a, hash("send_event", &serde_json::json!({"subject": "x"})));
    }
}
