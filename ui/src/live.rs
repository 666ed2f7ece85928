//! Following the open flow live: the engine's event stream (`/api/events?flow=…`) feeds node
//! status (counters, errors) and messages on ports into the editor, and the last messages the
//! flow's nodes saw are loaded once, in one request, when the flow opens.

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use leptos::{prelude::*, task::spawn_local};
use wasm_bindgen::{JsCast as _, closure::Closure};
use web_sys::{EventSource, MessageEvent};

use weir_api::{MessageSeen, NodeEvent};
use weir_model::FlowNodeStatus;

use crate::{api, editor::Editor};

/// An open event stream and the listeners it calls.
struct Stream {
    source: EventSource,
    _listeners: Vec<Closure<dyn FnMut(MessageEvent)>>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.source.close();
    }
}

/// Keeps an event stream open on whichever flow is open.
pub fn follow(editor: Editor) {
    let stream: StoredValue<Option<Stream>, LocalStorage> = StoredValue::new_local(None);
    let name = Memo::new(move |_| editor.doc.with(|d| d.as_ref().map(|d| d.name().to_owned())));
    Effect::new(move |_| {
        stream.set_value(None);
        let Some(name) = name.get() else { return };
        match open(editor, &name) {
            Ok(opened) => stream.set_value(Some(opened)),
            Err(message) => editor.fail(api::ApiError::from(message)),
        }
        if editor.saved.with_untracked(Option::is_none) {
            // A new flow the engine does not have yet: nothing was seen.
            return;
        }
        spawn_local(async move {
            let Ok(mut all) = api::messages(&name).await else { return };
            all.sort_by(|a, b| a.time.cmp(&b.time));
            for message in all {
                editor.saw(message);
            }
        });
    });
}

fn open(editor: Editor, flow: &str) -> Result<Stream, String> {
    let source = EventSource::new(&api::in_namespace(&format!("/api/events?flow={flow}")))
        .map_err(|_| format!("cannot follow flow {flow} live"))?;
    // Statuses are taken in once a frame: a thousand nodes starting report a thousand times
    // within a second, and each change of the statuses is work over every node (ports, the
    // flow's check).
    let reported: Rc<RefCell<HashMap<String, FlowNodeStatus>>> = Rc::default();
    let on_node = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let Some(node) = read::<NodeEvent>(&event) else { return };
        let waiting = !reported.borrow().is_empty();
        reported.borrow_mut().insert(node.node, node.status);
        if !waiting {
            let reported = reported.clone();
            request_animation_frame(move || {
                let taken = std::mem::take(&mut *reported.borrow_mut());
                editor.statuses.update(|statuses| statuses.extend(taken));
            });
        }
    });
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(seen) = read::<MessageSeen>(&event) {
            editor.saw(seen);
        }
    });
    for (kind, listener) in [("node", &on_node), ("message", &on_message)] {
        source
            .add_event_listener_with_callback(kind, listener.as_ref().unchecked_ref())
            .map_err(|_| format!("cannot follow flow {flow} live"))?;
    }
    Ok(Stream { source, _listeners: vec![on_node, on_message] })
}

fn read<T: serde::de::DeserializeOwned>(event: &MessageEvent) -> Option<T> {
    serde_json::from_str(&event.data().as_string()?).ok()
}
