//! The edge panel: the data leaving the source port (the last message seen there, else a
//! sample from the port's schema, or for a port carrying objects of a Kubernetes kind every
//! field of that kind's schema as the cluster has it; editable to try other data), the edge's
//! mapping with
//! `{{ jq }}` fields, and a live preview of the mapped result with what the target port would
//! refuse. The preview runs in the browser with the engine's own mapping code.

use leptos::{ev, prelude::*};
use serde_json::{Value, json};
use weir_model::{
    flow_node::{DEFAULT_ATTEMPTS, DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF},
    mapping::Mapping,
};

use crate::{document::Delivery, editor::Editor, kubernetes, schema};

/// How many levels of a kind's fields the source data shows.
const KIND_DEPTH: usize = 5;

/// The panel of the edge at `index` of node `from`.
#[component]
pub fn MappingPanel(from: String, index: usize) -> impl IntoView {
    let editor = expect_context::<Editor>();
    let Some(edge) =
        editor.doc.with_untracked(|d| d.as_ref().and_then(|d| d.edge(&from, index)).cloned())
    else {
        return view! { <p>"This edge is gone."</p> }.into_any();
    };
    let (target_node, target_port, source_port) =
        (edge.to.node.to_string(), edge.to.port.to_string(), edge.port.to_string());
    let source_schema = editor
        .ports(&from)
        .1
        .into_iter()
        .find(|p| p.name.as_str() == source_port)
        .and_then(|p| p.schema)
        .unwrap_or(Value::Bool(true));
    let target_schema = editor
        .ports(&target_node)
        .0
        .into_iter()
        .find(|p| p.name.as_str() == target_port)
        .and_then(|p| p.schema)
        .unwrap_or(Value::Bool(true));

    let seen_node = from.clone();
    let seen_port = source_port.clone();
    let last_seen = editor.seen.with_untracked(|seen| {
        seen.iter()
            .rev()
            .find(|m| m.node == seen_node && m.port == seen_port && m.what == "emitted")
            .map(|m| m.payload.clone())
    });
    let from_message = last_seen.is_some();
    let kind = (!from_message && kubernetes::holds_object(&source_schema))
        .then(|| kind_of(&editor, &from))
        .flatten();
    let source_label = RwSignal::new(if from_message {
        "Source data (the last message on this port)"
    } else {
        "Source data (a sample from the port's schema; edit it to try)"
    });
    let source_text = RwSignal::new(
        serde_json::to_string_pretty(
            &last_seen.unwrap_or_else(|| schema::sample(&source_schema, &source_schema)),
        )
        .unwrap_or_default(),
    );
    if let Some((api_version, kind)) = kind {
        // The kind's fields, once the cluster's schema of it comes (unless edited meanwhile).
        let cluster = expect_context::<kubernetes::Cluster>();
        let sampled = source_text.get_untracked();
        let port_schema = source_schema;
        Effect::new(move |_| {
            if let Some(Ok(kind_schema)) = cluster.schema(&api_version, &kind)
                && source_text.get_untracked() == sampled
            {
                let whole = kubernetes::with_kind(&port_schema, &kind_schema);
                let outline = schema::outline(&whole, &whole, KIND_DEPTH);
                source_text.set(serde_json::to_string_pretty(&outline).unwrap_or_default());
                source_label.set("Source data (every field of the kind, from the cluster's schema; edit it to try)");
            }
        });
    }
    let mapping_text = RwSignal::new(
        edge.mapping
            .as_ref()
            .map(|m| serde_json::to_string_pretty(m).unwrap_or_default())
            .unwrap_or_default(),
    );

    let preview_schema = target_schema.clone();
    let preview = Memo::new(move |_| -> (String, Vec<String>) {
        let source: Value = match serde_json::from_str(&source_text.get()) {
            Ok(value) => value,
            Err(err) => return (String::new(), vec![format!("source data is not JSON: {err}")]),
        };
        let text = mapping_text.get();
        let result = if text.trim().is_empty() {
            source
        } else {
            let document: Value = match serde_json::from_str(&text) {
                Ok(document) => document,
                Err(err) => {
                    return (String::new(), vec![format!("the mapping is not JSON: {err}")]);
                }
            };
            let mapping = match Mapping::compile(&document) {
                Ok(mapping) => mapping,
                Err(errors) => {
                    return (String::new(), errors.iter().map(ToString::to_string).collect());
                }
            };
            let mut problems: Vec<String> =
                mapping.misfits(&preview_schema).iter().map(ToString::to_string).collect();
            match mapping.evaluate(&source, &json!({})) {
                Ok(result) => {
                    problems.extend(schema::problems(&preview_schema, &preview_schema, &result));
                    return (serde_json::to_string_pretty(&result).unwrap_or_default(), problems);
                }
                Err(err) => return (String::new(), vec![err.to_string()]),
            }
        };
        let problems = schema::problems(&preview_schema, &preview_schema, &result);
        (serde_json::to_string_pretty(&result).unwrap_or_default(), problems)
    });

    let commit_from = from.clone();
    let commit = move |event: ev::Event| {
        let text = event_target_value(&event);
        let mapping = if text.trim().is_empty() {
            Some(None)
        } else {
            serde_json::from_str::<Value>(&text).ok().map(Some)
        };
        if let Some(mapping) = mapping {
            let from = commit_from.clone();
            editor.edit(move |doc| doc.set_mapping(&from, index, mapping));
        }
    };
    let start_from = from.clone();
    let start_schema = target_schema;
    let start = move |_| {
        // A mapping shaped like the target, each field taken from the source when it has one.
        let sample = schema::sample(&start_schema, &start_schema);
        let source: Value =
            serde_json::from_str(&source_text.get_untracked()).unwrap_or(Value::Null);
        let document = match sample {
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(name, value)| {
                        let taken = if source.get(&name).is_some() {
                            Value::String(format!("{{{{ .{name} }}}}"))
                        } else {
                            value
                        };
                        (name, taken)
                    })
                    .collect(),
            ),
            other => other,
        };
        let text = serde_json::to_string_pretty(&document).unwrap_or_default();
        mapping_text.set(text);
        let from = start_from.clone();
        editor.edit(move |doc| doc.set_mapping(&from, index, Some(document)));
    };

    let delivery_from = from.clone();
    let delivery = RwSignal::new(
        editor
            .doc
            .with_untracked(|d| d.as_ref().map(|d| d.delivery(&from, index)).unwrap_or_default()),
    );
    let delivery_problem = RwSignal::new(String::new());
    let set_delivery = move |change: fn(&mut Delivery, String), event: ev::Event| {
        delivery.update(|d| change(d, event_target_value(&event)));
        let (from, wanted) = (delivery_from.clone(), delivery.get_untracked());
        let mut refused = None;
        editor.edit(|doc| {
            if let Err(err) = doc.set_delivery(&from, index, &wanted) {
                refused = Some(err.to_string());
            }
        });
        delivery_problem.set(refused.unwrap_or_default());
    };
    let field = move |label: &'static str,
                      testid: &'static str,
                      placeholder: String,
                      read: fn(&Delivery) -> String,
                      change: fn(&mut Delivery, String)| {
        let set_delivery = set_delivery.clone();
        view! {
            <label for=testid>{label}</label>
            <input type="text" id=testid data-testid=testid placeholder=placeholder prop:value=move || delivery.with(read) on:change=move |event| set_delivery(change, event)/>
        }
    };

    view! {
        <section class="mapping" data-testid="mapping-panel">
            <h3>{format!("{from}:{source_port} → {target_node}:{target_port}")}</h3>
            <label for="mapping-source" data-testid="mapping-source-label">{move || source_label.get()}</label>
            <textarea class="code" rows="6" spellcheck="false" id="mapping-source" data-testid="mapping-source" prop:value=move || source_text.get() on:input=move |e| source_text.set(event_target_value(&e))/>
            <label for="mapping-text">"Mapping: a document shaped like the target's input; \"{{ jq }}\" takes data from the source. Empty passes the message on as it is."</label>
            <textarea class="code" rows="8" spellcheck="false" id="mapping-text" data-testid="mapping-text" prop:value=move || mapping_text.get() on:input=move |e| mapping_text.set(event_target_value(&e)) on:change=commit/>
            <button data-testid="mapping-start" on:click=start>"Start from the target's fields"</button>
            <h4>"Preview"</h4>
            <pre class="preview" data-testid="mapping-preview">{move || preview.get().0}</pre>
            <ul class="problems" data-testid="mapping-problems">
                {move || preview.get().1.into_iter().map(|p| view! { <li>{p}</li> }).collect_view()}
            </ul>
            <h4>"Delivery"</h4>
            <p class="help">{format!("Transient failures are retried with exponential backoff up to the attempts; empty fields take the defaults ({DEFAULT_ATTEMPTS} attempts, {DEFAULT_INITIAL_BACKOFF:?}, {DEFAULT_MAX_BACKOFF:?}).")}</p>
            {field("Attempts", "edge-attempts", DEFAULT_ATTEMPTS.to_string(), |d| d.attempts.clone(), |d, v| d.attempts = v)}
            {field("Initial backoff", "edge-initial-backoff", format!("{DEFAULT_INITIAL_BACKOFF:?}"), |d| d.initial_backoff.clone(), |d, v| d.initial_backoff = v)}
            {field("Max backoff", "edge-max-backoff", format!("{DEFAULT_MAX_BACKOFF:?}"), |d| d.max_backoff.clone(), |d, v| d.max_backoff = v)}
            {field("Timeout", "edge-timeout", "the runtime's".to_owned(), |d| d.timeout.clone(), |d, v| d.timeout = v)}
            <p class="problem" data-testid="edge-delivery-problem">{move || delivery_problem.get()}</p>
        </section>
    }
    .into_any()
}

/// The (apiVersion, kind) node `node`'s settings name, their defaults where unset.
fn kind_of(editor: &Editor, node: &str) -> Option<(String, String)> {
    let spec = editor.doc.with_untracked(|d| d.as_ref()?.node(node).map(|n| n.spec.clone()))?;
    let settings_schema = editor
        .component(spec.module.as_str(), spec.component.as_str())
        .and_then(|c| c.settings_schema)
        .unwrap_or(Value::Null);
    let text = |key: &str| {
        let default = || settings_schema.get("properties")?.get(key)?.get("default");
        spec.settings.get(key).or_else(default).and_then(Value::as_str).map(str::to_owned)
    };
    Some((text("apiVersion")?, text("kind")?)).filter(|(v, k)| !v.is_empty() && !k.is_empty())
}
