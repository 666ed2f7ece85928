//! The canvas: the open flow's nodes and edges in SVG. Drag a node's title bar to move it (the
//! whole selection moves), drag from an output port to an input port to wire them, drag the
//! background to pan, turn the wheel to zoom, click to select (shift adds), and drop a
//! component from the palette to add a node. A flow opens fitted into view.
//!
//! From the keyboard: Tab reaches every edge, node and port (focus selects), arrow keys move
//! the selected nodes (`shortcuts`), Enter on a node opens its settings and on an edge its
//! mapping, and Enter on a port opens the port picker, which lists the ports it can be wired
//! to. Each has a role and a label for screen readers.

use std::collections::BTreeSet;

use leptos::{ev, prelude::*};
use wasm_bindgen::JsCast as _;
use weir_model::Position;

use crate::{
    api::ApiError,
    document::{PortRef, Selection},
    editor::{Editor, Wiring},
    focus,
    geometry::{self, NODE_WIDTH, View},
};

/// What the pointer is doing.
#[derive(Debug, Clone, PartialEq)]
enum Gesture {
    /// Moving the selected nodes; `last` is the pointer's previous canvas point.
    Move { last: Position, moved: bool },
    /// Wiring from an output port; `to` is where the pointer is.
    Wire { from: PortRef, start: (f64, f64), to: (f64, f64) },
    /// Panning from where the view was when the pointer went down.
    Pan { start: (f64, f64), view: View },
}

/// The data attributes of the nearest marked element around an event's target.
fn marked(target: Option<web_sys::EventTarget>) -> Option<(String, String, String)> {
    let element = target?.dyn_into::<web_sys::Element>().ok()?.closest("[data-role]").ok()??;
    let get = |name: &str| element.get_attribute(name).unwrap_or_default();
    Some((get("data-role"), get("data-node"), get("data-port")))
}

/// Wires `from` (an output port) to `to` (an input port) as one edit, or says why not.
fn wire(editor: Editor, from: &PortRef, to: &PortRef) -> bool {
    let mut refused = None;
    editor.edit(|doc| {
        if let Err(err) = doc.connect(from, to) {
            refused = Some(err.to_string());
        }
    });
    if let Some(message) = refused {
        editor.fail(ApiError::from(message));
        return false;
    }
    true
}

/// Whether a key press activates what has focus, as Enter and Space do a button.
fn activates(event: &ev::KeyboardEvent) -> bool {
    matches!(event.key().as_str(), "Enter" | " ")
}

/// Runs `select` when keyboard focus (Tab) landed on the event's element; a pointer selects
/// through the canvas's own handlers, shift-click included.
fn on_keyboard_focus(event: &ev::FocusEvent, select: impl FnOnce()) {
    let element = event.current_target().and_then(|t| t.dyn_into::<web_sys::Element>().ok());
    if element.is_some_and(|e| e.matches(":focus-visible").unwrap_or(false)) {
        select();
    }
}

/// Each node's box (left, top, width, height), to fit the view around.
fn node_boxes(editor: Editor) -> Vec<(f64, f64, f64, f64)> {
    editor.port_names.with_untracked(|ports| {
        editor.doc.with_untracked(|d| {
            let Some(d) = d else { return Vec::new() };
            d.node_names()
                .iter()
                .map(|name| {
                    let at = d.position(name);
                    let (inputs, outputs) =
                        ports.get(name).map_or((0, 0), |(i, o)| (i.len(), o.len()));
                    (at.left, at.top, NODE_WIDTH, geometry::node_height(inputs, outputs))
                })
                .collect()
        })
    })
}

/// The canvas.
#[component]
pub fn Canvas() -> impl IntoView {
    let editor = expect_context::<Editor>();
    let svg = NodeRef::<leptos::svg::Svg>::new();
    let gesture = RwSignal::new(None::<Gesture>);
    // Fit the flow into view when asked (it opened, or the Fit button), once the canvas has a size.
    Effect::new(move |_| {
        if !editor.fit_wanted.get() {
            return;
        }
        let Some(canvas) = svg.get() else { return };
        let size = canvas.get_bounding_client_rect();
        editor.view.set(View::fit(&node_boxes(editor), size.width(), size.height()));
        editor.fit_wanted.set(false);
    });
    let local = move |x: i32, y: i32| -> (f64, f64) {
        let rect = svg.get_untracked().map(|s| s.get_bounding_client_rect());
        rect.map_or((f64::from(x), f64::from(y)), |r| {
            (f64::from(x) - r.left(), f64::from(y) - r.top())
        })
    };
    let canvas_point = move |x: i32, y: i32| {
        let (x, y) = local(x, y);
        editor.view.get_untracked().to_canvas(x, y)
    };

    let on_down = move |event: ev::PointerEvent| {
        if event.button() != 0 {
            return;
        }
        let at = canvas_point(event.client_x(), event.client_y());
        let (role, node, port) = marked(event.target()).unwrap_or_default();
        if let Some(svg) = svg.get_untracked() {
            let _ = svg.set_pointer_capture(event.pointer_id());
        }
        match role.as_str() {
            "out-port" => {
                let start = {
                    let index = editor.port_index(&node, &port, false);
                    let position =
                        editor.doc.with_untracked(|d| d.as_ref().map(|d| d.position(&node)));
                    geometry::output_point(position.unwrap_or_default(), index)
                };
                gesture.set(Some(Gesture::Wire {
                    from: PortRef { node, port },
                    start,
                    to: (at.left, at.top),
                }));
            }
            "node" => {
                let extend = event.shift_key() || event.ctrl_key() || event.meta_key();
                editor.selection.update(|selection| {
                    if extend {
                        if !selection.nodes.remove(&node) {
                            selection.nodes.insert(node.clone());
                        }
                    } else if !selection.nodes.contains(&node) {
                        *selection = Selection::node(&node);
                    }
                });
                editor.begin_edit();
                gesture.set(Some(Gesture::Move { last: at, moved: false }));
            }
            "edge" => {
                let index = port.parse().unwrap_or(0);
                editor.selection.set(Selection::edge(&node, index));
            }
            _ => {
                if !event.shift_key() {
                    editor.selection.set(Selection::default());
                }
                let start = local(event.client_x(), event.client_y());
                gesture.set(Some(Gesture::Pan { start, view: editor.view.get_untracked() }));
            }
        }
    };

    let on_move = move |event: ev::PointerEvent| {
        let Some(current) = gesture.get_untracked() else { return };
        match current {
            Gesture::Move { last, .. } => {
                let at = canvas_point(event.client_x(), event.client_y());
                let (dx, dy) = (at.left - last.left, at.top - last.top);
                let nodes = editor.selection.with_untracked(|s| s.nodes.clone());
                editor.edit_quietly(|doc| doc.shift(&nodes, dx, dy));
                gesture.set(Some(Gesture::Move { last: at, moved: true }));
            }
            Gesture::Wire { from, start, .. } => {
                let at = canvas_point(event.client_x(), event.client_y());
                gesture.set(Some(Gesture::Wire { from, start, to: (at.left, at.top) }));
            }
            Gesture::Pan { start, view } => {
                let (x, y) = local(event.client_x(), event.client_y());
                editor.view.set(View {
                    pan_x: view.pan_x + x - start.0,
                    pan_y: view.pan_y + y - start.1,
                    ..view
                });
            }
        }
    };

    let on_up = move |event: ev::PointerEvent| {
        let Some(current) = gesture.get_untracked() else { return };
        gesture.set(None);
        if let Gesture::Wire { from, .. } = current {
            // Pointer capture sends the event to the canvas; ask what is under the pointer.
            let under = document()
                .element_from_point(event.client_x() as f32, event.client_y() as f32)
                .map(web_sys::EventTarget::from);
            if let Some((role, node, port)) = marked(under)
                && role == "in-port"
            {
                wire(editor, &from, &PortRef { node, port });
            }
        }
    };

    let on_wheel = move |event: ev::WheelEvent| {
        event.prevent_default();
        let (x, y) = local(event.client_x(), event.client_y());
        let factor = if event.delta_y() < 0.0 { 1.1 } else { 1.0 / 1.1 };
        editor.view.update(|view| *view = view.zoom_at(x, y, factor));
    };

    let on_drop = move |event: ev::DragEvent| {
        event.prevent_default();
        let Some(data) = event.data_transfer().and_then(|d| d.get_data("text/plain").ok()) else {
            return;
        };
        let Some((module, component)) = data.split_once('/') else { return };
        let at = canvas_point(event.client_x(), event.client_y());
        crate::palette::add(
            editor,
            module,
            component,
            Position { left: at.left - NODE_WIDTH / 2.0, top: at.top - 15.0 },
        );
    };

    let names = Memo::new(move |_| {
        editor.doc.with(|d| d.as_ref().map(|d| d.node_names()).unwrap_or_default())
    });
    let edges = Memo::new(move |_| {
        editor.doc.with(|d| {
            d.as_ref()
                .map(|d| {
                    d.edges()
                        .into_iter()
                        .map(|(from, index, edge)| {
                            (
                                from,
                                index,
                                edge.port.to_string(),
                                edge.to.node.to_string(),
                                edge.to.port.to_string(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    });
    let wire = move || match gesture.get() {
        Some(Gesture::Wire { start, to, .. }) => geometry::edge_path(start, to),
        _ => String::new(),
    };

    let flow_name =
        move || editor.doc.with(|d| d.as_ref().map(|d| d.name().to_owned()).unwrap_or_default());
    view! {
        <p id="canvas-help" class="sr-only">
            "Tab moves through the edges, nodes and ports. Arrow keys move the selected nodes \
             (Shift for larger steps); Enter on a node opens its settings, on an edge its mapping, \
             on a port a list of the ports it can be wired to; Delete removes what is selected."
        </p>
        <svg
            class="canvas"
            node_ref=svg
            data-testid="canvas"
            role="application"
            aria-label=move || format!("Flow {}", flow_name())
            aria-describedby="canvas-help"
            on:pointerdown=on_down
            on:pointermove=on_move
            on:pointerup=on_up
            on:wheel=on_wheel
            on:dragover=|event: ev::DragEvent| event.prevent_default()
            on:drop=on_drop
        >
            <g transform=move || editor.view.get().transform()>
                <For
                    each=move || edges.get()
                    key=|edge| edge.clone()
                    children=move |(from, index, port, to, to_port)| view! { <EdgeLine from index port to to_port/> }
                />
                <For
                    each=move || names.get()
                    key=|name| name.clone()
                    children=move |name| view! { <NodeBox name/> }
                />
                <path class="wiring" d=wire/>
            </g>
        </svg>
        <PortPicker/>
    }
}

/// The port picker: the ports the port being wired (`Editor::wiring`) can join, in a list; a
/// choice makes the edge. Escape or Cancel closes it, and focus goes back to the port.
#[component]
fn PortPicker() -> impl IntoView {
    let editor = expect_context::<Editor>();
    move || {
        let Wiring { port: origin, output } = editor.wiring.get()?;
        let origin_testid =
            format!("{}-{}-{}", if output { "out" } else { "in" }, origin.node, origin.port);
        let back = move || focus::soon(&format!("[data-testid=\"{origin_testid}\"]"));
        let mut choices: Vec<PortRef> = editor.port_names.with(|names| {
            names
                .iter()
                .filter(|(node, _)| **node != origin.node)
                .flat_map(|(node, (inputs, outputs))| {
                    let ports = if output { inputs } else { outputs };
                    ports.iter().map(|port| PortRef { node: node.clone(), port: port.clone() })
                })
                .collect()
        });
        choices.sort();
        let title = if output {
            format!("Wire {}:{} to the input port of…", origin.node, origin.port)
        } else {
            format!("Wire an output port to {}:{}", origin.node, origin.port)
        };
        let empty = choices
            .is_empty()
            .then(|| view! { <p class="help">"No other node has a port to wire to."</p> });
        let close = {
            let back = back.clone();
            move || {
                editor.wiring.set(None);
                back();
            }
        };
        let keys = {
            let close = close.clone();
            move |event: ev::KeyboardEvent| {
                if event.key() == "Escape" {
                    event.stop_propagation();
                    close();
                }
            }
        };
        let options = choices
            .into_iter()
            .map(|choice| {
                let text = format!("{}: {}", choice.node, choice.port);
                let testid = format!("pick-{}-{}", choice.node, choice.port);
                let (origin, back) = (origin.clone(), back.clone());
                let pick = move |_| {
                    let (from, to) = if output { (&origin, &choice) } else { (&choice, &origin) };
                    editor.wiring.set(None);
                    if wire(editor, from, to) {
                        editor.done(format!(
                            "wired {}:{} to {}:{}",
                            from.node, from.port, to.node, to.port
                        ));
                    }
                    back();
                };
                view! { <li><button data-testid=testid on:click=pick>{text}</button></li> }
            })
            .collect_view();
        Some(view! {
            <div class="picker" role="dialog" aria-modal="true" aria-labelledby="picker-title" data-testid="port-picker" on:keydown=keys>
                <h2 id="picker-title">{title}</h2>
                {empty}
                <ul>{options}</ul>
                <button class="cancel" on:click=move |_| close()>"Cancel"</button>
            </div>
        })
    }
}

/// One edge, drawn from its output port to its input port.
#[component]
fn EdgeLine(
    from: String,
    index: usize,
    port: String,
    to: String,
    to_port: String,
) -> impl IntoView {
    let editor = expect_context::<Editor>();
    let position = |node: String| {
        Memo::new(move |_| {
            editor.doc.with(|d| d.as_ref().map(|d| d.position(&node)).unwrap_or_default())
        })
    };
    let (from_at, to_at) = (position(from.clone()), position(to.clone()));
    let (port_label, to_label) = (port.clone(), format!("{to}:{to_port}"));
    let (source, target) = (from.clone(), to);
    let indices = Memo::new(move |_| {
        (editor.port_index(&source, &port, false), editor.port_index(&target, &to_port, true))
    });
    let path = Memo::new(move |_| {
        let (out_index, in_index) = indices.get();
        geometry::edge_path(
            geometry::output_point(from_at.get(), out_index),
            geometry::input_point(to_at.get(), in_index),
        )
    });
    let label = format!("Edge from {from}:{port_label} to {to_label}");
    let key = (from.clone(), index);
    let selected = move || editor.selection.with(|s| s.edges.contains(&key));
    let (focused, activated) = (from.clone(), from.clone());
    view! {
        <g
            class="edge"
            class:selected=selected.clone()
            data-role="edge"
            data-node=from
            data-port=index.to_string()
            role="button"
            tabindex="0"
            aria-label=label
            aria-pressed=move || selected().to_string()
            on:focus=move |event| on_keyboard_focus(&event, || editor.selection.set(Selection::edge(&focused, index)))
            on:keydown=move |event| {
                if activates(&event) {
                    event.prevent_default();
                    editor.selection.set(Selection::edge(&activated, index));
                    focus::soon("[data-testid=mapping-text]");
                }
            }
        >
            <path class="edge-hit" d=move || path.get()/>
            <path class="edge-line" d=move || path.get()/>
        </g>
    }
}

/// One node: title, ports, counters and last error.
#[component]
fn NodeBox(name: String) -> impl IntoView {
    let editor = expect_context::<Editor>();
    let node_name = name.clone();
    let position = Memo::new(move |_| {
        editor.doc.with(|d| d.as_ref().map(|d| d.position(&node_name)).unwrap_or_default())
    });
    let spec_name = name.clone();
    let spec = Memo::new(move |_| {
        editor.doc.with(|d| {
            d.as_ref()
                .and_then(|d| d.node(&spec_name))
                .map(|n| (n.spec.module.to_string(), n.spec.component.to_string()))
        })
    });
    let ports_name = name.clone();
    let ports = Memo::new(move |_| {
        editor.port_names.with(|names| names.get(&ports_name).cloned().unwrap_or_default())
    });
    let height = move || ports.with(|(i, o)| geometry::node_height(i.len(), o.len()));
    let status_name = name.clone();
    // Only what the box shows: the counters line and the last error, not the whole status.
    let shown = Memo::new(move |_| {
        editor.statuses.with(|statuses| {
            let status = statuses.get(&status_name)?;
            let counters = status.counters.as_ref().map(|c| {
                format!("in {} · out {} · errors {}", c.messages_in, c.messages_out, c.errors)
            });
            Some((
                counters.unwrap_or_default(),
                status.last_error.as_ref().map(|e| e.message.clone()),
            ))
        })
    });
    let counters = move || shown.with(|s| s.as_ref().map(|(c, _)| c.clone()).unwrap_or_default());
    let failing = move || shown.with(|s| s.as_ref().is_some_and(|(_, e)| e.is_some()));
    let last_error = move || shown.with(|s| s.as_ref().and_then(|(_, e)| e.clone()));
    let selected_name = name.clone();
    let selected = move || editor.selection.with(|s| s.nodes.contains(&selected_name));
    let selected_class = selected.clone();
    let path_name = name.clone();
    let on_path = move || editor.run_path.with(|path| path.contains(&path_name));
    let title = spec.get_untracked().map(|(_, component)| component).unwrap_or_default();
    let label = move || {
        spec.get()
            .and_then(|(m, c)| editor.component_label(&m, &c))
            .unwrap_or_else(|| title.clone())
    };
    let input_name = name.clone();
    let output_name = name.clone();
    // The title bar's text names it for screen readers; its title (the tooltip) says more.
    let header_title = {
        let name = name.clone();
        move || {
            let (module, component) = spec.get().unwrap_or_default();
            format!("Node {name}: {module}/{component}")
        }
    };
    let (focused, activated) = (name.clone(), name.clone());
    view! {
        <g
            class="node"
            class:selected=selected_class
            class:failing=failing
            class:on-path=on_path
            role="group"
            aria-label=format!("Node {name}")
            data-testid=format!("node-{name}")
            transform=move || { let p = position.get(); format!("translate({:.1} {:.1})", p.left, p.top) }
        >
            {move || last_error().map(|error| view! { <title>{error}</title> })}
            <rect class="node-body" width={NODE_WIDTH} height=height rx="6"/>
            <g
                data-role="node"
                data-node=name.clone()
                class="node-head"
                role="button"
                tabindex="0"
                aria-pressed=move || selected().to_string()
                on:focus=move |event| on_keyboard_focus(&event, || {
                    if !editor.selection.with_untracked(|s| s.nodes.contains(&focused)) {
                        editor.selection.set(Selection::node(&focused));
                    }
                })
                on:keydown=move |event| {
                    if activates(&event) {
                        event.prevent_default();
                        editor.selection.set(Selection::node(&activated));
                        focus::soon("[data-testid=node-panel] :is(input, select, textarea, button)");
                    }
                }
            >
                <title>{header_title}</title>
                <rect class="node-header" width={NODE_WIDTH} height={geometry::HEADER} rx="6"/>
                <text class="node-title" x="10" y="19">{name.clone()}</text>
                <text class="node-kind" x={NODE_WIDTH - 8.0} y="19" text-anchor="end">{label}</text>
            </g>
            {move || ports.get().0.into_iter().enumerate().map(|(index, port)| port_view(input_name.clone(), index, port, true)).collect_view()}
            {move || ports.get().1.into_iter().enumerate().map(|(index, port)| port_view(output_name.clone(), index, port, false)).collect_view()}
            <text class="node-counters" x="10" y=move || height() - 7.0
                data-testid="counters">{counters}</text>
        </g>
    }
}

/// One port: a circle on the node's side, and its name. Enter opens the port picker.
fn port_view(node: String, index: usize, port: String, input: bool) -> impl IntoView {
    let editor = expect_context::<Editor>();
    let (x, y) = if input {
        geometry::input_point(Position::default(), index)
    } else {
        geometry::output_point(Position::default(), index)
    };
    let (role, class, prefix) =
        if input { ("in-port", "port in", "in") } else { ("out-port", "port out", "out") };
    let (label_x, anchor) = if input { (x + 12.0, "start") } else { (x - 12.0, "end") };
    let testid = format!("{prefix}-{node}-{port}");
    let label = port.clone();
    let aria = format!("{node}: {} port {port}", if input { "input" } else { "output" });
    let wiring =
        Wiring { port: PortRef { node: node.clone(), port: port.clone() }, output: !input };
    view! {
        <g
            class=class
            data-role=role
            data-testid=testid
            data-node=node
            data-port=port
            role="button"
            tabindex="0"
            aria-label=aria
            aria-haspopup="dialog"
            on:keydown=move |event| {
                if activates(&event) {
                    event.prevent_default();
                    editor.wiring.set(Some(wiring.clone()));
                    focus::soon("[data-testid=port-picker] button");
                }
            }
        >
            <circle cx=x cy=y r="6"/>
            <text x=label_x y={y + 4.0} text-anchor=anchor>{label}</text>
        </g>
    }
}

/// Every node name, for select-all.
pub fn all_nodes(editor: Editor) -> BTreeSet<String> {
    editor.doc.with_untracked(|d| {
        d.as_ref().map(|d| d.node_names().into_iter().collect()).unwrap_or_default()
    })
}
