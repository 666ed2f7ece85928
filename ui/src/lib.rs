//! The Weir editor: a Leptos app in the browser that builds, runs and debugs flows through the
//! engine's API (docs/api.md). `main.rs` mounts [`App`]; each panel is its own module, and the
//! rules of editing ([`document`], [`geometry`], [`schema`]) are plain Rust tested natively.

// Leptos components take their properties by value.
#![allow(clippy::needless_pass_by_value)]

pub mod api;
pub mod canvas;
pub mod debug_panel;
pub mod document;
pub mod editor;
pub mod flows;
pub mod focus;
pub mod gallery;
pub mod geometry;
pub mod inspector;
pub mod kubernetes;
pub mod live;
pub mod mapping_panel;
pub mod palette;
pub mod runs_panel;
pub mod schema;
pub mod session;
pub mod settings_form;
pub mod shortcuts;

use leptos::prelude::*;

use crate::{
    canvas::Canvas,
    debug_panel::DebugPanel,
    editor::{Editor, Notice},
    flows::Flows,
    gallery::Gallery,
    inspector::Inspector,
    palette::Palette,
    runs_panel::RunsPanel,
};

/// The whole editor.
#[component]
pub fn App() -> impl IntoView {
    let editor = Editor::start();
    provide_context(editor);
    provide_context(kubernetes::Cluster::new());
    live::follow(editor);
    shortcuts::listen(editor);
    view! {
        <div class="editor">
            <header>
                <h1 class="brand">"Weir"</h1>
                <Toolbar/>
                <NoticeBar/>
                <session::NamespacePicker/>
                <session::Who/>
            </header>
            <aside class="left" aria-label="Flows, solutions and components">
                <Flows/>
                <Gallery/>
                <Palette/>
            </aside>
            <main>
                <StaleChoice/>
                <Show
                    when=move || editor.doc.with(Option::is_some)
                    fallback=|| view! { <p class="empty">"Open a flow from the list, or make a new one."</p> }
                >
                    <Canvas/>
                </Show>
            </main>
            <aside class="right" aria-label="Selection">
                <Inspector/>
            </aside>
            <footer>
                <DebugPanel/>
                <RunsPanel/>
            </footer>
        </div>
    }
}

/// Save, undo, redo and the flow's live check.
#[component]
fn Toolbar() -> impl IntoView {
    let editor = expect_context::<Editor>();
    let problems = Memo::new(move |_| {
        // The nodes as last reported, as ports resolved for their settings live in status.
        let nodes: Vec<weir_model::FlowNode> = editor.nodes.with(|nodes| {
            editor.statuses.with(|statuses| {
                nodes
                    .iter()
                    .flatten()
                    .cloned()
                    .map(|mut node| {
                        let reported = node.metadata.name.as_ref().and_then(|n| statuses.get(n));
                        if let Some(status) = reported {
                            node.status = Some(status.clone());
                        }
                        node
                    })
                    .collect()
            })
        });
        let mut problems =
            editor.modules.with(|modules| weir_model::check::check_flow(&nodes, modules));
        // What the modules say of the nodes they run: one not built, one degraded.
        problems.extend(nodes.iter().filter_map(|node| {
            let problem = node.status.as_ref()?.problem()?;
            Some(weir_model::check::Problem {
                node: node.metadata.name.clone()?,
                edge: None,
                field: "status".to_owned(),
                message: problem,
            })
        }));
        problems
    });
    let can = move |undo: bool| {
        editor.revision.track();
        editor.history.with_value(|h| if undo { h.can_undo() } else { h.can_redo() })
    };
    view! {
        <nav class="toolbar">
            <span class="flow-name" data-testid="flow-name">{move || editor.doc.with(|d| d.as_ref().map(|d| d.name().to_owned()).unwrap_or_default())}</span>
            <button data-testid="save" disabled=move || !editor.unsaved() on:click=move |_| editor.save()>
                {move || if editor.unsaved() { "Save" } else { "Saved" }}
            </button>
            <button data-testid="undo" title="Undo (Ctrl+Z)" disabled=move || !can(true) on:click=move |_| editor.undo()>"Undo"</button>
            <button data-testid="redo" title="Redo (Ctrl+Shift+Z)" disabled=move || !can(false) on:click=move |_| editor.redo()>"Redo"</button>
            <button title="Reset zoom" on:click=move |_| editor.view.set(geometry::View::default())>"100%"</button>
            <button data-testid="fit" title="Fit the flow into view" disabled=move || editor.doc.with(Option::is_none) on:click=move |_| editor.fit_wanted.set(true)>"Fit"</button>
            <label class="suspend" title="A suspended flow's triggers stop and it starts no new run; runs under way finish. Save to apply.">
                <input
                    type="checkbox"
                    data-testid="suspend"
                    disabled=move || editor.doc.with(Option::is_none)
                    prop:checked=move || editor.doc.with(|d| d.as_ref().is_some_and(document::Document::suspended))
                    on:change=move |event| {
                        let suspended = event_target_checked(&event);
                        editor.edit(|doc| doc.set_suspended(suspended));
                    }
                />
                "Suspended"
            </label>
            <span class="check" data-testid="check" title={move || problems.get().iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")}>
                {move || match problems.get().len() {
                    0 => "no problems".to_owned(),
                    1 => "1 problem".to_owned(),
                    n => format!("{n} problems"),
                }}
            </span>
        </nav>
    }
}

/// The latest success or failure.
#[component]
fn NoticeBar() -> impl IntoView {
    let editor = expect_context::<Editor>();
    move || {
        editor.notice.get().map(|notice| {
            let (class, role, text) = match notice {
                Notice::Done(text) => ("notice done", "status", text),
                Notice::Failed(error) => ("notice failed", "alert", error.to_string()),
            };
            view! {
                <div class=class role=role data-testid="notice" title="Click to dismiss" on:click=move |_| editor.notice.set(None)>
                    <pre>{text}</pre>
                </div>
            }
        })
    }
}

/// The choice offered when a save was refused because someone else changed the flow since it
/// was opened, or a flow made here has a taken name: reload it as stored (dropping the edits
/// made here) or overwrite it.
#[component]
fn StaleChoice() -> impl IntoView {
    let editor = expect_context::<Editor>();
    move || {
        let refusal = editor.stale.get()?;
        let name = editor.doc.with_untracked(|d| d.as_ref().map(|d| d.name().to_owned()))?;
        let reload = move |_| {
            editor.stale.set(None);
            editor.load(name.clone());
        };
        // A flow made here that was never saved meets a flow of its name, not a change.
        let made_here = editor.version.with_value(Option::is_none);
        let (title, choice) = if made_here {
            (
                "A flow of this name exists already",
                ". Reload to open it (the new flow is dropped), or overwrite it with the new one.",
            )
        } else {
            (
                "Someone else changed this flow since you opened it",
                ". Reload it to see their change (your unsaved edits are dropped), or overwrite \
                 their change with yours.",
            )
        };
        focus::soon("[data-testid=stale-reload]");
        Some(view! {
            <div class="stale" role="alertdialog" aria-labelledby="stale-title" aria-describedby="stale-why" data-testid="stale">
                <h2 id="stale-title">{title}</h2>
                <p id="stale-why">{refusal}{choice}</p>
                <button data-testid="stale-reload" on:click=reload>"Reload"</button>
                <button data-testid="stale-overwrite" class="danger" on:click=move |_| editor.overwrite()>"Overwrite"</button>
                <button on:click=move |_| editor.stale.set(None)>"Cancel"</button>
            </div>
        })
    }
}
