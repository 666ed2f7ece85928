//! The side panel for what is selected: a node's component help, settings form, ports (with
//! "send a test message" on each input), last error and, for a webhook, the URL it is called
//! at; or an edge's mapping panel.

use leptos::{prelude::*, task::spawn_local};
use serde_json::Value;

use crate::{
    api,
    editor::Editor,
    mapping_panel::MappingPanel,
    schema,
    session::{self, Webhooks},
    settings_form::SettingsForm,
};

/// The panel.
#[component]
pub fn Inspector() -> impl IntoView {
    let editor = expect_context::<Editor>();
    let selected = Memo::new(move |_| editor.selection.get());
    move || {
        let selection = selected.get();
        if let (Some(node), true) = (
            selection.nodes.iter().next(),
            selection.nodes.len() == 1 && selection.edges.is_empty(),
        ) {
            return view! { <NodePanel node=node.clone()/> }.into_any();
        }
        if let (Some((from, index)), true) = (
            selection.edges.iter().next(),
            selection.edges.len() == 1 && selection.nodes.is_empty(),
        ) {
            return view! { <MappingPanel from=from.clone() index=*index/> }.into_any();
        }
        let text = if selection.is_empty() {
            "Select a node to edit its settings, or an edge to edit its mapping. Drag components in from the palette; drag from an output port to an input port to wire them.".to_owned()
        } else {
            format!("{} nodes and {} edges selected.", selection.nodes.len(), selection.edges.len())
        };
        view! { <p class="help">{text}</p> }.into_any()
    }
}

#[component]
fn NodePanel(node: String) -> impl IntoView {
    let editor = expect_context::<Editor>();
    let spec = editor
        .doc
        .with_untracked(|d| d.as_ref().and_then(|d| d.node(&node)).map(|n| n.spec.clone()));
    let Some(spec) = spec else { return view! { <p>"This node is gone."</p> }.into_any() };
    let component = editor.component(spec.module.as_str(), spec.component.as_str());
    let title = component
        .as_ref()
        .map(|c| c.label.clone())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| spec.component.to_string());
    let description = component.as_ref().map(|c| c.description.clone()).unwrap_or_default();
    let problem_node = node.clone();
    let problem = move || {
        editor.statuses.with(|s| s.get(&problem_node).and_then(|s| s.problem())).map(|problem| {
            view! { <p class="problem" data-testid="node-problem">{problem}</p> }
        })
    };
    let error_node = node.clone();
    let last_error = move || {
        editor.statuses.with(|s| s.get(&error_node).and_then(|s| s.last_error.clone())).map(|e| {
            view! { <p class="problem" data-testid="last-error">{format!("{} ({}, {})", e.message, e.kind, e.time)}</p> }
        })
    };
    let inputs = editor.ports(&node).0;
    let send_node = node.clone();
    let hook = (spec.module.as_str() == "http" && spec.component.as_str() == "webhook")
        .then(|| view! { <WebhookUrl node=node.clone()/> });
    view! {
        <section class="node-panel" data-testid="node-panel">
            <h3>{node.clone()}</h3>
            <p class="kind">{format!("{title} · {}/{}", spec.module, spec.component)}</p>
            <p class="help">{description}</p>
            {problem}
            {last_error}
            {hook}
            <h4>"Settings"</h4>
            <SettingsForm node=node/>
            <h4>"Send a test message"</h4>
            {inputs.into_iter().map(|port| view! { <SendBox node=send_node.clone() port=port.name.to_string() schema=port.schema.unwrap_or(Value::Bool(true))/> }).collect_view()}
        </section>
    }
    .into_any()
}

/// A message box and a button that sends it to one input port of a saved node.
#[component]
fn SendBox(node: String, port: String, schema: Value) -> impl IntoView {
    let editor = expect_context::<Editor>();
    let text = RwSignal::new(
        serde_json::to_string_pretty(&schema::sample(&schema, &schema)).unwrap_or_default(),
    );
    let answer = RwSignal::new(String::new());
    let label = format!("{node}:{port}");
    let id = format!("send-{node}-{port}");
    let send = move |_| {
        let (node, port) = (node.clone(), port.clone());
        let message = match serde_json::from_str::<Value>(&text.get_untracked()) {
            Ok(message) => message,
            Err(err) => {
                answer.set(format!("not JSON: {err}"));
                return;
            }
        };
        if editor.unsaved() {
            answer.set("save the flow first: the engine runs what is saved".to_owned());
            return;
        }
        spawn_local(async move {
            match api::send_message(&node, &port, message).await {
                Ok(reply) => answer.set(serde_json::to_string_pretty(&reply).unwrap_or_default()),
                Err(err) => answer.set(err.to_string()),
            }
        });
    };
    view! {
        <div class="send">
            <label for=id.clone()>{label.clone()}</label>
            <textarea id=id class="code" rows="3" spellcheck="false" data-testid=format!("send-{label}") prop:value=move || text.get() on:input=move |e| text.set(event_target_value(&e))/>
            <button data-testid=format!("send-button-{label}") on:click=send>"Send"</button>
            <pre class="answer" data-testid=format!("send-answer-{label}")>{move || answer.get()}</pre>
        </div>
    }
}

/// Where a webhook node is called: `/hooks/{namespace}/{flow}/{node}` (and its sub-path
/// pattern) under the address the engine says webhooks are reached at, with a copy button.
#[component]
fn WebhookUrl(node: String) -> impl IntoView {
    let editor = expect_context::<Editor>();
    let base = use_context::<Webhooks>().and_then(|Webhooks(base)| base);
    let namespace = session::working_namespace();
    let known = base.is_some();
    let url = Memo::new(move |_| {
        editor.doc.with(|doc| {
            let doc = doc.as_ref()?;
            let path = doc.node(&node)?.spec.settings.get("path").and_then(Value::as_str);
            let sub = path.map(|p| p.trim_matches('/')).filter(|p| !p.is_empty());
            let root = base.clone().unwrap_or_else(|| "/hooks/".to_owned());
            let mut url = format!("{root}{namespace}/{}/{node}", doc.name());
            if let Some(sub) = sub {
                url.push('/');
                url.push_str(sub);
            }
            Some(url)
        })
    });
    let copied = RwSignal::new(false);
    let copy = move |_| {
        let (Some(text), Some(window)) = (url.get_untracked(), web_sys::window()) else { return };
        let written = window.navigator().clipboard().write_text(&text);
        spawn_local(async move {
            copied.set(wasm_bindgen_futures::JsFuture::from(written).await.is_ok());
        });
    };
    view! {
        <h4>"URL"</h4>
        <div class="webhook-url">
            <code data-testid="webhook-url">{move || url.get().unwrap_or_default()}</code>
            <button data-testid="copy-webhook-url" on:click=copy>{move || if copied.get() { "Copied" } else { "Copy" }}</button>
        </div>
        {(!known).then(|| view! { <p class="help">"The engine was not told where callers reach webhooks (weir engine --webhooks-url, the chart's modules.http.webhooks.url): this is the path on that address."</p> })}
    }
}
