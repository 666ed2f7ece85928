//! A flow's rules: the ServiceAccount it acts as and what its nodes need
//! (`crate::rbac::FlowRules`), derived from its stored nodes, and applied as the caller, so the
//! apiserver's own escalation check refuses to let them grant what they do not hold.

use kube::{
    api::{DynamicObject, Patch, PatchParams},
    core::GroupVersionKind,
    discovery::ApiResource,
};
use weir_model::{Flow, FlowNode, Kind};
use weir_sdk::Module;
use weir_store::{Store, StoreError};

use super::error::OpError;
use crate::{catalogue::Catalogue, rbac::FlowRules};

/// What flow `flow` of `namespace` needs, from its nodes in `store` and the permissions their
/// components declare (in `builtins`, else in the published catalogues).
pub async fn flow_rules(
    store: &dyn Store,
    builtins: &[Module],
    namespace: &str,
    flow: &str,
) -> Result<FlowRules, OpError> {
    let object = store.get(Kind::Flow, namespace, flow).await.map_err(|err| match err {
        StoreError::NotFound(_) => OpError::Store(err),
        err => OpError::store_while(format!("cannot read flow {flow}"), err),
    })?;
    let unreadable = |what: String| move |source| OpError::Unreadable { what, source };
    let parsed: Flow = serde_json::to_value(&object)
        .and_then(serde_json::from_value)
        .map_err(unreadable(format!("flow {flow} does not read as a Flow")))?;
    let mut nodes = Vec::new();
    for object in super::nodes_of(store, namespace, flow).await? {
        let name = weir_store::describe(&object);
        let node: FlowNode = serde_json::to_value(object)
            .and_then(serde_json::from_value)
            .map_err(unreadable(format!("{name} does not read as a FlowNode")))?;
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
/// apiserver refuses to let anyone grant more than they have), telling `applied` each one.
pub async fn apply_rules(
    client: &kube::Client,
    rules: &FlowRules,
    mut applied: impl FnMut(&str),
) -> Result<(), OpError> {
    for manifest in rules.manifests() {
        let object: DynamicObject = serde_json::from_value(manifest).map_err(|source| {
            OpError::Unreadable { what: "a rule does not read as an object".to_owned(), source }
        })?;
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
            .map_err(|err| OpError::Cluster {
                doing: format!("apply {what}"),
                message: match err {
                    kube::Error::Api(status) => status.message,
                    err => err.to_string(),
                },
            })?;
        applied(&what);
    }
    Ok(())
}
