//! The runs panel: the open flow's last runs as the engine keeps them, newest first. Choosing
//! one draws its path on the canvas (the nodes it reached) and lists what each node received,
//! each with a button that sends that message to its node again (replay), starting a new run.

use leptos::{prelude::*, task::spawn_local};
use weir_api::{RunRecord, RunSummary};

use crate::{api, editor::Editor};

/// The least time between two loads of the list that new messages ask for, in milliseconds:
/// a flow running many runs a second must not make as many requests.
const RELOAD_EVERY_MS: f64 = 1000.0;

/// The panel.
#[component]
pub fn RunsPanel() -> impl IntoView {
    let editor = expect_context::<Editor>();
    let runs = RwSignal::new(Vec::<RunSummary>::new());
    let chosen = RwSignal::new(None::<RunRecord>);
    let loaded_at = StoredValue::new(0.0_f64);
    let flow = Memo::new(move |_| editor.doc.with(|d| d.as_ref().map(|d| d.name().to_owned())));
    let load = move || {
        let Some(flow) = flow.get_untracked() else { return };
        loaded_at.set_value(js_sys::Date::now());
        spawn_local(async move {
            match api::runs(&flow).await {
                Ok(list) => runs.set(list),
                Err(err) => editor.fail(err),
            }
        });
    };
    Effect::new(move |_| {
        flow.track();
        chosen.set(None);
        runs.set(Vec::new());
        // A new flow the engine does not have yet has no runs.
        if editor.saved.with_untracked(Option::is_some) {
            load();
        }
    });
    // A message of a run the list does not show yet: load the list again, now and then.
    Effect::new(move |_| {
        let Some(trace) = editor.seen.with(|seen| seen.back().map(|m| m.trace_id.clone())) else {
            return;
        };
        let known = runs.with_untracked(|runs| runs.iter().any(|run| run.run == trace));
        if !known && js_sys::Date::now() - loaded_at.get_value() >= RELOAD_EVERY_MS {
            load();
        }
    });
    let choose = move |id: String| {
        spawn_local(async move {
            match api::run(&id).await {
                Ok(record) => {
                    editor.run_path.set(record.summary.nodes.clone());
                    chosen.set(Some(record));
                }
                Err(err) => editor.fail(err),
            }
        });
    };
    let replay = move |id: String, node: String| {
        spawn_local(async move {
            match api::replay(&id, &node).await {
                Ok(_) => {
                    editor.done(format!("sent {node} its message of run {} again", short(&id)));
                    load();
                }
                Err(err) => editor.fail(err),
            }
        });
    };
    // Keyed by the run as listed: a reload moves each row to where its run now is instead of
    // writing another run into the row under the pointer, and a run that changed gets a new row.
    let row = move |run: RunSummary| {
        let id = run.run.clone();
        let current = id.clone();
        let is_chosen =
            move || chosen.with(|c| c.as_ref().is_some_and(|c| c.summary.run == current));
        view! {
            <li class=format!("run {}", run.outcome.as_str()) class:chosen=is_chosen data-testid="run">
                <button on:click=move |_| choose(id.clone()) title=run.run.clone()>
                    <span class="time">{time_of(&run.started)}</span>
                    <span class="outcome">{run.outcome.as_str()}</span>
                    <span class="path">{run.nodes.join(" → ")}</span>
                </button>
            </li>
        }
    };
    let received = move || {
        chosen.get().map(|record| {
            let id = record.summary.run.clone();
            let messages = record.messages.into_iter().filter(|m| m.what == "received");
            view! {
                <ol class="run-messages" data-testid="run-messages">
                    {messages.map(|message| {
                        let (id, node) = (id.clone(), message.node.clone());
                        let payload = serde_json::to_string(&message.payload).unwrap_or_default();
                        view! {
                            <li>
                                <span class="where">{format!("{}:{}", message.node, message.port)}</span>
                                <code>{payload}</code>
                                <button data-testid=format!("replay-{node}") title="Send this message to the node again"
                                    on:click=move |_| replay(id.clone(), node.clone())>"Replay"</button>
                            </li>
                        }
                    }).collect_view()}
                </ol>
            }
        })
    };
    view! {
        <section class="runs" data-testid="runs-panel">
            <h2>"Runs" <button class="refresh" data-testid="runs-refresh" on:click=move |_| load()>"Refresh"</button></h2>
            <ol>
                <For each=move || runs.get() key=|run| run.clone() children=row/>
            </ol>
            {received}
        </section>
    }
}

/// The time of day of an RFC 3339 time, to the millisecond.
fn time_of(time: &str) -> String {
    time.get(11..23).unwrap_or(time).to_owned()
}

/// A run id as short as the panel shows it.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
