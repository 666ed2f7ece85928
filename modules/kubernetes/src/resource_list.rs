//! `resource_list`: lists objects of the kind its settings name, by label and field selector
//! (the settings' and a message's, both applying), a page at a time, keeping only the fields asked for, so a list of thousands travels as the
//! few fields a flow uses. A list longer than `maxItems` stops there and gives the continue
//! token a later message picks up from.

use kube::api::ListParams;
use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, JsonSchema, KindPermission, NodeError, Port, Value, json_size,
    read_message,
};

use crate::{
    access::{Cluster, Connection},
    dynamic::{
        DEFAULT_MAX_BYTES, KindSettings, Target, check_fields, check_max_bytes, namespace_of,
        pages, project,
    },
};

/// Settings of a resource list.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResourceListSettings {
    /// Which kind.
    #[serde(flatten)]
    pub kind: KindSettings,
    /// The namespace to list; empty for the message's, or every namespace when it names none.
    /// `weir rbac` grants a Role there, else a ClusterRole.
    #[schemars(extend("x-weir-picker" = "kubernetes-namespace"))]
    pub namespace: String,
    /// Only objects with these labels, such as `app=web,tier!=test`.
    pub label_selector: String,
    /// Only objects matching these fields, such as `status.phase=Failed`.
    pub field_selector: String,
    /// Only these fields of each object, as paths such as `/status/phase` (namespace and name
    /// always come along); empty for whole objects.
    pub fields: Vec<String>,
    /// How many objects to read per request (10 to 5000).
    pub page_size: u32,
    /// The most objects one message lists; the rest is left for a message giving the
    /// `continue` token the answer holds.
    pub max_items: u32,
    /// The most the answer may be as JSON, in bytes; a larger one fails naming its size.
    pub max_bytes: u32,
    /// Send failures (a denial, a bad selector) to the `error` output as data instead of
    /// failing the caller.
    pub error_port: bool,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

impl Default for ResourceListSettings {
    fn default() -> Self {
        Self {
            kind: KindSettings::of("v1", "ConfigMap"),
            namespace: String::new(),
            label_selector: String::new(),
            field_selector: String::new(),
            fields: Vec::new(),
            page_size: 500,
            max_items: 1000,
            max_bytes: DEFAULT_MAX_BYTES,
            error_port: false,
            cluster: Cluster::default(),
        }
    }
}

/// What to list.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wanted {
    /// The namespace, when the settings name none; empty for every namespace.
    #[serde(default)]
    pub namespace: String,
    /// Where an earlier answer stopped: its `continue` token.
    #[serde(default, rename = "continue")]
    pub continue_token: String,
    /// Only objects with these labels as well as those of settings.labelSelector, such as
    /// `batch.kubernetes.io/job-name=nightly-29012345`.
    #[serde(default, rename = "labelSelector")]
    pub label_selector: String,
    /// Only objects matching these fields as well as those of settings.fieldSelector.
    #[serde(default, rename = "fieldSelector")]
    pub field_selector: String,
}

/// The longest selector a message may give: far more than any real one, and short enough to
/// travel in the request's URL.
const MAX_SELECTOR_BYTES: usize = 4096;

/// The settings' selector `set` and a message's `given` (its `field`), both applying.
fn both_selectors(field: &str, set: &str, given: &str) -> Result<String, NodeError> {
    if given.len() > MAX_SELECTOR_BYTES {
        return Err(NodeError::invalid(format!(
            "in.{field}: {} bytes, over {MAX_SELECTOR_BYTES}",
            given.len()
        )));
    }
    Ok(match (set.is_empty(), given.is_empty()) {
        (_, true) => set.to_owned(),
        (true, false) => given.to_owned(),
        (false, false) => format!("{set},{given}"),
    })
}

/// The objects found.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Listed {
    /// The objects, or the fields of them asked for, in the apiserver's order.
    #[schemars(extend("x-weir-kubernetes-object" = true))]
    pub items: Vec<Value>,
    /// Where the list goes on, for a next message, when it stopped at `maxItems`; empty when
    /// it is whole.
    #[serde(rename = "continue")]
    pub continue_token: String,
}

/// A node of the resource list component.
#[derive(Debug)]
pub struct ResourceList {
    settings: ResourceListSettings,
    target: Target,
    connection: Connection,
}

impl Component for ResourceList {
    const NAME: &'static str = "resource_list";
    type Settings = ResourceListSettings;

    fn describe() -> Description {
        Description {
            label: "Resource list",
            description: "Lists objects of any kind by label and field selectors, a page at a time, keeping only the fields asked for.",
            tags: &["kubernetes", "list", "read", "selector"],
            trigger: false,
            permissions: &[],
        }
    }

    fn kind_permissions() -> &'static [KindPermission] {
        &[KindPermission { subresource: "", verbs: &["list"] }]
    }

    fn ports(settings: &ResourceListSettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Wanted>("in"), Port::output::<Listed>("out")],
            settings.error_port,
        )
    }

    fn build(settings: ResourceListSettings) -> Result<Self, NodeError> {
        let target = Target::new(&settings.kind)?;
        if !(10..=5000).contains(&settings.page_size) {
            return Err(NodeError::invalid(format!(
                "settings.pageSize: {} is not between 10 and 5000",
                settings.page_size
            )));
        }
        if settings.max_items == 0 {
            return Err(NodeError::invalid("settings.maxItems: must be at least 1"));
        }
        check_fields("fields", &settings.fields)?;
        check_max_bytes(settings.max_bytes)?;
        let connection = Connection::new(settings.cluster.clone());
        Ok(Self { settings, target, connection })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let wanted: Wanted = read_message(port, message.clone())?;
        match self.list(cx, wanted).await {
            Ok(listed) => cx.emit("out", listed).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl ResourceList {
    async fn list(&self, cx: &Context, wanted: Wanted) -> Result<Listed, NodeError> {
        let settings = &self.settings;
        let namespace = namespace_of(&settings.namespace, &wanted.namespace)?;
        let session = self.connection.session(cx).await?;
        let api = self.target.api(&session, &namespace).await?;
        let doing = self.target.doing("list", "", &namespace);
        let mut params = ListParams::default().limit(settings.page_size.min(settings.max_items));
        let labels =
            both_selectors("labelSelector", &settings.label_selector, &wanted.label_selector)?;
        if !labels.is_empty() {
            params = params.labels(&labels);
        }
        let fields =
            both_selectors("fieldSelector", &settings.field_selector, &wanted.field_selector)?;
        if !fields.is_empty() {
            params = params.fields(&fields);
        }
        if !wanted.continue_token.is_empty() {
            params = params.continue_token(&wanted.continue_token);
        }
        let (mut items, mut bytes) = (Vec::new(), 0);
        let max_items = Some(settings.max_items as usize);
        let paged = pages(&api, params, max_items, &session, &doing, |object| {
            let item = project(self.target.json_of(&object)?, &settings.fields);
            bytes += json_size(&item) + 1;
            if bytes > settings.max_bytes as usize {
                return Err(NodeError::invalid(format!(
                    "the list of {} is over this node's limit of {} bytes after {} items \
                     (settings.maxBytes); settings.fields or maxItems can make it smaller",
                    self.target.object("", &namespace),
                    settings.max_bytes,
                    items.len()
                )));
            }
            items.push(item);
            Ok(())
        })
        .await?;
        Ok(Listed { items, continue_token: paged.continue_token.unwrap_or_default() })
    }
}
