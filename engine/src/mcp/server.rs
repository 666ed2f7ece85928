//! The MCP methods, answered the same over either transport: `initialize` (and the
//! `notifications/initialized` that follows it), `ping`, `tools/list` and `tools/call`.

use serde_json::{Map, Value, json};

use super::{
    rpc::{self, Incoming, Message, RpcError, code},
    tools::{self, Engine},
};

/// The protocol versions spoken, newest first; the newest is offered to a client that asks
/// for one not spoken here.
pub const PROTOCOL_VERSIONS: [&str; 3] = ["2025-06-18", "2025-03-26", "2024-11-05"];

/// What the server tells an assistant about itself when it connects.
const INSTRUCTIONS: &str = "Weir runs flows: graphs of nodes, each a configured component of \
     a module, wired output port to input port by edges that carry a mapping. To build one: \
     list_components for what nodes can be (their settings and ports), validate_flow a \
     document until it has no errors, apply_flow it, then send_message to a node's input port \
     and read_messages to see what each node received and emitted. list_solutions and \
     install_solution install ready-made flows in one step. Everything is done as the caller, \
     with their rights.";

/// The version to speak with a client that asks for `requested`: that one when it is spoken
/// here, else the newest.
pub fn negotiate(requested: &str) -> &'static str {
    PROTOCOL_VERSIONS.iter().find(|v| **v == requested).copied().unwrap_or(PROTOCOL_VERSIONS[0])
}

/// The answer to a message: each request's result or error, and each item that could not be
/// read refused, in order, as an array for a batch; `None` when nothing is answered (only
/// notifications and responses).
pub async fn answer(engine: &dyn Engine, message: Message) -> Option<Value> {
    let mut answers = Vec::new();
    for item in message.items {
        match item {
            Ok(Incoming::Request { id, method, params }) => {
                answers.push(match respond(engine, &method, params).await {
                    Ok(result) => rpc::result(&id, &result),
                    Err(error) => rpc::error(&id, &error),
                });
            }
            Ok(Incoming::Notification { .. } | Incoming::Response) => {}
            Err((id, error)) => answers.push(rpc::error(&id, &error)),
        }
    }
    if message.batch {
        (!answers.is_empty()).then_some(Value::Array(answers))
    } else {
        answers.pop()
    }
}

async fn respond(
    engine: &dyn Engine,
    method: &str,
    mut params: Map<String, Value>,
) -> Result<Value, RpcError> {
    match method {
        "initialize" => {
            let requested =
                params.get("protocolVersion").and_then(Value::as_str).ok_or_else(|| {
                    RpcError::params("initialize: field protocolVersion: a string is required")
                })?;
            Ok(json!({
                "protocolVersion": negotiate(requested),
                "capabilities": { "tools": { "listChanged": false } },
                "serverInfo": { "name": "weir", "version": env!("CARGO_PKG_VERSION") },
                "instructions": INSTRUCTIONS,
            }))
        }
        "ping" => Ok(json!({})),
        // Every tool at once: there are few, so no cursor is needed.
        "tools/list" => Ok(json!({ "tools": tools::list() })),
        "tools/call" => {
            let Some(Value::String(name)) = params.remove("name") else {
                return Err(RpcError::params("tools/call: field name: a string is required"));
            };
            let arguments = match params.remove("arguments") {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(arguments @ Value::Object(_)) => arguments,
                Some(_) => {
                    return Err(RpcError::params("tools/call: field arguments: must be an object"));
                }
            };
            tools::call(engine, &name, arguments).await
        }
        method => Err(RpcError::new(
            code::METHOD_NOT_FOUND,
            format!(
                "no method {method:?}: this server answers initialize, ping, tools/list and \
                 tools/call"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;
    use crate::mcp::tools::Reply;

    /// An engine that answers every request with the same reply, for the protocol's own
    /// cases.
    struct Answers(Reply);

    #[async_trait::async_trait]
    impl Engine for Answers {
        async fn call(&self, _: Method, _: &str, _: Option<&Value>) -> Result<Reply, String> {
            Ok(self.0.clone())
        }
    }

    async fn ask(engine: &dyn Engine, text: &str) -> Value {
        answer(engine, rpc::read(text.as_bytes())).await.unwrap_or_default()
    }

    fn engine(status: u16, body: &str) -> Answers {
        Answers(Reply { status, body: body.as_bytes().to_vec() })
    }

    #[tokio::test]
    async fn initialize_offers_the_version_asked_for_when_spoken_else_the_newest() {
        let engine = engine(200, "{}");
        let asked = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":
            {"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
        let answered = ask(&engine, asked).await;
        assert_eq!(answered["result"]["protocolVersion"], "2025-03-26");
        assert_eq!(answered["result"]["capabilities"]["tools"]["listChanged"], false);
        let future = asked.replace("2025-03-26", "2099-01-01");
        assert_eq!(ask(&engine, &future).await["result"]["protocolVersion"], "2025-06-18");
        let missing = r#"{"jsonrpc":"2.0","id":2,"method":"initialize","params":{}}"#;
        assert_eq!(ask(&engine, missing).await["error"]["code"], code::INVALID_PARAMS);
    }

    #[tokio::test]
    async fn unknown_methods_tools_and_misfit_arguments_are_protocol_errors() {
        let engine = engine(200, "{}");
        let unknown = ask(&engine, r#"{"jsonrpc":"2.0","id":1,"method":"resources/list"}"#).await;
        assert_eq!(unknown["error"]["code"], code::METHOD_NOT_FOUND);
        let no_tool = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"rm"}}"#;
        let answered = ask(&engine, no_tool).await;
        assert_eq!(answered["error"]["code"], code::INVALID_PARAMS);
        assert!(answered["error"]["message"].as_str().is_some_and(|m| m.contains("apply_flow")));
        let misfit = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call",
            "params":{"name":"read_flow","arguments":{"flow":7}}}"#;
        let answered = ask(&engine, misfit).await;
        assert_eq!(answered["error"]["code"], code::INVALID_PARAMS);
        let message = answered["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("read_flow") && message.contains("flow"), "{message}");
        let note = rpc::read(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(answer(&engine, note).await, None);
    }

    #[tokio::test]
    async fn a_batch_is_answered_in_order_without_its_notifications() {
        let engine = engine(200, "{}");
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},
            {"jsonrpc":"2.0","method":"notifications/initialized"},
            {"jsonrpc":"2.0","id":2,"method":"nope"}, "x"]"#;
        let answered = ask(&engine, batch).await;
        let answers = answered.as_array().cloned().unwrap_or_default();
        assert_eq!(answers.len(), 3, "{answered}");
        assert_eq!((&answers[0]["id"], &answers[0]["result"]), (&json!(1), &json!({})));
        assert_eq!(answers[1]["error"]["code"], code::METHOD_NOT_FOUND);
        assert_eq!(
            (&answers[2]["id"], &answers[2]["error"]["code"]),
            (&Value::Null, &json!(-32600))
        );
        let notes = r#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
        assert_eq!(answer(&engine, rpc::read(notes.as_bytes())).await, None);
    }

    #[tokio::test]
    async fn every_tool_has_an_object_schema_and_a_refusal_is_a_tool_error_naming_it() {
        let listed = ask(&engine(200, "{}"), r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .await["result"]["tools"]
            .clone();
        let tools = listed.as_array().cloned().unwrap_or_default();
        assert_eq!(tools.len(), 9);
        for tool in &tools {
            assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
            assert!(tool["description"].as_str().is_some_and(|d| d.len() > 40), "{tool}");
        }
        let refused = engine(
            403,
            r#"{"error":{"kind":"forbidden","message":"may not update flows.weir.dev"}}"#,
        );
        let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"apply_flow",
            "arguments":{"document":{"flow":{"metadata":{"name":"f"}},"nodes":[]}}}}"#;
        let answered = ask(&refused, call).await;
        assert_eq!(answered["result"]["isError"], true);
        let text = answered["result"]["content"][0]["text"].as_str().unwrap_or_default();
        assert_eq!(
            text,
            "apply_flow: save flow f: may not update flows.weir.dev (HTTP 403, Forbidden)"
        );
        let bad_name = call.replace(r#""name":"f""#, r#""name":"../x""#);
        let answered = ask(&refused, &bad_name).await;
        let text = answered["result"]["content"][0]["text"].as_str().unwrap_or_default();
        assert!(text.contains("argument document.flow.metadata.name"), "{text}");
    }
}
