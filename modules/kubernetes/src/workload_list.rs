//! `workload_list`: the cluster's workloads of every kind that runs containers, with what a
//! mirror needs of each: every container, init container and (for Pods) ephemeral container
//! with its image, the pull secrets the kubelet would use (the pod template's, or else its
//! ServiceAccount's), and the controller that owns it, if any. Large clusters are read a page
//! at a time; a message naming one workload (`{kind, namespace, name}`, as a watch gives it)
//! reads only that one.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, PodSpec, ServiceAccount};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, ListParams},
};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use weir_sdk::{
    Component, Context, Description, JsonSchema, NodeError, Permission, Port, Selector, Value,
};

use crate::{
    access::{Cluster, Connection, Session, scope},
    dynamic::pages,
};

/// A kind of workload: where its pod template is, and whether a change of it reaches pods.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// v1 ReplicationController.
    ReplicationController,
    /// batch/v1 CronJob: its job template's pod template.
    CronJob,
    /// batch/v1 Job: its pod template cannot change once created.
    Job,
    /// v1 Pod: the pod itself.
    Pod,
}

impl WorkloadKind {
    /// Every kind, in the order a list reads them.
    pub const ALL: [Self; 8] = [
        Self::Deployment,
        Self::StatefulSet,
        Self::DaemonSet,
        Self::ReplicaSet,
        Self::ReplicationController,
        Self::CronJob,
        Self::Job,
        Self::Pod,
    ];

    /// The kind's name, as in `kind:`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::ReplicaSet => "ReplicaSet",
            Self::ReplicationController => "ReplicationController",
            Self::CronJob => "CronJob",
            Self::Job => "Job",
            Self::Pod => "Pod",
        }
    }

    /// Its API group and the resource RBAC and URLs name.
    pub fn resource(self) -> (&'static str, &'static str) {
        match self {
            Self::Deployment => ("apps", "deployments"),
            Self::StatefulSet => ("apps", "statefulsets"),
            Self::DaemonSet => ("apps", "daemonsets"),
            Self::ReplicaSet => ("apps", "replicasets"),
            Self::ReplicationController => ("", "replicationcontrollers"),
            Self::CronJob => ("batch", "cronjobs"),
            Self::Job => ("batch", "jobs"),
            Self::Pod => ("", "pods"),
        }
    }

    /// The kind of its objects for a dynamic client.
    pub fn api_resource(self) -> ApiResource {
        let (group, plural) = self.resource();
        let api_version = if group.is_empty() { "v1".to_owned() } else { format!("{group}/v1") };
        ApiResource {
            group: group.to_owned(),
            version: "v1".to_owned(),
            api_version,
            kind: self.name().to_owned(),
            plural: plural.to_owned(),
        }
    }

    /// Where the pod spec is in an object of this kind, as JSON pointer keys.
    pub fn pod_spec_path(self) -> &'static [&'static str] {
        match self {
            Self::CronJob => &["spec", "jobTemplate", "spec", "template", "spec"],
            Self::Pod => &["spec"],
            _ => &["spec", "template", "spec"],
        }
    }

    /// Whether a change of its images reaches its pods: not for a Job (its template cannot
    /// change) nor a Pod (its controller, or its author, owns it).
    pub fn patchable(self) -> bool {
        !matches!(self, Self::Job | Self::Pod)
    }

    /// The kind named `name`, such as `StatefulSet`.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// Settings of a workload list.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WorkloadListSettings {
    /// The namespace to list; empty for every namespace. A workload a message names in
    /// another namespace is left out, as the list would leave it out.
    pub namespace: String,
    /// Only workloads with these labels, in `kubectl -l`'s syntax, such as
    /// `app=web,tier!=test,env in (prod,staging)`; it chooses a workload a message names too.
    pub label_selector: String,
    /// Leave out workloads scaled to zero replicas and suspended CronJobs.
    pub skip_scaled_to_zero: bool,
    /// How many objects to read per request (10 to 5000).
    pub page_size: u32,
    /// Send failures (a denial, an unreachable apiserver) to the `error` output as data
    /// instead of failing the caller.
    pub error_port: bool,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

impl Default for WorkloadListSettings {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            label_selector: String::new(),
            skip_scaled_to_zero: false,
            page_size: 500,
            error_port: false,
            cluster: Cluster::default(),
        }
    }
}

/// What to read: nothing for every workload, or one named.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The kind of the one workload to read, such as `StatefulSet`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Its namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
}

/// What the list goes out as.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Listed {
    /// The workloads, by kind, namespace and name.
    pub workloads: Vec<Workload>,
    /// Whether these are every workload the settings select (a list), rather than the one a
    /// message named.
    pub complete: bool,
}

/// One workload.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// The replicas it asks for; none for kinds without replicas (DaemonSet, CronJob, Job,
    /// Pod).
    pub replicas: Option<i64>,
    /// Whether it is a suspended CronJob.
    pub suspended: bool,
    /// The controller that owns it, as `Kind/name`, such as `Deployment/web`.
    pub controller: Option<String>,
    /// Its resourceVersion when read.
    pub resource_version: String,
    /// Its pod's containers.
    pub containers: Vec<ContainerImage>,
    /// Its pod's init containers.
    pub init_containers: Vec<ContainerImage>,
    /// A Pod's ephemeral containers (debug containers), which no template has.
    pub ephemeral_containers: Vec<ContainerImage>,
    /// The image pull secrets its pods use: the pod's, or else its ServiceAccount's.
    pub pull_secrets: Vec<String>,
    /// The pod's ServiceAccount.
    pub service_account: String,
}

/// A container and its image.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ContainerImage {
    /// The container's name.
    pub name: String,
    /// Its image reference.
    pub image: String,
}

/// A node of the workload list component.
#[derive(Debug)]
pub struct WorkloadList {
    settings: WorkloadListSettings,
    /// The label selector, parsed: a workload a message names is read alone, and the
    /// apiserver's list does not choose it, so this node does.
    selector: Selector,
    connection: Connection,
}

impl Component for WorkloadList {
    const NAME: &'static str = "workload_list";
    type Settings = WorkloadListSettings;

    fn describe() -> Description {
        Description {
            label: "Workload list",
            description: "Lists Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, CronJobs, Jobs and Pods with their containers' images, the pull secrets their pods use and their controllers; or reads the one a message names.",
            tags: &["kubernetes", "workloads", "images", "list"],
            trigger: false,
            permissions: &[
                Permission { api_group: "apps", resource: "deployments", verbs: &["get", "list"] },
                Permission { api_group: "apps", resource: "statefulsets", verbs: &["get", "list"] },
                Permission { api_group: "apps", resource: "daemonsets", verbs: &["get", "list"] },
                Permission { api_group: "apps", resource: "replicasets", verbs: &["get", "list"] },
                Permission {
                    api_group: "",
                    resource: "replicationcontrollers",
                    verbs: &["get", "list"],
                },
                Permission { api_group: "batch", resource: "cronjobs", verbs: &["get", "list"] },
                Permission { api_group: "batch", resource: "jobs", verbs: &["get", "list"] },
                Permission { api_group: "", resource: "pods", verbs: &["get", "list"] },
                Permission { api_group: "", resource: "serviceaccounts", verbs: &["get"] },
            ],
        }
    }

    fn ports(settings: &WorkloadListSettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Request>("in"), Port::output::<Listed>("out")],
            settings.error_port,
        )
    }

    fn build(settings: WorkloadListSettings) -> Result<Self, NodeError> {
        if !(10..=5000).contains(&settings.page_size) {
            return Err(NodeError::invalid(format!(
                "settings.pageSize: {} is not between 10 and 5000",
                settings.page_size
            )));
        }
        let selector = settings
            .label_selector
            .parse()
            .map_err(|err| NodeError::invalid(format!("settings.labelSelector: {err}")))?;
        let connection = Connection::new(settings.cluster.clone());
        Ok(Self { settings, selector, connection })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        // A message naming nothing starts a whole list; one naming a workload reads only it.
        let request: Request = weir_sdk::read_message(port, message.clone())?;
        let one = match (&request.kind, &request.namespace, &request.name) {
            (None, None, None) => None,
            (Some(kind), Some(namespace), Some(name)) => {
                let kind = WorkloadKind::named(kind).ok_or_else(|| {
                    NodeError::invalid(format!(
                        "{port}.kind: {kind:?} is not one of {}",
                        WorkloadKind::ALL.map(WorkloadKind::name).join(", ")
                    ))
                })?;
                Some((kind, namespace.as_str(), name.as_str()))
            }
            _ => {
                return Err(NodeError::invalid(format!(
                    "{port}: a workload is named by kind, namespace and name together"
                )));
            }
        };
        let listed = match one {
            Some((kind, namespace, name)) => self.read_one(cx, kind, namespace, name).await,
            None => self.list(cx).await,
        };
        match listed {
            Ok(listed) => cx.emit("out", listed).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl WorkloadList {
    async fn list(&self, cx: &Context) -> Result<Listed, NodeError> {
        let session = self.connection.session(cx).await?;
        let namespace = &self.settings.namespace;
        let mut found = Vec::new();
        for kind in WorkloadKind::ALL {
            let resource = kind.api_resource();
            let api: Api<DynamicObject> = if namespace.is_empty() {
                Api::all_with(session.client.clone(), &resource)
            } else {
                Api::namespaced_with(session.client.clone(), namespace, &resource)
            };
            let (group, plural) = kind.resource();
            let doing = format!(
                "list {plural}{}{group} {}",
                if group.is_empty() { "" } else { "." },
                scope(namespace)
            );
            let mut params = ListParams::default().limit(self.settings.page_size);
            if !self.settings.label_selector.is_empty() {
                params = params.labels(&self.settings.label_selector);
            }
            pages(&api, params, None, &session, &doing, |object| {
                let workload = describe(kind, object)?;
                if self.chooses(&workload) {
                    found.push(workload);
                }
                Ok(())
            })
            .await?;
        }
        add_account_pull_secrets(&session, &mut found).await?;
        found.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
        Ok(Listed { workloads: found, complete: true })
    }

    async fn read_one(
        &self,
        cx: &Context,
        kind: WorkloadKind,
        namespace: &str,
        name: &str,
    ) -> Result<Listed, NodeError> {
        let mut found = Vec::new();
        // Outside the namespace the settings list: left out, as the list would leave it.
        if !self.lists_namespace(namespace) {
            return Ok(Listed { workloads: found, complete: false });
        }
        let session = self.connection.session(cx).await?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(session.client.clone(), namespace, &kind.api_resource());
        let (_, plural) = kind.resource();
        let doing = format!("get {plural} {name} in namespace {namespace}");
        // Gone since the event: nothing to do, as for a workload the selector leaves out.
        if let Some(object) = api.get_opt(name).await.map_err(|err| session.error(&doing, err))? {
            let workload = describe(kind, object)?;
            if self.chooses(&workload) {
                found.push(workload);
            }
        }
        add_account_pull_secrets(&session, &mut found).await?;
        Ok(Listed { workloads: found, complete: false })
    }
}

impl WorkloadList {
    /// Whether the settings' list covers `namespace`.
    fn lists_namespace(&self, namespace: &str) -> bool {
        self.settings.namespace.is_empty() || self.settings.namespace == namespace
    }

    /// Whether the settings choose `workload`, which was read alone: its labels, and whether
    /// it is scaled to zero.
    fn chooses(&self, workload: &Workload) -> bool {
        self.selector.matches(Some(&workload.labels))
            && !(self.settings.skip_scaled_to_zero && workload.idle())
    }
}

impl Workload {
    fn idle(&self) -> bool {
        self.replicas == Some(0) || self.suspended
    }
}

/// Gives the workloads whose pods name no pull secret those of their ServiceAccount, reading
/// each account once.
async fn add_account_pull_secrets(
    session: &Session,
    workloads: &mut [Workload],
) -> Result<(), NodeError> {
    let mut accounts: HashMap<(String, String), Vec<String>> = HashMap::new();
    for workload in workloads.iter_mut().filter(|w| w.pull_secrets.is_empty()) {
        let key = (workload.namespace.clone(), workload.service_account.clone());
        if !accounts.contains_key(&key) {
            let secrets = account_pull_secrets(session, &key.0, &key.1).await?;
            accounts.insert(key.clone(), secrets);
        }
        workload.pull_secrets = accounts.get(&key).cloned().unwrap_or_default();
    }
    Ok(())
}

/// The pull secrets a ServiceAccount adds to pods that name none; none when it does not exist
/// (the pods would not start, and the mirror should not fail for it).
async fn account_pull_secrets(
    session: &Session,
    namespace: &str,
    name: &str,
) -> Result<Vec<String>, NodeError> {
    let accounts: Api<ServiceAccount> = Api::namespaced(session.client.clone(), namespace);
    let doing = format!("get serviceaccounts {name} in namespace {namespace}");
    let account = accounts.get_opt(name).await.map_err(|err| session.error(&doing, err))?;
    Ok(account
        .and_then(|a| a.image_pull_secrets)
        .unwrap_or_default()
        .into_iter()
        .map(|reference| reference.name)
        .filter(|name| !name.is_empty())
        .collect())
}

fn describe(kind: WorkloadKind, object: DynamicObject) -> Result<Workload, NodeError> {
    let metadata = object.metadata;
    let data = object.data;
    let pod_spec = kind.pod_spec_path().iter().try_fold(&data, |at, key| at.get(key));
    let pod: PodSpec = match pod_spec {
        Some(spec) => serde_json::from_value(spec.clone()).map_err(|err| {
            NodeError::invalid(format!(
                "{} {}/{}: its pod spec does not read: {err}",
                kind.name(),
                metadata.namespace.as_deref().unwrap_or_default(),
                metadata.name.as_deref().unwrap_or_default()
            ))
        })?,
        None => PodSpec::default(),
    };
    let images = |containers: Vec<Container>| {
        containers
            .into_iter()
            .map(|c| ContainerImage { name: c.name, image: c.image.unwrap_or_default() })
            .collect()
    };
    let spec = data.get("spec");
    let replicas = match kind {
        WorkloadKind::Deployment
        | WorkloadKind::StatefulSet
        | WorkloadKind::ReplicaSet
        | WorkloadKind::ReplicationController => {
            Some(spec.and_then(|s| s.get("replicas")).and_then(Json::as_i64).unwrap_or(1))
        }
        _ => None,
    };
    let suspended = kind == WorkloadKind::CronJob
        && spec.and_then(|s| s.get("suspend")).and_then(Json::as_bool) == Some(true);
    let controller = metadata
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .find(|owner| owner.controller == Some(true))
        .map(|owner| format!("{}/{}", owner.kind, owner.name));
    Ok(Workload {
        kind,
        namespace: metadata.namespace.unwrap_or_default(),
        name: metadata.name.unwrap_or_default(),
        labels: metadata.labels.unwrap_or_default(),
        annotations: metadata.annotations.unwrap_or_default(),
        replicas,
        suspended,
        controller,
        resource_version: metadata.resource_version.unwrap_or_default(),
        containers: images(pod.containers),
        init_containers: images(pod.init_containers.unwrap_or_default()),
        ephemeral_containers: pod
            .ephemeral_containers
            .unwrap_or_default()
            .into_iter()
            .map(|c| ContainerImage { name: c.name, image: c.image.unwrap_or_default() })
            .collect(),
        pull_secrets: pod
            .image_pull_secrets
            .unwrap_or_default()
            .into_iter()
            .map(|reference| reference.name)
            .filter(|name| !name.is_empty())
            .collect(),
        service_account: pod
            .service_account_name
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "default".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_finds_its_pod_spec_and_controller() {
        let cronjob = DynamicObject {
            types: None,
            metadata: serde_json::from_value(serde_json::json!({
                "name": "nightly", "namespace": "ops",
                "ownerReferences": [{"apiVersion": "v1", "kind": "Thing", "name": "t", "uid": "1"}],
            }))
            .unwrap(),
            data: serde_json::json!({"spec": {"suspend": true, "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "job", "image": "busybox:1"}],
                "imagePullSecrets": [{"name": "hub"}],
            }}}}}}),
        };
        let workload = describe(WorkloadKind::CronJob, cronjob).unwrap();
        assert_eq!(workload.containers[0].image, "busybox:1");
        assert_eq!(workload.pull_secrets, ["hub"]);
        assert!(workload.suspended && workload.idle());
        // An owner that is not the controller does not make it controlled.
        assert_eq!(workload.controller, None);

        let pod = DynamicObject {
            types: None,
            metadata: serde_json::from_value(serde_json::json!({
                "name": "web-1", "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7f", "uid": "2", "controller": true}],
            }))
            .unwrap(),
            data: serde_json::json!({"spec": {
                "containers": [{"name": "web", "image": "nginx"}],
                "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
            }}),
        };
        let workload = describe(WorkloadKind::Pod, pod).unwrap();
        assert_eq!(workload.controller.as_deref(), Some("ReplicaSet/web-7f"));
        assert_eq!(workload.ephemeral_containers[0].image, "busybox");
        assert_eq!(workload.replicas, None);
        assert_eq!(workload.service_account, "default");
    }

    /// A node of `settings` (JSON), and a Deployment in `namespace` with `labels`.
    fn node_and_workload(
        settings: Json,
        namespace: &str,
        labels: &[(&str, &str)],
    ) -> (WorkloadList, Workload) {
        let node = WorkloadList::build(serde_json::from_value(settings).unwrap()).unwrap();
        let deployment = DynamicObject {
            types: None,
            metadata: serde_json::from_value(serde_json::json!({
                "name": "web", "namespace": namespace,
                "labels": labels.iter().copied().collect::<BTreeMap<_, _>>(),
            }))
            .unwrap(),
            data: serde_json::json!({"spec": {"replicas": 0, "template": {"spec": {
                "containers": [{"name": "web", "image": "nginx"}],
            }}}}),
        };
        (node, describe(WorkloadKind::Deployment, deployment).unwrap())
    }

    #[test]
    fn a_workload_read_alone_is_chosen_as_the_list_would_choose_it() {
        let labels = [("app", "web"), ("env", "prod"), ("mirror.weir.dev/skip", "true")];
        for (selector, chosen) in [
            ("", true),
            ("app=web", true),
            ("app==web, tier!=test", true),
            ("mirror.weir.dev/skip!=true", false),
            ("!app", false),
            ("tier", false),
            // Set-based terms, whose commas sit inside the set.
            ("env in (prod,staging)", true),
            ("env in (staging,dev)", false),
            ("app=web,env notin (dev,test)", true),
            ("env notin (prod,test)", false),
        ] {
            let settings = serde_json::json!({ "labelSelector": selector });
            let (node, workload) = node_and_workload(settings, "shop", &labels);
            assert_eq!(node.chooses(&workload), chosen, "{selector}");
        }
        let settings = serde_json::json!({ "skipScaledToZero": true });
        let (node, workload) = node_and_workload(settings, "shop", &labels);
        assert!(!node.chooses(&workload), "scaled to zero");
    }

    #[test]
    fn a_workload_outside_the_settings_namespace_is_left_out() {
        let settings = serde_json::json!({ "namespace": "shop" });
        let (node, _) = node_and_workload(settings, "shop", &[]);
        assert!(node.lists_namespace("shop"));
        assert!(!node.lists_namespace("kube-system"));
        let (every, _) = node_and_workload(serde_json::json!({}), "shop", &[]);
        assert!(every.lists_namespace("kube-system"));
    }

    #[test]
    fn a_selector_that_does_not_parse_is_refused_naming_the_setting() {
        let settings = serde_json::json!({ "labelSelector": "env in prod" });
        let err = WorkloadList::build(serde_json::from_value(settings).unwrap()).unwrap_err();
        assert!(
            err.message().starts_with("settings.labelSelector: invalid label selector"),
            "{err}"
        );
    }

    #[test]
    fn only_jobs_and_pods_are_left_unpatched() {
        let unpatched: Vec<&str> = WorkloadKind::ALL
            .into_iter()
            .filter(|kind| !kind.patchable())
            .map(WorkloadKind::name)
            .collect();
        assert_eq!(unpatched, ["Job", "Pod"]);
        assert_eq!(WorkloadKind::named("CronJob"), Some(WorkloadKind::CronJob));
        assert_eq!(WorkloadKind::CronJob.api_resource().api_version, "batch/v1");
    }
}
