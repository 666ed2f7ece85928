//! Keyboard shortcuts: Delete removes the selection, Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y) undo and
//! redo, Ctrl+C / Ctrl+V copy and paste nodes, Ctrl+A selects every node, Ctrl+S saves, Escape
//! clears the selection, and the arrow keys move the selected nodes when the focus is on the
//! canvas (or nowhere), each press one undoable edit as a drag is. Keys typed into a field are
//! the field's.

use leptos::{ev, prelude::*};
use wasm_bindgen::JsCast as _;

use crate::{api::ApiError, canvas, document::Selection, editor::Editor};

/// Where pasted nodes land, relative to the copies.
const PASTE_OFFSET: f64 = 30.0;

/// How far an arrow key moves nodes, in canvas units (five times as far with Shift).
const NUDGE: f64 = 10.0;

/// Listens for the shortcuts for the page's life.
pub fn listen(editor: Editor) {
    let handle = window_event_listener(ev::keydown, move |event: ev::KeyboardEvent| {
        let target = event.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok());
        let typing = target
            .as_ref()
            .is_some_and(|e| matches!(e.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"));
        if typing {
            return;
        }
        let on_canvas = target.as_ref().is_none_or(|e| {
            e.tag_name() == "BODY" || e.closest("svg.canvas").ok().flatten().is_some()
        });
        let step = if event.shift_key() { NUDGE * 5.0 } else { NUDGE };
        let command = event.ctrl_key() || event.meta_key();
        let handled = match (command, event.key().to_lowercase().as_str()) {
            (false, "delete" | "backspace") => {
                let selection = editor.selection.get_untracked();
                editor.edit(|doc| doc.remove(&selection));
                editor.selection.set(Selection::default());
                true
            }
            (false, "escape") => {
                editor.selection.set(Selection::default());
                editor.wiring.set(None);
                true
            }
            (false, key @ ("arrowleft" | "arrowright" | "arrowup" | "arrowdown")) if on_canvas => {
                let nodes = editor.selection.with_untracked(|s| s.nodes.clone());
                let (dx, dy) = match key {
                    "arrowleft" => (-step, 0.0),
                    "arrowright" => (step, 0.0),
                    "arrowup" => (0.0, -step),
                    _ => (0.0, step),
                };
                editor.edit(|doc| doc.shift(&nodes, dx, dy));
                !nodes.is_empty()
            }
            (true, "z") if event.shift_key() => {
                editor.redo();
                true
            }
            (true, "z") => {
                editor.undo();
                true
            }
            (true, "y") => {
                editor.redo();
                true
            }
            (true, "a") => {
                editor
                    .selection
                    .set(Selection { nodes: canvas::all_nodes(editor), ..Selection::default() });
                true
            }
            (true, "c") => {
                let selection = editor.selection.get_untracked();
                let copied = editor.doc.with_untracked(|d| d.as_ref().map(|d| d.copy(&selection)));
                editor.clipboard.set_value(copied);
                true
            }
            (true, "v") => {
                if let Some(clip) = editor.clipboard.get_value() {
                    let mut pasted = Vec::new();
                    editor.edit(|doc| match doc.paste(&clip, PASTE_OFFSET, PASTE_OFFSET) {
                        Ok(names) => pasted = names,
                        Err(err) => editor.fail(ApiError::from(err.to_string())),
                    });
                    editor.selection.set(Selection {
                        nodes: pasted.into_iter().collect(),
                        ..Selection::default()
                    });
                }
                true
            }
            (true, "s") => {
                editor.save();
                true
            }
            _ => false,
        };
        if handled {
            event.prevent_default();
        }
    });
    // The editor lives as long as the page.
    std::mem::forget(handle);
}
