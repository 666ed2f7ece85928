//! Moving keyboard focus to what a key press opened (a node's settings, the port picker, the
//! choice after a refused save), once it is drawn.

use leptos::prelude::*;
use wasm_bindgen::JsCast as _;

/// Moves keyboard focus to the first element matching `selector` once the views the current
/// change updates are drawn.
pub fn soon(selector: &str) {
    let selector = selector.to_owned();
    request_animation_frame(move || {
        let Some(found) = document().query_selector(&selector).ok().flatten() else { return };
        if let Some(element) = found.dyn_ref::<web_sys::HtmlElement>() {
            let _ = element.focus();
        } else if let Some(element) = found.dyn_ref::<web_sys::SvgElement>() {
            let _ = element.focus();
        }
    });
}
