//! `weir send NODE:PORT JSON`: starts a run by delivering a message to a node's input port,
//! through the gRPC endpoint its module publishes, and prints what the flow answered.

use std::io::{Read as _, Write};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use weir_model::Kind;
use weir_proto::{DeliverRequest, deliver_response::Outcome, module_client::ModuleClient};
use weir_sdk::{NodeError, TraceContext};
use weir_store::{Store, StoreError};

use crate::cli::SendArgs;

/// Runs `weir send`.
pub async fn run(store: &dyn Store, args: SendArgs, out: &mut impl Write) -> Result<()> {
    let Some((node, port)) =
        args.target.split_once(':').filter(|(n, p)| !n.is_empty() && !p.is_empty())
    else {
        bail!("target {:?} is not NODE:PORT (such as plan:in)", args.target);
    };
    let text = if args.message == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the message from standard input")?;
        text
    } else {
        args.message.clone()
    };
    let message: Value = serde_json::from_str(&text).context("the message is not JSON")?;
    let namespace = &args.namespace;
    let flow_node = store.get(Kind::FlowNode, namespace, node).await.map_err(|err| match err {
        StoreError::NotFound(_) => anyhow::anyhow!("node {namespace}/{node} does not exist"),
        err => anyhow::Error::new(err).context(format!("cannot read node {namespace}/{node}")),
    })?;
    let module = flow_node.data.pointer("/spec/module").and_then(Value::as_str).unwrap_or_default();
    let endpoint = endpoint_of(store, namespace, node, module).await?;
    let trace = TraceContext::default();
    let mut request = tonic::Request::new(DeliverRequest {
        namespace: namespace.clone(),
        node: node.to_owned(),
        port: port.to_owned(),
        message_json: serde_json::to_vec(&message)?,
        trigger_json: serde_json::to_vec(&message)?,
        hops: 0,
    });
    request.set_timeout(args.timeout.get());
    request.metadata_mut().insert(weir_runtime::grpc::TRACEPARENT, trace.traceparent().parse()?);
    let mut client = ModuleClient::connect(endpoint.clone()).await.with_context(|| {
        format!("module {module} of node {node} does not answer at {endpoint}: is it running?")
    })?;
    let response = client
        .deliver(request)
        .await
        .map_err(|status| weir_proto::failure_of_status(&status, module))
        .map_err(|err| failed(node, port, &err))?;
    match response.into_inner().outcome {
        Some(Outcome::AnswerJson(answer)) => {
            let answer: Value = serde_json::from_slice(&answer)
                .with_context(|| format!("module {module} answered with bad JSON"))?;
            writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
            Ok(())
        }
        Some(Outcome::Failure(failure)) => Err(failed(node, port, &NodeError::from(failure))),
        None => bail!("module {module} answered with neither an answer nor a failure"),
    }
}

fn failed(node: &str, port: &str, error: &NodeError) -> anyhow::Error {
    anyhow::anyhow!("{node}:{port} failed ({}): {}", error.kind().as_str(), error.message())
}

/// Where the module running `node` serves gRPC, from its `Module` resource: the one in the
/// node's namespace, else the one in any namespace (modules usually run in a namespace of
/// their own).
async fn endpoint_of(
    store: &dyn Store,
    namespace: &str,
    node: &str,
    module: &str,
) -> Result<String> {
    let modules = store
        .list(Kind::Module, None, &weir_store::Selector::everything())
        .await
        .with_context(|| format!("cannot read the Module resources to find module {module}"))?;
    let mut named: Vec<_> =
        modules.iter().filter(|m| m.metadata.name.as_deref() == Some(module)).collect();
    named.sort_by_key(|m| m.metadata.namespace.as_deref() != Some(namespace));
    let Some(resource) = named.first() else {
        bail!("node {node} belongs to module {module}, which is not running (no Module resource)");
    };
    resource
        .data
        .pointer("/spec/endpoint")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("module {module} publishes no endpoint"))
}
