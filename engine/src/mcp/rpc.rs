//! JSON-RPC 2.0 as MCP uses it: reading one message with bounds on its size and nesting,
//! telling requests from notifications and responses, and writing answers and errors.

use serde_json::{Map, Value, json};

/// The largest message read: a flow document of many nodes, as the API reads at most.
pub const MAX_MESSAGE_BYTES: usize = 8 << 20;

/// How deep arrays and objects of a message may nest: a flow document needs far less, and a
/// reader follows nesting by recursion.
pub const MAX_DEPTH: usize = 64;

/// The JSON-RPC error codes MCP uses.
pub mod code {
    /// The message is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The message is JSON but not a request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The method's parameters do not fit it (an unknown tool, arguments of the wrong shape).
    pub const INVALID_PARAMS: i64 = -32602;
    /// A fault of the server.
    pub const INTERNAL_ERROR: i64 = -32603;
}

/// A JSON-RPC error: its code and what went wrong, lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// One of [`code`].
    pub code: i64,
    /// What went wrong and where.
    pub message: String,
}

impl RpcError {
    /// An error of `code`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// Parameters that do not fit.
    pub fn params(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_PARAMS, message)
    }
}

/// One message read.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request: it wants an answer with its id.
    Request {
        /// Its id, a string or a number.
        id: Value,
        /// The method.
        method: String,
        /// Its parameters (an empty object when none).
        params: Map<String, Value>,
    },
    /// A notification: no answer.
    Notification {
        /// The method.
        method: String,
    },
    /// An answer to a request of ours (we send none) or a client's error: nothing to do.
    Response,
}

/// One item of a message: a request, a notification or a response, or why it is none of them,
/// with the id to answer that under (`null` when none could be read, as JSON-RPC says).
pub type Item = Result<Incoming, (Value, RpcError)>;

/// How many items a batch may hold.
pub const MAX_BATCH: usize = 64;

/// A message read: one item, or a batch of them (which MCP 2025-03-26 has clients send), whose
/// answers go back together as an array.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its items; one unless a batch.
    pub items: Vec<Item>,
    /// Whether it is a batch.
    pub batch: bool,
}

impl Message {
    fn one(item: Item) -> Self {
        Self { items: vec![item], batch: false }
    }

    fn refused(code: i64, message: String) -> Self {
        Self::one(Err((Value::Null, RpcError::new(code, message))))
    }
}

/// Reads a message, bounded first in size and nesting.
pub fn read(bytes: &[u8]) -> Message {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Message::refused(
            code::INVALID_REQUEST,
            format!("the message is larger than {} MiB, the most read", MAX_MESSAGE_BYTES >> 20),
        );
    }
    if nesting(bytes) > MAX_DEPTH {
        return Message::refused(
            code::INVALID_REQUEST,
            format!("the message nests deeper than {MAX_DEPTH} levels, the most read"),
        );
    }
    match serde_json::from_slice(bytes) {
        Err(err) => Message::refused(code::PARSE_ERROR, format!("the message is not JSON: {err}")),
        Ok(Value::Array(items)) if items.is_empty() || items.len() > MAX_BATCH => Message::refused(
            code::INVALID_REQUEST,
            format!("a batch holds 1 to {MAX_BATCH} messages, not {}", items.len()),
        ),
        Ok(Value::Array(items)) => {
            Message { items: items.into_iter().map(item).collect(), batch: true }
        }
        Ok(value) => Message::one(item(value)),
    }
}

/// Reads one item of a message.
fn item(value: Value) -> Item {
    let Value::Object(mut message) = value else {
        return Err((
            Value::Null,
            RpcError::new(code::INVALID_REQUEST, "the message is no object"),
        ));
    };
    let id = message.remove("id");
    let answer_id = id.clone().filter(|id| id.is_string() || id.is_number()).unwrap_or_default();
    let invalid =
        |message: &str| (answer_id.clone(), RpcError::new(code::INVALID_REQUEST, message));
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("field jsonrpc: must be \"2.0\""));
    }
    let Some(method) = message.remove("method") else {
        if message.contains_key("result") || message.contains_key("error") {
            return Ok(Incoming::Response);
        }
        return Err(invalid("the message has no method, result or error"));
    };
    let Value::String(method) = method else {
        return Err(invalid("field method: must be a string"));
    };
    let params = match message.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => {
            let error = RpcError::params("field params: must be an object");
            return Err((answer_id, error));
        }
    };
    match id {
        None => Ok(Incoming::Notification { method }),
        Some(id) if id.is_string() || id.is_number() => {
            Ok(Incoming::Request { id, method, params })
        }
        Some(_) => Err(invalid("field id: must be a string or a number")),
    }
}

/// The answer to request `id`.
pub fn result(id: &Value, result: &Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// The error answer to request `id`.
pub fn error(id: &Value, error: &RpcError) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": error.code, "message": error.message },
    })
}

/// How deep the arrays and objects of JSON text nest at most (strings skipped), read without
/// parsing, so a deep message is refused before a parser follows it.
fn nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0_usize, 0, false, false);
    for &byte in bytes {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one item of a message that is no batch.
    fn read_text(text: &str) -> Item {
        let message = read(text.as_bytes());
        assert!(!message.batch && message.items.len() == 1, "{message:?}");
        message.items.into_iter().next().unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn requests_notifications_and_responses_are_told_apart() {
        let request = read_text(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#);
        assert_eq!(
            request,
            Ok(Incoming::Request { id: json!(7), method: "ping".into(), params: Map::new() })
        );
        let note = read_text(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(note, Ok(Incoming::Notification { method: "notifications/initialized".into() }));
        let answer = read_text(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#);
        assert_eq!(answer, Ok(Incoming::Response));
    }

    #[test]
    fn what_is_not_a_request_is_refused_with_its_code_and_id() {
        let code_of = |text: &str| read_text(text).err().map(|(id, e)| (id, e.code));
        assert_eq!(code_of("{oops"), Some((Value::Null, code::PARSE_ERROR)));
        assert_eq!(code_of("[]"), Some((Value::Null, code::INVALID_REQUEST)));
        assert_eq!(code_of("7"), Some((Value::Null, code::INVALID_REQUEST)));
        assert_eq!(
            code_of(r#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#),
            Some((json!(3), code::INVALID_REQUEST))
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#),
            Some((Value::Null, code::INVALID_REQUEST))
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":"x","method":"ping","params":[1]}"#),
            Some((json!("x"), code::INVALID_PARAMS))
        );
    }

    #[test]
    fn deep_and_large_messages_are_refused_before_parsing() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"a":{}{}}}}}"#,
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        let refused = read_text(&deep).err().map(|(_, e)| e);
        assert!(refused.is_some_and(|e| e.message.contains("deeper than 64")));
        // Brackets inside strings are text, not nesting.
        let quoted = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"a":"{}\"["}}}}"#,
            "[".repeat(500)
        );
        assert!(read_text(&quoted).is_ok());
        let large = vec![b' '; MAX_MESSAGE_BYTES + 1];
        let refused = read(&large).items.into_iter().next().and_then(Result::err);
        assert!(refused.is_some_and(|(_, e)| e.message.contains("larger than 8 MiB")));
    }

    #[test]
    fn a_batch_is_read_item_by_item_and_bounded() {
        let batch = read(
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, 7,
            {"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
        );
        assert!(batch.batch);
        assert_eq!(batch.items.len(), 3);
        assert!(matches!(batch.items[0], Ok(Incoming::Request { .. })));
        assert!(
            matches!(&batch.items[1], Err((Value::Null, e)) if e.code == code::INVALID_REQUEST)
        );
        assert!(matches!(batch.items[2], Ok(Incoming::Notification { .. })));
        let many = format!("[{}]", vec!["{}"; MAX_BATCH + 1].join(","));
        let refused = read_text(&many).err().map(|(_, e)| e.message);
        assert!(refused.is_some_and(|m| m.contains("1 to 64 messages, not 65")));
    }
}
