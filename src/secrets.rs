//! Reads the Secrets Manager secret named by `DT_SECRET_ID` (or `MCP_SECRET_ID`) once, at cold
//! start, with the real AWS SDK. Tests point it at a local Secrets Manager API with
//! `AWS_ENDPOINT_URL`.
//!
//! Lambda's init phase is capped at 10 s, so the call has short timeouts and one retry. Failures
//! become one `ConfigError` line that names the secret id and what to check; AWS error messages
//! never contain the secret's value.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use secrecy::SecretString;

use crate::config::ConfigError;

/// The secret's `SecretString`.
pub async fn read_secret(secret_id: &str) -> Result<String, ConfigError> {
    let client = client("DT_SECRET_ID").await?;
    get(&client, "DT_SECRET_ID", secret_id).await
}

/// Several secrets at once (the environments' own, `DT_ENVIRONMENTS`), in the order asked, with
/// one client: each failure is its own error, so one unreadable secret names itself.
pub async fn read_secrets(secret_ids: &[&str]) -> Vec<Result<SecretString, ConfigError>> {
    let variable = "DT_ENVIRONMENTS";
    let client = match client(variable).await {
        Ok(client) => client,
        Err(e) => return secret_ids.iter().map(|_| Err(e.clone())).collect(),
    };
    futures::future::join_all(secret_ids.iter().map(|id| {
        let client = &client;
        async move { get(client, variable, id).await.map(SecretString::from) }
    }))
    .await
}

async fn client(variable: &str) -> Result<aws_sdk_secretsmanager::Client, ConfigError> {
    let config = crate::aws::load(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(2))
            .operation_attempt_timeout(Duration::from_secs(3))
            .operation_timeout(Duration::from_secs(7))
            .build(),
        RetryConfig::standard().with_max_attempts(2),
    )
    .await;
    if config.region().is_none() {
        return Err(ConfigError::new(
            variable,
            "no AWS region is configured to read the secret from: set AWS_REGION (Lambda and ECS set it for you)",
        ));
    }
    Ok(aws_sdk_secretsmanager::Client::new(&config))
}

async fn get(
    client: &aws_sdk_secretsmanager::Client,
    variable: &str,
    secret_id: &str,
) -> Result<String, ConfigError> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|error| {
            let problem = match &error {
                SdkError::ServiceError(service) => {
                    let code = service.err().code().unwrap_or("ServiceError");
                    let hint = match code {
                        "ResourceNotFoundException" => {
                            "no such secret in this account and region; check the name or ARN and AWS_REGION"
                        }
                        "AccessDeniedException" => {
                            "access denied; the role needs secretsmanager:GetSecretValue on this secret (and kms:Decrypt for a customer-managed key)"
                        }
                        "DecryptionFailure" => "the secret could not be decrypted; check the KMS key policy",
                        _ => "Secrets Manager refused the request",
                    };
                    format!("reading secret `{secret_id}` failed: {code}: {hint}")
                }
                SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => format!(
                    "reading secret `{secret_id}` failed: Secrets Manager could not be reached ({}); check network access or a VPC endpoint",
                    DisplayErrorContext(&error)
                ),
                _ => format!(
                    "reading secret `{secret_id}` failed: {}",
                    DisplayErrorContext(&error)
                ),
            };
            ConfigError::new(variable, problem)
        })?;
    output.secret_string().map(str::to_string).ok_or_else(|| {
        ConfigError::new(
            variable,
            format!("secret `{secret_id}` has no SecretString (a binary secret?); store the settings as a JSON string"),
        )
    })
}
