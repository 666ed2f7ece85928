//! `workload_patch`: sets container images of a workload (a Deployment, StatefulSet,
//! DaemonSet, ReplicaSet, ReplicationController or CronJob) by container name (init containers
//! included) and sets or removes annotations, with a strategic merge patch that touches only
//! those fields, so changes others make at the same time survive. Names are checked first: an
//! unknown container is a permanent error listing the ones there are. Jobs and Pods are
//! refused: their pod templates cannot change once created. A `kinds` setting limits it to
//! some kinds, and `weir rbac` grants it only theirs.
//!
//! A change may say what it expects the workload to be (the image each container holds, its
//! resourceVersion or generation), as a plan made earlier saw it: a workload that moved since
//! is left alone and the change fails as invalid, naming what moved, so a slow plan never
//! undoes a deploy made while it ran. The patch then carries the resourceVersion the
//! expectations were checked at, so a change landing between the check and the patch is a
//! conflict (transient), and the retry checks again.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use weir_sdk::{
    Component, Context, Description, JsonSchema, NodeError, Permission, Port, Value, read_message,
};

use crate::{
    access::{Cluster, Connection},
    workload_list::WorkloadKind,
};

/// Settings of a workload patch.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WorkloadPatchSettings {
    /// The kinds it may patch (`weir rbac` grants only these); empty for every kind it can.
    /// A change of another kind is refused.
    pub kinds: Vec<WorkloadKind>,
    /// Check the patch with the API server without saving it.
    pub dry_run: bool,
    /// The field manager the change is recorded under.
    pub field_manager: String,
    /// Send failures (a denial, an unknown workload) to the `error` output as data instead
    /// of failing the caller.
    pub error_port: bool,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

impl Default for WorkloadPatchSettings {
    fn default() -> Self {
        Self {
            kinds: Vec::new(),
            dry_run: false,
            field_manager: "weir".to_owned(),
            error_port: false,
            cluster: Cluster::default(),
        }
    }
}

/// What to change.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Change {
    /// The workload's kind, such as `StatefulSet`; a Deployment when not given.
    #[serde(default = "deployment")]
    pub kind: WorkloadKind,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's name.
    pub name: String,
    /// New images by container name (containers and init containers).
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// Annotations to add or replace, such as the original image; null removes one.
    #[serde(default)]
    pub annotations: BTreeMap<String, Option<String>>,
    /// The image each named container (or init container) is expected to hold now; if one
    /// holds another, the workload moved and is left alone.
    #[serde(default)]
    pub expected: BTreeMap<String, String>,
    /// The resourceVersion the workload is expected to be at; if it moved, it is left alone.
    #[serde(default)]
    pub resource_version: Option<String>,
    /// The generation the workload is expected to be at; if it moved, it is left alone.
    #[serde(default)]
    pub generation: Option<i64>,
}

fn deployment() -> WorkloadKind {
    WorkloadKind::Deployment
}

impl Change {
    fn has_expectations(&self) -> bool {
        !self.expected.is_empty() || self.resource_version.is_some() || self.generation.is_some()
    }
}

/// What the patch did.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Patched {
    /// The workload's kind.
    pub kind: WorkloadKind,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's name.
    pub name: String,
    /// The containers whose image changed.
    pub changed: Vec<String>,
    /// Whether the patch was only checked, not saved.
    pub dry_run: bool,
    /// The workload's generation after the patch.
    pub generation: Option<i64>,
}

/// A node of the workload patch component.
#[derive(Debug)]
pub struct WorkloadPatch {
    settings: WorkloadPatchSettings,
    connection: Connection,
}

impl Component for WorkloadPatch {
    const NAME: &'static str = "workload_patch";
    type Settings = WorkloadPatchSettings;

    fn describe() -> Description {
        Description {
            label: "Workload patch",
            description: "Sets container images of a Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController or CronJob by container name and sets or removes annotations, without clobbering concurrent changes; a workload that moved from what the change expects is left alone.",
            tags: &["kubernetes", "workloads", "images", "patch"],
            trigger: false,
            permissions: &[],
        }
    }

    fn permissions_by_kind() -> Vec<(&'static str, Permission)> {
        WorkloadKind::ALL
            .into_iter()
            .filter(|kind| kind.patchable())
            .map(|kind| {
                let (api_group, resource) = kind.resource();
                (kind.name(), Permission { api_group, resource, verbs: &["get", "patch"] })
            })
            .collect()
    }

    fn ports(settings: &WorkloadPatchSettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Change>("in"), Port::output::<Patched>("out")],
            settings.error_port,
        )
    }

    fn build(settings: WorkloadPatchSettings) -> Result<Self, NodeError> {
        if let Some(kind) = settings.kinds.iter().find(|kind| !kind.patchable()) {
            return Err(NodeError::invalid(format!(
                "settings.kinds: a {} cannot be patched, its pod template cannot change once created",
                kind.name()
            )));
        }
        crate::dynamic::check_field_manager(&settings.field_manager)?;
        let connection = Connection::new(settings.cluster.clone());
        Ok(Self { settings, connection })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let change: Change = read_message(port, message.clone())?;
        match self.patch(cx, change).await {
            Ok(patched) => {
                // Where nothing follows, the caller (a split's summary, a `weir send`) learns
                // what was patched.
                let done = serde_json::to_value(&patched).map_err(|err| {
                    NodeError::internal(format!("cannot encode what was patched: {err}"))
                })?;
                let answer = cx.emit("out", done.clone()).await?;
                Ok(if answer.is_null() { done } else { answer })
            }
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl WorkloadPatch {
    async fn patch(&self, cx: &Context, change: Change) -> Result<Patched, NodeError> {
        let kind = change.kind;
        let what = format!("{} {}/{}", kind.name(), change.namespace, change.name);
        if !kind.patchable() {
            return Err(NodeError::invalid(format!(
                "{what}: the pod template of a {} cannot change once created",
                kind.name()
            )));
        }
        let kinds = &self.settings.kinds;
        if !kinds.is_empty() && !kinds.contains(&kind) {
            let names: Vec<&str> = kinds.iter().map(|kind| kind.name()).collect();
            return Err(NodeError::invalid(format!(
                "{what}: this node patches only {} (settings.kinds)",
                names.join(", ")
            )));
        }
        let session = self.connection.session(cx).await?;
        let (namespace, name) = (&change.namespace, &change.name);
        let workloads: Api<DynamicObject> =
            Api::namespaced_with(session.client.clone(), namespace, &kind.api_resource());
        let (group, plural) = kind.resource();
        let resource =
            if group.is_empty() { plural.to_owned() } else { format!("{plural}.{group}") };
        let doing = format!("get {resource} {name} in namespace {namespace}");
        let current = workloads.get(name).await.map_err(|err| session.error(&doing, err))?;
        let pod: Option<PodSpec> = kind
            .pod_spec_path()
            .iter()
            .try_fold(&current.data, |at, key| at.get(key))
            .map(|spec| serde_json::from_value(spec.clone()))
            .transpose()
            .map_err(|err| {
                NodeError::invalid(format!("{what}: its pod spec does not read: {err}"))
            })?;
        let pod = pod.as_ref();
        let names = |init: bool| -> Vec<String> {
            let containers = if init {
                pod.and_then(|p| p.init_containers.as_ref()).cloned().unwrap_or_default()
            } else {
                pod.map(|p| p.containers.clone()).unwrap_or_default()
            };
            containers.into_iter().map(|c| c.name).collect()
        };
        let (containers, init_containers) = (names(false), names(true));
        let unknown = |container: &str| {
            NodeError::invalid(format!(
                "{what} has no container {container} (containers: {}; init containers: {})",
                list(&containers),
                list(&init_containers)
            ))
        };
        let mut patch_containers = Vec::new();
        let mut patch_init = Vec::new();
        for (container, image) in &change.images {
            if containers.contains(container) {
                patch_containers.push(json!({ "name": container, "image": image }));
            } else if init_containers.contains(container) {
                patch_init.push(json!({ "name": container, "image": image }));
            } else {
                return Err(unknown(container));
            }
        }
        let mut moved = Vec::new();
        for (container, expected) in &change.expected {
            let holds = pod
                .into_iter()
                .flat_map(|p| p.containers.iter().chain(p.init_containers.iter().flatten()))
                .find(|c| &c.name == container)
                .ok_or_else(|| unknown(container))?
                .image
                .as_deref()
                .unwrap_or_default();
            if holds != expected {
                moved.push(format!("container {container} holds {holds}, not {expected}"));
            }
        }
        let version = current.metadata.resource_version.clone();
        if let Some(expected) = &change.resource_version
            && version.as_ref() != Some(expected)
        {
            moved.push(format!(
                "its resourceVersion is {}, not {expected}",
                version.as_deref().unwrap_or("none")
            ));
        }
        let generation = current.metadata.generation;
        if let Some(expected) = change.generation
            && generation != Some(expected)
        {
            moved.push(format!(
                "its generation is {}, not {expected}",
                generation.map_or_else(|| "none".to_owned(), |g| g.to_string())
            ));
        }
        if !moved.is_empty() {
            return Err(NodeError::invalid(format!(
                "{what} moved since the plan and is left alone: {}",
                moved.join("; ")
            )));
        }
        let mut pod_spec = serde_json::Map::new();
        if !patch_containers.is_empty() {
            pod_spec.insert("containers".to_owned(), json!(patch_containers));
        }
        if !patch_init.is_empty() {
            pod_spec.insert("initContainers".to_owned(), json!(patch_init));
        }
        let mut patch = json!({});
        if !change.annotations.is_empty() {
            patch["metadata"] = json!({ "annotations": change.annotations });
        }
        if change.has_expectations() {
            // What was checked is what gets patched: the apiserver refuses the patch (409) if
            // the workload changed since it was read.
            patch["metadata"]["resourceVersion"] = json!(version);
        }
        if !pod_spec.is_empty() {
            let mut at = kind
                .pod_spec_path()
                .iter()
                .rev()
                .fold(Value::Object(pod_spec), |inner, key| json!({ *key: inner }));
            patch["spec"] = at["spec"].take();
        }
        let params = PatchParams {
            dry_run: self.settings.dry_run,
            field_manager: Some(self.settings.field_manager.clone()),
            ..PatchParams::default()
        };
        let doing = format!("patch {resource} {name} in namespace {namespace}");
        let patched = workloads
            .patch(name, &params, &Patch::Strategic(patch))
            .await
            .map_err(|err| session.error(&doing, err))?;
        Ok(Patched {
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
            changed: change.images.keys().cloned().collect(),
            dry_run: self.settings.dry_run,
            generation: patched.metadata.generation,
        })
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}
