//! The flow list: open, create, rename and delete flows, import manifests from a file and export
//! the open flow as the YAML `kubectl apply` takes.

use leptos::{ev, prelude::*, task::spawn_local};
use wasm_bindgen::JsCast as _;

use crate::{
    api::{self, ApiError},
    document::Document,
    editor::Editor,
};

/// The flow list.
#[component]
pub fn Flows() -> impl IntoView {
    let editor = expect_context::<Editor>();
    let new_name = RwSignal::new(String::new());
    let rename_to = RwSignal::new(String::new());
    let open_name =
        Memo::new(move |_| editor.doc.with(|d| d.as_ref().map(|d| d.name().to_owned())));

    let create = move |_| {
        let name = new_name.get_untracked().trim().to_owned();
        match Document::new(&name) {
            Ok(document) => {
                // A new flow: saved where no flow of its name is, else the stale choice.
                editor.show(document, None);
                editor.saved.set(None);
                new_name.set(String::new());
                editor.save();
            }
            Err(err) => {
                editor.fail(ApiError::from(format!("new flow: {err}")));
            }
        }
    };
    let rename = move |_| {
        let (Some(name), to) =
            (open_name.get_untracked(), rename_to.get_untracked().trim().to_owned())
        else {
            return;
        };
        spawn_local(async move {
            match api::rename(&name, &to).await {
                Ok((document, version)) => {
                    editor.show(document, version);
                    editor.done(format!("renamed {name} to {to}"));
                    rename_to.set(String::new());
                    editor.refresh_flows();
                }
                Err(err) => editor.fail(err),
            }
        });
    };
    let delete = move |_| {
        let Some(name) = open_name.get_untracked() else { return };
        let confirmed = window()
            .confirm_with_message(&format!("Delete flow {name} and its nodes?"))
            .unwrap_or(false);
        if !confirmed {
            return;
        }
        spawn_local(async move {
            match api::delete(&name).await {
                Ok(()) => {
                    editor.doc.set(None);
                    editor.saved.set(None);
                    editor.done(format!("deleted {name}"));
                    editor.refresh_flows();
                }
                Err(err) => editor.fail(err),
            }
        });
    };
    let export = move |_| {
        let Some(name) = open_name.get_untracked() else { return };
        spawn_local(async move {
            match api::export(&name).await {
                Ok(yaml) => download(&format!("{name}.yaml"), &yaml),
                Err(err) => editor.fail(err),
            }
        });
    };
    let import = move |event: ev::Event| {
        let input: Option<web_sys::HtmlInputElement> =
            event.target().and_then(|t| t.dyn_into().ok());
        let Some(file) = input.as_ref().and_then(|i| i.files()).and_then(|f| f.get(0)) else {
            return;
        };
        if let Some(input) = input {
            input.set_value("");
        }
        spawn_local(async move {
            let file_name = file.name();
            let text = wasm_bindgen_futures::JsFuture::from(file.text())
                .await
                .ok()
                .and_then(|t| t.as_string());
            let Some(text) = text else {
                editor.fail(ApiError::from(format!(
                    "import {file_name}: the file cannot be read as text"
                )));
                return;
            };
            match api::import(text).await {
                Ok(flows) => {
                    editor.done(format!("imported {file_name}: {}", flows.join(", ")));
                    editor.refresh_flows();
                    if let Some(first) = flows.into_iter().next() {
                        editor.open(first);
                    }
                }
                Err(mut err) => {
                    err.message = format!("{file_name}: {}", err.message);
                    editor.fail(err);
                }
            }
        });
    };

    view! {
        <section class="flows" aria-busy=move || crate::editor::busy(editor.loaded.get().flows)>
            <h2>"Flows"</h2>
            <ul data-testid="flow-list">
                <For
                    each=move || editor.flows.get()
                    key=|summary| (summary.flow.metadata.name.clone(), summary.nodes)
                    children=move |summary| {
                        let name = summary.flow.metadata.name.clone().unwrap_or_default();
                        let opened = name.clone();
                        let current = name.clone();
                        let open = Memo::new(move |_| open_name.get().as_deref() == Some(current.as_str()));
                        let nodes = summary.nodes;
                        view! {
                            <li class:open=open data-testid=format!("flow-{name}")>
                                <button
                                    class="flow-open"
                                    aria-current=move || open.get().then_some("true")
                                    on:click=move |_| editor.open(opened.clone())
                                    title=summary.flow.spec.description
                                >
                                    <span>{name.clone()}</span>
                                    <span class="count">{nodes}<span class="sr-only">{if nodes == 1 { " node" } else { " nodes" }}</span></span>
                                </button>
                            </li>
                        }
                    }
                />
            </ul>
            <div class="row">
                <input placeholder="new-flow-name" aria-label="New flow's name" data-testid="new-flow-name" prop:value=move || new_name.get() on:input=move |e| new_name.set(event_target_value(&e))/>
                <button data-testid="create-flow" on:click=create>"New"</button>
            </div>
            <Show when=move || open_name.get().is_some()>
                <div class="row">
                    <input placeholder="rename to" aria-label="Rename the open flow to" data-testid="rename-to" prop:value=move || rename_to.get() on:input=move |e| rename_to.set(event_target_value(&e))/>
                    <button data-testid="rename-flow" on:click=rename>"Rename"</button>
                </div>
                <div class="row">
                    <button data-testid="export-flow" on:click=export>"Export"</button>
                    <button data-testid="delete-flow" class="danger" on:click=delete>"Delete"</button>
                </div>
            </Show>
            <label class="import">
                "Import manifests… "
                <input type="file" accept=".yaml,.yml,.json" data-testid="import-file" on:change=import/>
            </label>
        </section>
    }
}

/// Offers `text` as a file download called `name`.
fn download(name: &str, text: &str) {
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/yaml");
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else { return };
    if let Ok(anchor) =
        document().create_element("a").map(|a| a.unchecked_into::<web_sys::HtmlAnchorElement>())
    {
        anchor.set_href(&url);
        anchor.set_download(name);
        anchor.click();
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}
