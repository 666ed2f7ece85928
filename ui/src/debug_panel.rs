//! The debug panel: the messages the open flow's nodes saw, newest first, for the selected nodes
//! when some are selected. Payloads arrive with secrets already hidden by the engine.

use leptos::prelude::*;

use crate::editor::Editor;

/// How many messages the panel shows.
const SHOWN: usize = 100;

/// The panel.
#[component]
pub fn DebugPanel() -> impl IntoView {
    let editor = expect_context::<Editor>();
    let shown = Memo::new(move |_| {
        let nodes = editor.selection.with(|s| s.nodes.clone());
        editor.seen.with(|seen| {
            seen.iter()
                .rev()
                .filter(|m| nodes.is_empty() || nodes.contains(&m.node))
                .take(SHOWN)
                .cloned()
                .enumerate()
                .collect::<Vec<_>>()
        })
    });
    view! {
        <section class="debug" data-testid="debug-panel">
            <h2>"Messages" <button class="clear" on:click=move |_| editor.seen.update(std::collections::VecDeque::clear)>"Clear"</button></h2>
            <ol>
                {move || shown.get().into_iter().map(|(_, message)| {
                    let payload = serde_json::to_string(&message.payload).unwrap_or_default();
                    view! {
                        <li class=format!("message {}", message.what) data-testid="debug-message">
                            <span class="time">{message.time.get(11..23).unwrap_or(&message.time).to_owned()}</span>
                            <span class="where">{format!("{}:{}", message.node, message.port)}</span>
                            <span class="what">{message.what.clone()}</span>
                            <code>{payload}</code>
                        </li>
                    }
                }).collect_view()}
            </ol>
        </section>
    }
}
