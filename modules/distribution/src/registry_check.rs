//! `registry_check`: lets a message through only while a registry answers. Put before the work
//! that relies on the registry (the image mirror's list, plan, copies and patches), it stops a
//! run at once when the registry is down or black-holed (takes connections, never answers),
//! instead of each copy waiting out its own timeouts, and says so: the run fails, transient,
//! naming the registry, and the node's `Degraded` condition (and so its flow's) says since when
//! it has not answered, until it answers again. With `announceDown`, a check that finds it
//! silent for longer than `downAfter` also sends `{registry, silentSince, silentSeconds}` on
//! `down`, once per outage, for a flow to act on (the image mirror reverts its workloads).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, HumanDuration, JsonSchema, NodeError, Port, Value,
};

use crate::client::{Options, Registry};

/// Settings of a registry check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RegistryCheckSettings {
    /// The registry, as host[:port], such as `registry.local:5000`.
    pub registry: String,
    /// Talk to it over plain HTTP.
    pub plain_http: bool,
    /// How long it may take to answer, such as `10s`; between 100ms and 5m.
    pub timeout: HumanDuration,
    /// Send on `down`, once per outage, when a check finds the registry silent for longer
    /// than `downAfter`.
    pub announce_down: bool,
    /// How long an outage lasts before it is announced on `down`, such as `30m`.
    pub down_after: HumanDuration,
}

impl Default for RegistryCheckSettings {
    fn default() -> Self {
        Self {
            registry: "registry.local:5000".to_owned(),
            plain_http: false,
            timeout: HumanDuration::from_secs(10),
            announce_down: false,
            down_after: HumanDuration::from_secs(30 * 60),
        }
    }
}

/// What the node keeps: since when the registry has not answered.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kept {
    /// Seconds since the Unix epoch of the first check it failed, while it fails.
    silent_since: Option<u64>,
    /// Whether this outage was announced on `down`.
    announced: bool,
}

/// What `down` carries.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Down {
    /// The registry.
    pub registry: String,
    /// Seconds since the Unix epoch of the first check it failed.
    pub silent_since: u64,
    /// How long it has been silent, in seconds.
    pub silent_seconds: u64,
}

/// A node of the registry check component.
#[derive(Debug)]
pub struct RegistryCheck {
    registry: Registry,
    timeout: std::time::Duration,
    announce_after: Option<u64>,
}

impl Component for RegistryCheck {
    const NAME: &'static str = "registry_check";
    type Settings = RegistryCheckSettings;

    fn describe() -> Description {
        Description {
            label: "Registry check",
            description: "Lets a message through only while a registry answers, so work that relies on it stops at once when it is down or silent.",
            tags: &["registry", "images", "health"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(_: &RegistryCheckSettings) -> Vec<Port> {
        vec![Port::input::<Value>("in"), Port::output::<Value>("out"), Port::output::<Down>("down")]
    }

    fn build(settings: RegistryCheckSettings) -> Result<Self, NodeError> {
        let timeout = settings.timeout.get();
        if !(std::time::Duration::from_millis(100)..=std::time::Duration::from_secs(300))
            .contains(&timeout)
        {
            return Err(NodeError::invalid(format!(
                "settings.timeout: {} is not between 100ms and 5m",
                settings.timeout
            )));
        }
        if crate::reference::registry_host(&settings.registry).is_none() {
            return Err(NodeError::invalid(format!(
                "settings.registry: {:?} is not a registry host[:port] (no scheme, no path)",
                settings.registry
            )));
        }
        let options = Options {
            plain_http: settings.plain_http,
            connect_timeout: timeout,
            ..Options::default()
        };
        let registry = Registry::with_options(&settings.registry, &options)
            .map_err(|err| NodeError::invalid(format!("settings.registry: {err}")))?;
        let announce_after = settings.announce_down.then(|| settings.down_after.get().as_secs());
        Ok(Self { registry, timeout, announce_after })
    }

    async fn handle(&self, cx: &Context, _: &str, message: Value) -> Result<Value, NodeError> {
        let mut kept: Kept = cx.state()?;
        match self.registry.ping(self.timeout).await {
            Ok(_) => {
                if kept.silent_since.take().is_some() {
                    kept.announced = false;
                    cx.save_state(&kept)?;
                    cx.set_degraded(None);
                }
                cx.emit("out", message).await
            }
            Err(err) => {
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |since| since.as_secs());
                let since = *kept.silent_since.get_or_insert(now);
                cx.save_state(&kept)?;
                let host = self.registry.host();
                let problem = format!(
                    "registry {host} has not answered for {} s: {err}",
                    now.saturating_sub(since)
                );
                cx.set_degraded(Some(problem.clone()));
                let silent_seconds = now.saturating_sub(since);
                if let Some(after) = self.announce_after
                    && silent_seconds >= after
                    && !kept.announced
                {
                    kept.announced = true;
                    cx.save_state(&kept)?;
                    let down =
                        Down { registry: host.to_owned(), silent_since: since, silent_seconds };
                    // What acting on it met is the node's to report; the next check tries again.
                    if let Err(failed) = cx.emit("down", down).await {
                        kept.announced = false;
                        cx.save_state(&kept)?;
                        cx.report(&failed);
                    }
                }
                Err(NodeError::transient(format!("{problem}; nothing that relies on it runs")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        for (settings, expected) in [
            (
                serde_json::json!({ "registry": "https://mirror.local" }),
                "settings.registry: \"https://mirror.local\" is not a registry host[:port] (no scheme, no path)",
            ),
            (
                serde_json::json!({ "timeout": "10m" }),
                "settings.timeout: 10m is not between 100ms and 5m",
            ),
        ] {
            let settings = serde_json::from_value(settings).unwrap();
            assert_eq!(RegistryCheck::build(settings).unwrap_err().message(), expected);
        }
    }
}
