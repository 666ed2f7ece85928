//! The editor's view of the cluster for the nodes that work on any Kubernetes kind: the kind
//! and namespace pickers of their settings (`x-weir-picker`), offering what the signed-in user
//! may list as the engine asks the cluster for them, and each kind's schema put in the place
//! of the object a port carries (`x-weir-kubernetes-object`), so mappings preview with the
//! kind's real fields. Where the engine has no cluster to ask (`weir up` without a kubeconfig)
//! the pickers are text fields again and the ports keep their own schema.

use std::collections::HashMap;

use leptos::{ev, prelude::*, task::spawn_local};
use serde_json::Value;
use weir_api::{KindSchema, KubernetesOffer};

use crate::api;

/// What the cluster offers, asked once per page when a picker first shows, and the kinds'
/// schemas as they are read.
#[derive(Debug, Clone, Copy)]
pub struct Cluster {
    offer: RwSignal<Option<Result<KubernetesOffer, String>>>,
    asked: StoredValue<bool>,
    /// Each kind's schema: none while the engine answers.
    schemas: RwSignal<HashMap<KindKey, Option<Result<KindSchema, String>>>>,
}

/// A kind by its API version and name.
type KindKey = (String, String);

impl Cluster {
    /// Nothing asked yet.
    pub fn new() -> Self {
        Self {
            offer: RwSignal::new(None),
            asked: StoredValue::new(false),
            schemas: RwSignal::new(HashMap::new()),
        }
    }

    /// The offer, asking the engine the first time; none while it answers.
    fn offer(self) -> Option<Result<KubernetesOffer, String>> {
        if !self.asked.get_value() {
            self.asked.set_value(true);
            spawn_local(async move {
                self.offer.set(Some(api::offer().await.map_err(|err| err.to_string())));
            });
        }
        self.offer.get()
    }

    /// The schema of `kind` in `api_version`, asking the engine the first time; none while it
    /// answers.
    pub fn schema(self, api_version: &str, kind: &str) -> Option<Result<KindSchema, String>> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(known) = self.schemas.with(|schemas| schemas.get(&key).cloned()) {
            return known;
        }
        // Marked as asked before the answer comes, so it is asked once.
        self.schemas.update_untracked(|schemas| {
            schemas.insert(key.clone(), None);
        });
        spawn_local(async move {
            let read = api::kind_schema(&key.0, &key.1).await.map_err(|err| err.to_string());
            self.schemas.update(|schemas| {
                schemas.insert(key, Some(read));
            });
        });
        None
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

/// A kind chosen in the picker: its apiVersion, its kind, and its resource (plural) where the
/// cluster offered it (`None` for a kind typed in, or the current one the cluster does not
/// offer).
pub type Picked = (String, String, Option<String>);

/// The kind picker: `current` is (apiVersion, kind); `pick` gets the chosen kind.
pub fn kind_picker(current: (String, String), testid: String, pick: Callback<Picked>) -> AnyView {
    let cluster = expect_context::<Cluster>();
    (move || match cluster.offer() {
        Some(Ok(offer)) => {
            let (api_version, kind) = current.clone();
            let mut offered: Vec<Picked> = offer
                .kinds
                .iter()
                .map(|k| (k.api_version.clone(), k.kind.clone(), Some(k.resource.clone())))
                .collect();
            let is_current = |(v, k, _): &Picked| *v == api_version && *k == kind;
            if !offered.iter().any(is_current) && !kind.is_empty() {
                offered.insert(0, (api_version.clone(), kind.clone(), None));
            }
            let (choices, options) = (offered.clone(), offered);
            // Without it a select shows its first kind as if it were chosen.
            let unchosen = kind.is_empty().then(|| {
                view! { <option value="" selected=true disabled=true>"(choose a kind)"</option> }
            });
            view! {
                <select data-testid=testid.clone() title="The kinds you may list in this namespace, as the cluster says" on:change=move |event: ev::Event| {
                    if let Some(chosen) = event_target_value(&event).parse::<usize>().ok().and_then(|i| options.get(i)) {
                        pick.run(chosen.clone());
                    }
                }>
                    {unchosen}
                    {choices.iter().enumerate().map(|(i, (v, k, _))| {
                        let selected = *v == api_version && *k == kind;
                        view! { <option value=i.to_string() selected=selected>{format!("{k} ({v})")}</option> }
                    }).collect_view()}
                </select>
            }
            .into_any()
        }
        unknown => {
            let (api_version, kind) = current.clone();
            let why = unknown.and_then(Result::err).unwrap_or_default();
            view! {
                <input type="text" data-testid=testid.clone() title=why prop:value=kind on:change=move |event: ev::Event| {
                    pick.run((api_version.clone(), event_target_value(&event), None));
                }/>
            }
            .into_any()
        }
    })
    .into_any()
}

/// The namespace picker: the namespaces offered, and empty for "from each message".
pub fn namespace_picker(current: String, testid: String, pick: Callback<String>) -> AnyView {
    let cluster = expect_context::<Cluster>();
    (move || match cluster.offer() {
        Some(Ok(offer)) => {
            let mut choices = vec![String::new()];
            choices.extend(offer.namespaces.iter().cloned());
            if !choices.contains(&current) {
                choices.push(current.clone());
            }
            let options = choices.clone();
            view! {
                <select data-testid=testid.clone() on:change=move |event: ev::Event| {
                    if let Some(chosen) = event_target_value(&event).parse::<usize>().ok().and_then(|i| options.get(i)) {
                        pick.run(chosen.clone());
                    }
                }>
                    {choices.iter().enumerate().map(|(i, namespace)| {
                        let text = if namespace.is_empty() { "(from each message)".to_owned() } else { namespace.clone() };
                        view! { <option value=i.to_string() selected=*namespace == current>{text}</option> }
                    }).collect_view()}
                </select>
            }
            .into_any()
        }
        unknown => {
            let why = unknown.and_then(Result::err).unwrap_or_default();
            view! {
                <input type="text" data-testid=testid.clone() title=why prop:value=current.clone() on:change=move |event: ev::Event| {
                    pick.run(event_target_value(&event));
                }/>
            }
            .into_any()
        }
    })
    .into_any()
}

/// The marker of a schema where an object of the node's kind goes.
const OBJECT: &str = "x-weir-kubernetes-object";

/// Whether `schema` holds an object of the node's kind somewhere.
pub fn holds_object(schema: &Value) -> bool {
    match schema {
        Value::Object(fields) => {
            fields.get(OBJECT) == Some(&Value::Bool(true)) || fields.values().any(holds_object)
        }
        Value::Array(items) => items.iter().any(holds_object),
        _ => false,
    }
}

/// `schema` with `kind` in the place of each object it marks (of each item, for a list).
pub fn with_kind(schema: &Value, kind: &Value) -> Value {
    match schema {
        Value::Object(fields) if fields.get(OBJECT) == Some(&Value::Bool(true)) => {
            if fields.get("type").and_then(Value::as_str) == Some("array") {
                let mut list = fields.clone();
                list.remove(OBJECT);
                list.insert("items".to_owned(), kind.clone());
                Value::Object(list)
            } else {
                kind.clone()
            }
        }
        Value::Object(fields) => Value::Object(
            fields.iter().map(|(name, inner)| (name.clone(), with_kind(inner, kind))).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| with_kind(i, kind)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_kind_goes_where_the_port_marks_an_object() {
        let kind = json!({ "type": "object", "properties": { "spec": { "type": "object" } } });
        let whole = json!({ "type": "object", "x-weir-kubernetes-object": true });
        assert!(holds_object(&whole));
        assert_eq!(with_kind(&whole, &kind), kind);
        let event = json!({ "type": "object", "properties": {
            "type": { "type": "string" },
            "object": { "description": "the object", "x-weir-kubernetes-object": true } } });
        assert_eq!(with_kind(&event, &kind)["properties"]["object"], kind);
        let list = json!({ "properties": { "items": { "type": "array", "items": true, "x-weir-kubernetes-object": true } } });
        assert_eq!(
            with_kind(&list, &kind)["properties"]["items"],
            json!({ "type": "array", "items": kind })
        );
        assert!(!holds_object(&json!({ "type": "object" })));
    }
}
