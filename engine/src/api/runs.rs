//! The last runs of a flow (kept by `history.rs`) and replay: `GET /api/flows/{flow}/runs`
//! lists them newest first, `GET /api/runs/{run}` answers one with its messages, and
//! `POST /api/runs/{run}/replay` sends a message one of its nodes received to that node again,
//! starting a new run. Reading runs takes the right to read the flow; replay, as sending, the
//! right to change the node.

use axum::{
    Json,
    extract::{Path, State},
};
use serde_json::{Value, value::RawValue};
use weir_api::{Answer, MessageSeen, Problem, Replay, RunRecord, RunSummary};
use weir_model::redact::REDACTED;

use super::{
    access::Caller,
    error::ApiError,
    extract::{Body, FlowAt, Params},
    state::Api,
};

/// The flow's kept runs, newest first.
pub async fn list(
    State(api): State<Api>,
    caller: Caller,
    FlowAt { flow, namespace }: FlowAt,
) -> Result<Json<Vec<RunSummary>>, ApiError> {
    super::document::existing_flow(&*caller.store, &namespace, &flow).await?;
    Ok(Json(api.feed.history().runs(&namespace, &flow)))
}

/// One kept run with its messages, oldest first.
pub async fn get(
    State(api): State<Api>,
    caller: Caller,
    Path(run): Path<String>,
    params: Params,
) -> Result<Json<RunRecord<Box<RawValue>>>, ApiError> {
    let namespace = params.namespace()?;
    let (summary, messages) = kept(&api, &namespace, &run)?;
    super::document::existing_flow(&*caller.store, &namespace, &summary.flow).await?;
    // Each message is JSON already: passed on rather than parsed back.
    let messages = messages
        .iter()
        .map(|message| RawValue::from_string(message.to_string()))
        .collect::<Result<_, _>>()
        .map_err(|err| ApiError::internal(format!("a kept message of run {run}: {err}")))?;
    Ok(Json(RunRecord { summary, messages }))
}

/// Sends the message a node of the run received (its first node's when the body names none)
/// to the same port again; answers `{"answer": …}` as `POST /api/send` does.
pub async fn replay(
    State(api): State<Api>,
    caller: Caller,
    Path(run): Path<String>,
    params: Params,
    body: Body,
) -> Result<Json<Answer>, ApiError> {
    let namespace = params.namespace()?;
    let replay: Replay = if body.0.is_empty() { Replay::default() } else { body.json()? };
    let (_, messages) = kept(&api, &namespace, &run)?;
    // The run's first received message is its first node's: the one to send when none is named.
    let wanted = replay.node.as_ref().map(ToString::to_string);
    let received = messages
        .iter()
        .filter_map(|message| serde_json::from_str::<MessageSeen>(message).ok())
        .find(|seen| seen.what == "received" && wanted.as_ref().is_none_or(|n| *n == seen.node))
        .ok_or_else(|| match &wanted {
            Some(node) => {
                ApiError::not_found(format!("run {run} kept no message that node {node} received"))
            }
            None => ApiError::not_found(format!("run {run} kept no message a node received")),
        })?;
    let node = received.node.clone();
    if let Some(refusal) = unsendable(&received.payload) {
        let problem = Problem::new(
            Some(format!("FlowNode/{node}")),
            "",
            format!(
                "the message it received in run {run} {refusal}, so it cannot be sent again as it \
             was: send it with `weir send {node}:{}` and the whole message instead",
                received.port
            ),
        );
        return Err(ApiError::invalid(problem));
    }
    let target = (node.as_str(), received.port.as_str());
    let answer =
        super::send::deliver_as(&caller, &namespace, target, &received.payload, replay.timeout)
            .await?;
    Ok(Json(Answer { answer }))
}

/// The run `id` of `namespace` the engine keeps; 404 naming how many are kept otherwise.
fn kept(
    api: &Api,
    namespace: &str,
    id: &str,
) -> Result<(RunSummary, Vec<std::sync::Arc<str>>), ApiError> {
    api.feed.history().run(namespace, id).ok_or_else(|| {
        ApiError::not_found(format!(
            "run {id:?} is not kept in namespace {namespace}: the engine keeps the last {} runs \
             of each flow, in memory, since it started",
            api.feed.history().per_flow()
        ))
    })
}

/// Why a kept message is not the message the node received, when it is not: the inspect
/// stream keeps a large message as its size only and hides secret fields.
fn unsendable(payload: &Value) -> Option<String> {
    if payload.get("truncated") == Some(&Value::Bool(true))
        && let Some(bytes) = payload.get("bytes").and_then(Value::as_u64)
    {
        return Some(format!("was {bytes} bytes, larger than what is kept of a message"));
    }
    hides_secrets(payload).then(|| format!("had secret fields, kept as {REDACTED:?}"))
}

fn hides_secrets(value: &Value) -> bool {
    // Iterative: a kept message may be nested as deep as a node made it.
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::String(text) if text == REDACTED => return true,
            Value::Array(items) => pending.extend(items),
            Value::Object(fields) => pending.extend(fields.values()),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_a_message_kept_whole_is_sent_again() {
        assert_eq!(unsendable(&json!({ "n": 1, "list": [{ "a": "b" }] })), None);
        assert!(
            unsendable(&json!({ "truncated": true, "bytes": 70000 })).unwrap().contains("70000")
        );
        let hidden = json!({ "to": [{ "headers": { "token": REDACTED } }] });
        assert!(unsendable(&hidden).unwrap().contains("secret"));
        assert_eq!(unsendable(&json!({ "truncated": true })), None, "a field of that name");
    }
}
