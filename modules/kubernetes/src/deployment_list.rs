//! `deployment_list`: the cluster's Deployments with what a mirror needs of each: every
//! container and init container with its image, and the pull secrets the kubelet would use
//! (the pod template's, or else its ServiceAccount's). Large clusters are read a page at a time.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::ServiceAccount};
use kube::{Api, api::ListParams};
use serde::{Deserialize, Serialize};
use weir_sdk::{Component, Context, Description, JsonSchema, NodeError, Permission, Port, Value};

use crate::{
    access::{Cluster, Connection, Session, scope},
    dynamic::pages,
};

/// Settings of a deployment list.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DeploymentListSettings {
    /// The namespace to list; empty for every namespace.
    pub namespace: String,
    /// Only Deployments with these labels, such as `app=web,tier!=test`.
    pub label_selector: String,
    /// Only Deployments matching these fields, such as `metadata.name=api`.
    pub field_selector: String,
    /// Leave out Deployments scaled to zero replicas.
    pub skip_scaled_to_zero: bool,
    /// How many Deployments to read per request (10 to 5000).
    pub page_size: u32,
    /// Send failures (a denial, an unknown Deployment) to the `error` output as data instead
    /// of failing the caller.
    pub error_port: bool,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

impl Default for DeploymentListSettings {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            label_selector: String::new(),
            field_selector: String::new(),
            skip_scaled_to_zero: false,
            page_size: 500,
            error_port: false,
            cluster: Cluster::default(),
        }
    }
}

/// What the list goes out as.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Listed {
    /// The Deployments, by namespace and name.
    pub deployments: Vec<DeploymentInfo>,
}

/// One Deployment.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentInfo {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// The replicas it asks for.
    pub replicas: i32,
    /// Its pod template's containers.
    pub containers: Vec<ContainerImage>,
    /// Its pod template's init containers.
    pub init_containers: Vec<ContainerImage>,
    /// The image pull secrets its pods use: the pod template's, or else its ServiceAccount's.
    pub pull_secrets: Vec<String>,
    /// The pod template's ServiceAccount.
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

/// A node of the deployment list component.
#[derive(Debug)]
pub struct DeploymentList {
    settings: DeploymentListSettings,
    connection: Connection,
}

impl Component for DeploymentList {
    const NAME: &'static str = "deployment_list";
    type Settings = DeploymentListSettings;

    fn describe() -> Description {
        Description {
            label: "Deployment list",
            description: "Lists Deployments with their containers' images and the pull secrets their pods use.",
            tags: &["kubernetes", "deployments", "images", "list"],
            trigger: false,
            permissions: &[
                Permission { api_group: "apps", resource: "deployments", verbs: &["list"] },
                Permission { api_group: "", resource: "serviceaccounts", verbs: &["get"] },
            ],
        }
    }

    fn ports(settings: &DeploymentListSettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Value>("in"), Port::output::<Listed>("out")],
            settings.error_port,
        )
    }

    fn build(settings: DeploymentListSettings) -> Result<Self, NodeError> {
        if !(10..=5000).contains(&settings.page_size) {
            return Err(NodeError::invalid(format!(
                "settings.pageSize: {} is not between 10 and 5000",
                settings.page_size
            )));
        }
        let connection = Connection::new(settings.cluster.clone());
        Ok(Self { settings, connection })
    }

    async fn handle(&self, cx: &Context, _: &str, message: Value) -> Result<Value, NodeError> {
        match self.list(cx).await {
            Ok(listed) => cx.emit("out", listed).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl DeploymentList {
    async fn list(&self, cx: &Context) -> Result<Listed, NodeError> {
        let session = self.connection.session(cx).await?;
        let namespace = &self.settings.namespace;
        let deployments: Api<Deployment> = if namespace.is_empty() {
            Api::all(session.client.clone())
        } else {
            Api::namespaced(session.client.clone(), namespace)
        };
        let doing = format!("list deployments.apps {}", scope(namespace));
        let mut params = ListParams::default().limit(self.settings.page_size);
        if !self.settings.label_selector.is_empty() {
            params = params.labels(&self.settings.label_selector);
        }
        if !self.settings.field_selector.is_empty() {
            params = params.fields(&self.settings.field_selector);
        }
        let mut found = Vec::new();
        let mut accounts: HashMap<(String, String), Vec<String>> = HashMap::new();
        pages(&deployments, params, None, &session, &doing, |deployment| {
            let info = describe(deployment);
            if !(self.settings.skip_scaled_to_zero && info.replicas == 0) {
                found.push(info);
            }
            Ok(())
        })
        .await?;
        for info in &mut found {
            if !info.pull_secrets.is_empty() {
                continue;
            }
            let key = (info.namespace.clone(), info.service_account.clone());
            if !accounts.contains_key(&key) {
                let secrets = account_pull_secrets(&session, &key.0, &key.1).await?;
                accounts.insert(key.clone(), secrets);
            }
            info.pull_secrets = accounts.get(&key).cloned().unwrap_or_default();
        }
        found.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(Listed { deployments: found })
    }
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

fn describe(deployment: Deployment) -> DeploymentInfo {
    let metadata = deployment.metadata;
    let spec = deployment.spec.unwrap_or_default();
    let pod = spec.template.spec.unwrap_or_default();
    let images = |containers: Vec<k8s_openapi::api::core::v1::Container>| {
        containers
            .into_iter()
            .map(|c| ContainerImage { name: c.name, image: c.image.unwrap_or_default() })
            .collect()
    };
    DeploymentInfo {
        namespace: metadata.namespace.unwrap_or_default(),
        name: metadata.name.unwrap_or_default(),
        labels: metadata.labels.unwrap_or_default(),
        annotations: metadata.annotations.unwrap_or_default(),
        replicas: spec.replicas.unwrap_or(1),
        containers: images(pod.containers),
        init_containers: images(pod.init_containers.unwrap_or_default()),
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
    }
}
