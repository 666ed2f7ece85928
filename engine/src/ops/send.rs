//! Sending a message to a node's input port from outside any flow, starting a run: through a
//! replica of the node's module (the leader, for a trigger's node), as `weir send` and the
//! editor's send do, answering with what the flow answered.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use weir_model::{Kind, Module};
use weir_proto::module_client::ModuleClient;
use weir_runtime::{
    NodeKey,
    client::{self, Delivery, Undelivered},
    replicas,
};
use weir_store::{Store, StoreError};

use super::error::SendError;
use crate::catalogue::Catalogue;

/// How long a run started from outside any flow may take when not told.
pub const DEFAULT_TIMEOUT: &str = "60s";

/// The longest a run started from outside any flow may be waited for: a day is past any run
/// a person waits on, and gRPC's deadline header holds no more than 99,999,999 hours.
pub const LONGEST_SEND: Duration = Duration::from_secs(24 * 3600);

/// Delivers `message` to `node`'s input `port` (`target`) through the gRPC endpoint of the
/// node's module, starting a run that may take `timeout`, and returns what the flow answered;
/// `bearer` is the sender's token, which a module in a cluster requires.
pub async fn deliver(
    store: &dyn Store,
    namespace: &str,
    (node, port): (&str, &str),
    message: &Value,
    timeout: Duration,
    bearer: Option<&str>,
) -> Result<Value, SendError> {
    if timeout > LONGEST_SEND {
        return Err(SendError::TooLong { timeout, longest: LONGEST_SEND });
    }
    let flow_node = store.get(Kind::FlowNode, namespace, node).await.map_err(|err| match err {
        StoreError::NotFound(_) => {
            SendError::NoNode { namespace: namespace.to_owned(), node: node.to_owned() }
        }
        source => SendError::Store { what: format!("node {namespace}/{node}"), source },
    })?;
    let spec = |field: &str| {
        flow_node
            .data
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let module = spec("module");
    let endpoint = endpoint_of(store, namespace, node, (module, spec("component"))).await?;
    let mut client =
        ModuleClient::connect(endpoint.clone()).await.map_err(|source| SendError::Unreachable {
            module: module.to_owned(),
            node: node.to_owned(),
            endpoint: endpoint.clone(),
            source,
        })?;
    let target = NodeKey { namespace: namespace.to_owned(), name: node.to_owned() };
    let delivery = Delivery::starting_run(&target, port, message);
    let authorization = bearer.and_then(weir_runtime::trust::Bearer::header_of);
    client::deliver(&mut client, module, delivery, timeout, authorization).await.map_err(|err| {
        match err {
            Undelivered::Failed(error) => {
                SendError::Failed { node: node.to_owned(), port: port.to_owned(), error }
            }
            Undelivered::BadAnswer(what) => {
                SendError::BadAnswer { module: module.to_owned(), what }
            }
        }
    })
}

/// Where the module running `node` serves gRPC: a replica that serves now, listed by the
/// node's namespace's `Module` when it publishes one, else by the one namespace's where the
/// module serves. Where several other namespaces publish it serving, none is picked: the
/// caller's token goes to the endpoint, and whoever may write a `Module` in some namespace must
/// not draw it there.
async fn endpoint_of(
    store: &dyn Store,
    namespace: &str,
    node: &str,
    (module, component): (&str, &str),
) -> Result<String, SendError> {
    let visible = Catalogue::visible(store, namespace).await.map_err(|source| {
        SendError::Store { what: format!("the Module resources to find module {module}"), source }
    })?;
    let named: Vec<&Module> =
        visible.iter().filter(|m| m.metadata.name.as_deref() == Some(module)).collect();
    let now = Timestamp::now();
    let home = named.iter().copied().find(|m| m.metadata.namespace.as_deref() == Some(namespace));
    let live: Vec<&Module> =
        named.iter().copied().filter(|m| !replicas::serving(m, now).is_empty()).collect();
    let resource = match (home, live.as_slice()) {
        (Some(here), _) => here,
        (None, [here]) => *here,
        (None, []) if named.is_empty() => {
            return Err(SendError::NotRunning { node: node.to_owned(), module: module.to_owned() });
        }
        (None, []) => return Err(SendError::NoEndpoint { module: module.to_owned() }),
        (None, several) => {
            let namespaces: Vec<&str> =
                several.iter().filter_map(|m| m.metadata.namespace.as_deref()).collect();
            return Err(SendError::Ambiguous {
                module: module.to_owned(),
                namespaces: namespaces.join(", "),
            });
        }
    };
    let replicas = replicas::Replicas::serving_at(resource, now);
    // Any replica will do (but the leader, for a trigger's node): the clock spreads senders.
    let turn = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos() as usize);
    replicas
        .pick(component, turn, None)
        .map(str::to_owned)
        .ok_or_else(|| SendError::NoEndpoint { module: module.to_owned() })
}
