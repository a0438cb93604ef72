//! Documents (dashboards, notebooks): `/platform/document/v1/documents` (shapes from
//! `@dynatrace-sdk/client-document`). Create is `multipart/form-data`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{ApiBody, ApiRequest, DynatraceClient};
use super::error::DynatraceError;
use crate::deadline::Deadline;

const BASE: &str = "/platform/document/v1/documents";
pub const SCOPE_READ: &str = "document:documents:read";
pub const SCOPE_WRITE: &str = "document:documents:write";

/// `DocumentMetaData` (the fields a tool shows; the rest is kept).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentMetadata {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub version: Value,
    #[serde(default)]
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_private: Option<bool>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub modification_info: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentList {
    #[serde(default)]
    pub documents: Vec<DocumentMetadata>,
    #[serde(default)]
    pub total_count: u64,
}

impl DynatraceClient {
    /// `GET /documents?filter=…&page-size=…&sort=…`.
    pub async fn list_documents(
        &self,
        filter: &str,
        page_size: u32,
        deadline: Deadline,
    ) -> Result<DocumentList, DynatraceError> {
        let request = ApiRequest::get(BASE, SCOPE_READ, "the documents")
            .query("filter", filter)
            .query("page-size", page_size.to_string())
            .query("sort", "-modificationInfo.lastModifiedTime");
        self.call(&request, deadline).await?.json("documents")
    }

    /// `POST /documents` as multipart: name, type, description and the JSON content.
    pub async fn create_document(
        &self,
        name: &str,
        kind: &str,
        description: Option<&str>,
        content: &Value,
        deadline: Deadline,
    ) -> Result<DocumentMetadata, DynatraceError> {
        let boundary = format!("dynatrace-mcp-{:016x}", rand::random::<u64>());
        let mut body = String::new();
        let mut text_part = |name: &str, value: &str| {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        };
        text_part("name", name);
        text_part("type", kind);
        if let Some(description) = description {
            text_part("description", description);
        }
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"content.json\"\r\nContent-Type: application/json\r\n\r\n{}\r\n--{boundary}--\r\n",
            serde_json::to_string(content).expect("JSON serializes")
        ));
        let request = ApiRequest {
            body: Some(ApiBody::Raw {
                content_type: format!("multipart/form-data; boundary={boundary}"),
                bytes: Bytes::from(body),
            }),
            ..ApiRequest::post_empty(BASE, SCOPE_WRITE, "the documents")
        };
        self.call(&request, deadline).await?.json("document")
    }
}
