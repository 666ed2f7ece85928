//! `pod_logs`: reads what a pod's container wrote, as the kubelet keeps it: the last lines,
//! those since a time ago, at most a number of bytes (the kubelet stops there), so a crash
//! report carries the end of the story without a whole log.

use futures::AsyncReadExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::LogParams};
use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, HumanDuration, JsonSchema, NodeError, Permission, Port, Value,
    read_message,
};

use crate::{
    access::{Cluster, Connection, scope},
    dynamic::{MAX_BYTES_LIMIT, namespace_of},
};

/// Settings of a pod logs read.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PodLogsSettings {
    /// The namespace of the pods; empty to take it from each message. `weir rbac` grants a
    /// Role there, else a ClusterRole.
    #[schemars(extend("x-weir-picker" = "kubernetes-namespace"))]
    pub namespace: String,
    /// The container; empty for the message's, or the pod's only one.
    pub container: String,
    /// Only the last lines, this many; 0 for all the kubelet keeps.
    pub tail_lines: u32,
    /// Only what was written this long ago or since, such as `10m`; empty for all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<HumanDuration>,
    /// The most bytes to read (1 KiB to 8 MiB); the answer says when the log was cut there.
    pub limit_bytes: u32,
    /// The logs of the container's previous run, as after a crash.
    pub previous: bool,
    /// Each line starts with the time the kubelet received it.
    pub timestamps: bool,
    /// Send failures (a denial, an unknown pod) to the `error` output as data instead of
    /// failing the caller.
    pub error_port: bool,
    /// Which cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
}

impl Default for PodLogsSettings {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            container: String::new(),
            tail_lines: 100,
            since: None,
            limit_bytes: 64 * 1024,
            previous: false,
            timestamps: false,
            error_port: false,
            cluster: Cluster::default(),
        }
    }
}

/// Whose logs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wanted {
    /// The pod's namespace, when the settings name none.
    #[serde(default)]
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The container, when the settings name none.
    #[serde(default)]
    pub container: String,
}

/// What the container wrote.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Logs {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The container; empty when the pod's only one was meant.
    pub container: String,
    /// The lines, as text.
    pub text: String,
    /// Whether the text stopped at `limitBytes`.
    pub truncated: bool,
}

/// A node of the pod logs component.
#[derive(Debug)]
pub struct PodLogs {
    settings: PodLogsSettings,
    connection: Connection,
}

impl Component for PodLogs {
    const NAME: &'static str = "pod_logs";
    type Settings = PodLogsSettings;

    fn describe() -> Description {
        Description {
            label: "Pod logs",
            description: "Reads a pod container's logs: the last lines, those since a time ago, at most a number of bytes.",
            tags: &["kubernetes", "pods", "logs"],
            trigger: false,
            permissions: &[Permission { api_group: "", resource: "pods/log", verbs: &["get"] }],
        }
    }

    fn ports(settings: &PodLogsSettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Wanted>("in"), Port::output::<Logs>("out")],
            settings.error_port,
        )
    }

    fn build(settings: PodLogsSettings) -> Result<Self, NodeError> {
        if !(1024..=MAX_BYTES_LIMIT).contains(&settings.limit_bytes) {
            return Err(NodeError::invalid(format!(
                "settings.limitBytes: {} is not between 1024 and {MAX_BYTES_LIMIT}",
                settings.limit_bytes
            )));
        }
        if settings.since.as_ref().is_some_and(|since| since.get().as_secs() == 0) {
            return Err(NodeError::invalid("settings.since: must be at least a second"));
        }
        let connection = Connection::new(settings.cluster.clone());
        Ok(Self { settings, connection })
    }

    async fn handle(&self, cx: &Context, port: &str, message: Value) -> Result<Value, NodeError> {
        let wanted: Wanted = read_message(port, message.clone())?;
        match self.read(cx, wanted).await {
            Ok(logs) => cx.emit("out", logs).await,
            Err(err) => cx.fail(err, message).await,
        }
    }
}

impl PodLogs {
    async fn read(&self, cx: &Context, wanted: Wanted) -> Result<Logs, NodeError> {
        let settings = &self.settings;
        let namespace = namespace_of(&settings.namespace, &wanted.namespace)?;
        if namespace.is_empty() {
            return Err(NodeError::invalid(format!(
                "pod {}: a namespace is needed (in the settings or the message)",
                wanted.name
            )));
        }
        let container = if settings.container.is_empty() {
            wanted.container
        } else {
            settings.container.clone()
        };
        let session = self.connection.session(cx).await?;
        let pods: Api<Pod> = Api::namespaced(session.client.clone(), &namespace);
        let params = LogParams {
            container: (!container.is_empty()).then(|| container.clone()),
            tail_lines: (settings.tail_lines > 0).then_some(i64::from(settings.tail_lines)),
            since_seconds: settings
                .since
                .as_ref()
                .map(|since| i64::try_from(since.get().as_secs()).unwrap_or(i64::MAX)),
            limit_bytes: Some(i64::from(settings.limit_bytes)),
            previous: settings.previous,
            timestamps: settings.timestamps,
            ..LogParams::default()
        };
        let doing = format!("get pods/log {} {}", wanted.name, scope(&namespace));
        let stream = pods
            .log_stream(&wanted.name, &params)
            .await
            .map_err(|err| session.error(&doing, err))?;
        // The kubelet stops at limitBytes; the read stops there too, whatever answers.
        let mut bytes = Vec::new();
        stream
            .take(u64::from(settings.limit_bytes))
            .read_to_end(&mut bytes)
            .await
            .map_err(|err| NodeError::transient(format!("{doing}: the log broke off: {err}")))?;
        let truncated = bytes.len() >= settings.limit_bytes as usize;
        Ok(Logs { namespace, pod: wanted.name, container, text: log_text(bytes), truncated })
    }
}

/// A log's bytes as text: a program may write any bytes, and a cut at limitBytes may split a
/// character, which is dropped rather than shown half; other bytes that are not UTF-8 show as
/// U+FFFD.
fn log_text(mut bytes: Vec<u8>) -> String {
    // The last character's first byte (a UTF-8 character is at most 4 bytes), and whether
    // the bytes after it are fewer than it announces.
    let tail = bytes.len().saturating_sub(3);
    if let Some(first) = (tail..bytes.len()).rev().find(|&at| bytes[at] & 0xC0 != 0x80) {
        let announced = match bytes[first] {
            lead if lead >= 0xF0 => 4,
            lead if lead >= 0xE0 => 3,
            lead if lead >= 0xC0 => 2,
            _ => 1,
        };
        if bytes.len() - first < announced {
            bytes.truncate(first);
        }
    }
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_that_is_not_utf8_or_cut_inside_a_character_is_still_text() {
        assert_eq!(log_text(b"started\nready\n".to_vec()), "started\nready\n");
        // "née" cut after the first byte of "é".
        assert_eq!(log_text(b"n\xc3".to_vec()), "n");
        assert_eq!(log_text("née".as_bytes().to_vec()), "née");
        // Binary output in the middle, and a cut character at the end.
        assert_eq!(log_text(b"a\xff\xfeb\xe2\x82".to_vec()), "a\u{fffd}\u{fffd}b");
        // A four-byte character whole, and cut after three of its bytes.
        assert_eq!(log_text("x🦀".as_bytes().to_vec()), "x🦀");
        assert_eq!(log_text("x🦀".as_bytes()[..4].to_vec()), "x");
    }
}
