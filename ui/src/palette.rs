//! The palette: every component of every module's catalogue, searchable by name, label, tag and
//! description, with its help text: the entry's tooltip, and shown in the entry while it has
//! the keyboard's focus (not on hover: an entry that grew as the pointer passed moved the
//! entries below it, so a press could land on another than the pointer was put on). Drag one
//! onto the canvas, or click it (Enter from the keyboard) to add it in view.

use leptos::{ev, prelude::*};
use serde_json::{Map, Value};
use weir_model::Position;

use crate::{document::Selection, editor::Editor, schema};

/// Adds a node of `module`/`component` at `at`, with its settings' defaults, and selects it.
pub fn add(editor: Editor, module: &str, component: &str, at: Position) {
    let settings = editor
        .component(module, component)
        .and_then(|c| c.settings_schema)
        .map(|root| match schema::sample(&root, &root) {
            Value::Object(object) => object,
            _ => Map::new(),
        })
        .unwrap_or_default();
    let mut added = None;
    let mut refused = None;
    editor.edit(|doc| match doc.add_node(module, component, settings, at) {
        Ok(name) => added = Some(name),
        Err(err) => refused = Some(err.to_string()),
    });
    if let Some(name) = added {
        editor.selection.set(Selection::node(&name));
    }
    if let Some(message) = refused {
        editor.fail(crate::api::ApiError::from(message));
    }
}

/// The palette.
#[component]
pub fn Palette() -> impl IntoView {
    let editor = expect_context::<Editor>();
    let search = RwSignal::new(String::new());
    let entries = Memo::new(move |_| {
        let wanted = search.get().to_lowercase();
        editor.modules.with(|modules| {
            let mut found = Vec::new();
            for module in modules {
                let module_name = module.metadata.name.clone().unwrap_or_default();
                for component in &module.spec.components {
                    let haystack = format!(
                        "{module_name} {} {} {} {}",
                        component.name,
                        component.label,
                        component.description,
                        component.tags.join(" ")
                    )
                    .to_lowercase();
                    if wanted.split_whitespace().all(|w| haystack.contains(w)) {
                        found.push((module_name.clone(), component.clone()));
                    }
                }
            }
            found
        })
    });
    view! {
        <section class="palette" aria-busy=move || crate::editor::busy(editor.loaded.get().modules)>
            <h2>"Components"</h2>
            <input
                type="search"
                placeholder="Search components"
                aria-label="Search components"
                data-testid="palette-search"
                prop:value=move || search.get()
                on:input=move |event| search.set(event_target_value(&event))
            />
            <ul>
                <For
                    each=move || entries.get()
                    key=|(module, component)| format!("{module}/{}", component.name)
                    children=move |(module, component)| {
                        let id = format!("{module}/{}", component.name);
                        let drag_id = id.clone();
                        let (add_module, add_component) = (module, component.name.to_string());
                        let label = if component.label.is_empty() { component.name.to_string() } else { component.label.clone() };
                        view! {
                            <li
                                class="component"
                                draggable="true"
                                title=component.description
                                data-testid=format!("palette-{id}")
                                on:dragstart=move |event: ev::DragEvent| {
                                    if let Some(data) = event.data_transfer() {
                                        let _ = data.set_data("text/plain", &drag_id);
                                    }
                                }
                            >
                                <button
                                    class="component-add"
                                    disabled=move || editor.doc.with(Option::is_none)
                                    on:click=move |_| {
                                        let view = editor.view.get_untracked();
                                        let at = view.to_canvas(120.0, 120.0);
                                        add(editor, &add_module, &add_component, at);
                                    }
                                >
                                    <span class="component-label">{label}</span>
                                    <span class="component-module">{id.clone()}</span>
                                    <span class="help">{component.description.clone()}</span>
                                </button>
                            </li>
                        }
                    }
                />
            </ul>
        </section>
    }
}
