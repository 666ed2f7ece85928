//! `weir rbac FLOW`: the ServiceAccount a flow acts as and the rules its nodes need
//! (`crate::rbac::FlowRules`), as manifests to review and `kubectl apply`, or applied with
//! `--apply` as the person running it, so the apiserver's own escalation check refuses to let
//! them grant what they do not hold.

use std::io::Write;

use anyhow::{Context as _, Result, bail};
use kube::{
    api::{DynamicObject, Patch, PatchParams},
    core::GroupVersionKind,
    discovery::ApiResource,
};
use weir_model::{Flow, FlowNode, Kind};
use weir_sdk::Module;
use weir_store::{Store, StoreError};

use crate::{catalogue::Catalogue, cli::RbacArgs, rbac::FlowRules};

/// Runs `weir rbac`.
pub async fn run(
    opened: &super::Opened,
    builtins: &[Module],
    args: RbacArgs,
    out: &mut impl Write,
) -> Result<()> {
    let rules = flow_rules(&*opened.store, builtins, &args.namespace, &args.flow).await?;
    if !args.apply {
        write!(out, "{}", super::export::to_yaml(&rules.manifests())?)?;
        return Ok(());
    }
    let Some(client) = &opened.client else {
        bail!(
            "--apply needs a cluster: give --kubeconfig or --context (or print and apply them yourself)"
        );
    };
    apply_rules(client, &rules, out).await
}

/// What flow `flow` of `namespace` needs, from its nodes in `store` and the permissions their
/// components declare (in `builtins`, else in the published catalogues).
pub async fn flow_rules(
    store: &dyn Store,
    builtins: &[Module],
    namespace: &str,
    flow: &str,
) -> Result<FlowRules> {
    let object = store.get(Kind::Flow, namespace, flow).await.map_err(|err| match err {
        StoreError::NotFound(_) => anyhow::anyhow!("flow {namespace}/{flow} does not exist"),
        err => anyhow::Error::new(err).context(format!("cannot read flow {flow}")),
    })?;
    let parsed: Flow = serde_json::from_value(serde_json::to_value(&object)?)
        .with_context(|| format!("flow {flow} does not read as a Flow"))?;
    let mut nodes = Vec::new();
    for object in super::nodes_of(store, namespace, flow).await? {
        let name = weir_store::describe(&object);
        let node: FlowNode = serde_json::from_value(serde_json::to_value(object)?)
            .with_context(|| format!("{name} does not read as a FlowNode"))?;
        nodes.push(node);
    }
    let catalogue = Catalogue::read(store, namespace).await?;
    let builtin: Vec<(String, weir_model::ModuleSpec)> = builtins
        .iter()
        .map(|m| Ok((m.name().to_owned(), m.catalogue()?)))
        .collect::<Result<_, weir_sdk::NodeError>>()?;
    // The binary's own modules first: they need no running module to answer.
    let offered = |module: &str, component: &str| {
        builtin
            .iter()
            .find(|(name, _)| name == module)
            .and_then(|(_, spec)| spec.components.iter().find(|c| c.name.as_str() == component))
            .or_else(|| catalogue.component(module, component))
            .cloned()
    };
    Ok(FlowRules::derive(&parsed, &nodes, offered)?)
}

/// Applies a flow's account and rules with `client`, whose user must hold the rules (the
/// apiserver refuses to let anyone grant more than they have); says each one applied.
pub async fn apply_rules(
    client: &kube::Client,
    rules: &FlowRules,
    out: &mut impl Write,
) -> Result<()> {
    for manifest in rules.manifests() {
        let object: DynamicObject = serde_json::from_value(manifest)?;
        let types = object.types.clone().unwrap_or_default();
        let (group, version) =
            types.api_version.rsplit_once('/').unwrap_or(("", &types.api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &types.kind));
        let name = object.metadata.name.clone().unwrap_or_default();
        let what = format!("{} {name}", types.kind);
        let api: kube::Api<DynamicObject> = match object.metadata.namespace.as_deref() {
            Some(namespace) => kube::Api::namespaced_with(client.clone(), namespace, &resource),
            None => kube::Api::all_with(client.clone(), &resource),
        };
        api.patch(&name, &PatchParams::apply("weir").force(), &Patch::Apply(&object))
            .await
            .map_err(|err| match err {
                kube::Error::Api(status) => {
                    anyhow::anyhow!("cannot apply {what}: {}", status.message)
                }
                err => anyhow::Error::new(err).context(format!("cannot apply {what}")),
            })?;
        writeln!(out, "{what} applied")?;
    }
    Ok(())
}
