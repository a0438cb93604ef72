//! The published contract: a snapshot of `tools/list` (every tool on), prompts and resources.

use serde_json::{Value, json};

use crate::helpers::*;

async fn everything_on() -> TestApp {
    spawn_with(Options {
        env: vec![
            ("DT_ENABLE_WRITE_TOOLS", "1".into()),
            ("DT_ENABLE_DAVIS_COPILOT", "1".into()),
        ],
        ..Default::default()
    })
    .await
}

/// Any change to a tool's name, description, schema or annotations shows up as a diff of
/// tests/snapshots/tools-list.json. Accept an intended change with UPDATE_SNAPSHOTS=1.
#[tokio::test]
async fn tools_list_matches_the_snapshot() {
    let app = everything_on().await;
    let reply = app.rpc("tools/list", json!({})).await;
    let tools = reply.body["result"]["tools"].clone();
    let actual = serde_json::to_string_pretty(&tools).unwrap() + "\n";
    let path = format!(
        "{}/tests/snapshots/tools-list.json",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        std::fs::write(format!("{path}.new"), &actual).unwrap();
        panic!(
            "tools/list changed: compare {path} with {path}.new (`diff {path} {path}.new`); if the change is intended, \
             run `UPDATE_SNAPSHOTS=1 cargo test --test it tools_list_matches_the_snapshot`"
        );
    }
    let count = tools.as_array().unwrap().len();
    assert_eq!(count, 28, "every tool with every switch on");
}

#[tokio::test]
async fn every_tool_publishes_object_schemas_and_a_title() {
    let app = everything_on().await;
    let reply = app.rpc("tools/list", json!({})).await;
    for tool in reply.body["result"]["tools"].as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}");
        assert!(tool["title"].is_string(), "{name}");
        assert!(
            tool["description"].as_str().unwrap().len() > 40,
            "{name} is described"
        );
        if let Some(output) = tool.get("outputSchema") {
            assert_eq!(output["type"], "object", "{name}");
            assert_no_boolean_property_schema(name, "outputSchema", output);
        }
        assert_no_boolean_property_schema(name, "inputSchema", &tool["inputSchema"]);
        let schema = tool["inputSchema"].to_string();
        assert!(
            !schema.contains("\"format\":\"uint"),
            "{name}: non-standard formats"
        );
    }
}

/// The MCP schema types every `properties` value as an object; the Inspector rejects the whole
/// `tools/list` when one is the boolean schema `true`.
fn assert_no_boolean_property_schema(tool: &str, at: &str, schema: &Value) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "properties" {
                    // A map from property names to schemas, not a schema itself.
                    for (property, sub) in value.as_object().into_iter().flatten() {
                        let at = format!("{at}.properties.{property}");
                        assert!(
                            sub.is_object(),
                            "{tool}: {at} is {sub}, not an object schema"
                        );
                        assert_no_boolean_property_schema(tool, &at, sub);
                    }
                } else {
                    assert_no_boolean_property_schema(tool, &format!("{at}.{key}"), value);
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| assert_no_boolean_property_schema(tool, at, item)),
        _ => {}
    }
}

#[tokio::test]
async fn structured_content_conforms_to_the_output_schema_keys() {
    let app = spawn_app().await;
    let reply = app.rpc("tools/list", json!({})).await;
    let tools = reply.body["result"]["tools"].as_array().unwrap().clone();
    let find = |name: &str| tools.iter().find(|t| t["name"] == name).unwrap().clone();
    for (name, args) in [
        ("list_problems", json!({})),
        (
            "execute_dql",
            json!({"dqlStatement": "fetch logs | limit 2"}),
        ),
        ("list_buckets", json!({})),
        ("get_grail_budget", json!({})),
    ] {
        let schema = find(name)["outputSchema"].clone();
        let result = app.call_tool(name, args).await;
        let structured = result["structuredContent"].as_object().unwrap().clone();
        let properties = schema["properties"].as_object().unwrap();
        for key in structured.keys() {
            assert!(
                properties.contains_key(key),
                "{name}: `{key}` is not in the output schema"
            );
        }
        for required in schema["required"].as_array().cloned().unwrap_or_default() {
            assert!(
                structured.contains_key(required.as_str().unwrap()),
                "{name}: missing required `{required}`"
            );
        }
    }
}

#[tokio::test]
async fn prompts_list_and_render_and_name_missing_arguments() {
    let app = spawn_app().await;
    let reply = app.rpc("prompts/list", json!({})).await;
    let names: Vec<&str> = reply.body["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "entity-deep-dive",
            "daily-summary",
            "explore-bucket",
            "explore-tags"
        ]
    );
    let reply = app.rpc("prompts/get", json!({"name": "entity-deep-dive", "arguments": {"entity_name": "payment-service", "timeframe": "7d"}})).await;
    let text = reply.body["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("\"payment-service\"") && text.contains("7d"),
        "{text}"
    );
    let reply = app
        .rpc(
            "prompts/get",
            json!({"name": "entity-deep-dive", "arguments": {}}),
        )
        .await;
    assert_eq!(reply.body["error"]["code"], -32602, "{}", reply.text);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("entity_name")
    );
    let reply = app.rpc("prompts/get", json!({"name": "explore-bucket", "arguments": {"bucket": "default_logs", "timeframe": "soon"}})).await;
    assert_eq!(reply.body["error"]["code"], -32602);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timeframe")
    );
}

#[tokio::test]
async fn resources_are_listed_and_read_and_unknown_uris_fail() {
    let app = spawn_app().await;
    let reply = app.rpc("resources/list", json!({})).await;
    let uris: Vec<&str> = reply.body["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        vec![
            "dql://reference",
            "dql://rule",
            "ui://dynatrace-mcp/results.html"
        ]
    );
    for uri in &uris[..2] {
        let reply = app.rpc("resources/read", json!({"uri": uri})).await;
        let content = &reply.body["result"]["contents"][0];
        assert_eq!(content["mimeType"], "text/markdown");
        assert!(content["text"].as_str().unwrap().contains("```dql"));
    }
    // The results view (MCP Apps): one HTML document, nothing fetched from the network, and no
    // `csp` domains declared, so hosts apply their restrictive default.
    let reply = app
        .rpc(
            "resources/read",
            json!({"uri": "ui://dynatrace-mcp/results.html"}),
        )
        .await;
    let content = &reply.body["result"]["contents"][0];
    assert_eq!(content["mimeType"], "text/html;profile=mcp-app");
    assert_eq!(content["_meta"], json!({"ui": {"prefersBorder": true}}));
    let html = content["text"].as_str().unwrap();
    assert!(html.starts_with("<!doctype html>") || html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("default-src 'none'"), "the view's own CSP");
    assert!(
        html.len() <= 60 * 1024,
        "the view weighs {} bytes",
        html.len()
    );
    for fetching in [
        "<script src",
        "<link rel=\"stylesheet\" href",
        "fetch(",
        "XMLHttpRequest",
        "eval(",
    ] {
        assert!(
            !html.contains(fetching),
            "the view must not load anything: {fetching}"
        );
    }
    let tools = app.rpc("tools/list", json!({})).await;
    for tool in tools.body["result"]["tools"].as_array().unwrap() {
        let meta = &tool["_meta"]["ui"]["resourceUri"];
        match tool["name"].as_str().unwrap() {
            "execute_dql" | "list_problems" => {
                assert_eq!(meta, "ui://dynatrace-mcp/results.html")
            }
            other => assert!(meta.is_null(), "{other} names no view"),
        }
    }

    let reply = app
        .rpc("resources/read", json!({"uri": "dql://nope"}))
        .await;
    assert!(reply.body["error"].is_object(), "{}", reply.text);
    // SEP-2164: the URI asked for comes back in `data` (the conformance suite checks it).
    assert_eq!(
        reply.body["error"]["data"]["uri"], "dql://nope",
        "{}",
        reply.text
    );
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("dql://reference")
    );
}

/// Every example in the resources is a statement Grail's parser accepts (here: the simulated
/// tenant's `query:verify`, which parses the same grammar subset).
#[tokio::test]
async fn every_dql_example_in_the_resources_verifies() {
    let app = spawn_app().await;
    for uri in ["dql://reference", "dql://rule"] {
        let reply = app.rpc("resources/read", json!({"uri": uri})).await;
        let text = reply.body["result"]["contents"][0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        let blocks: Vec<&str> = text
            .split("```dql\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap())
            .collect();
        assert!(blocks.len() >= 2, "{uri} has examples");
        for block in blocks {
            let result = app
                .call_tool("verify_dql", json!({"dqlStatement": block}))
                .await;
            assert_eq!(
                result["structuredContent"]["valid"],
                Value::Bool(true),
                "{uri}: {block}\n{}",
                text_of(&result)
            );
        }
    }
}
