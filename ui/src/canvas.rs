//! The canvas: the open flow's nodes and edges in SVG. Drag a node's title bar to move it (the
//! whole selection moves), drag from an output port to an input port to wire them, drag the
//! background to pan, turn the wheel to zoom, click to select (shift adds), and drop a
//! component from the palette to add a node. A flow opens fitted into view.
//!
//! Only what is in view is drawn (and what Tab enters the canvas at, and what has focus), so a
//! flow of a thousand nodes costs what the view shows; panning and zooming change one
//! transform, and draw what comes into view.
//!
//! From the keyboard: Tab reaches every edge, node and port (focus selects; the view follows
//! the focus to what is out of view), arrow keys move
//! the selected nodes (`shortcuts`), Enter on a node opens its settings and on an edge its
//! mapping, and Enter on a port opens the port picker, which lists the ports it can be wired
//! to. Each has a role and a label for screen readers.

use std::collections::{BTreeSet, HashMap};

use leptos::{ev, prelude::*};
use wasm_bindgen::JsCast as _;
use weir_model::Position;

use crate::{
    api::ApiError,
    document::{Document, PortRef, Selection},
    editor::{Editor, PortNames, Wiring},
    focus,
    geometry::{self, Area, NODE_WIDTH, View},
};

/// How far past the canvas's sides nodes and edges are drawn, in screen pixels.
const MARGIN: f64 = 40.0;

/// The zoom below which text is not drawn (its 11 to 13 pixels would be 5 or fewer).
const FAR: f64 = 0.4;

/// What an element of the canvas is marked with: its `data-role`, `data-node` and `data-port`
/// (an edge's index at its source node).
type Mark = (String, String, String);

/// An edge as the canvas draws it: source node, its index there, source port, target node,
/// target port.
type EdgeKey = (String, usize, String, String, String);

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
fn marked(target: Option<web_sys::EventTarget>) -> Option<Mark> {
    let element = target?.dyn_into::<web_sys::Element>().ok()?.closest("[data-role]").ok()??;
    let get = |name: &str| element.get_attribute(name).unwrap_or_default();
    Some((get("data-role"), get("data-node"), get("data-port")))
}

/// A selector for the canvas element marked with `mark`.
fn selector((role, node, port): &Mark) -> String {
    let port = if port.is_empty() { String::new() } else { format!("[data-port=\"{port}\"]") };
    format!("svg.canvas [data-role=\"{role}\"][data-node=\"{node}\"]{port}")
}

/// Where Tab stops on the canvas, in order: every edge, then each node's title bar and its
/// input and output ports, as the canvas draws them.
fn tab_stops(editor: Editor) -> Vec<Mark> {
    let stop = |role: &str, node: &String, port: String| (role.to_owned(), node.clone(), port);
    editor.port_names.with_untracked(|ports| {
        editor.nodes.with_untracked(|nodes| {
            let nodes: Vec<_> = nodes
                .iter()
                .flatten()
                .filter_map(|n| Some((n.metadata.name.as_ref()?, n.spec.edges.len())))
                .collect();
            let mut stops: Vec<Mark> = nodes
                .iter()
                .flat_map(|&(name, edges)| {
                    (0..edges).map(move |i| stop("edge", name, i.to_string()))
                })
                .collect();
            for (name, _) in nodes {
                stops.push(stop("node", name, String::new()));
                if let Some((inputs, outputs)) = ports.get(name) {
                    stops.extend(inputs.iter().map(|p| stop("in-port", name, p.clone())));
                    stops.extend(outputs.iter().map(|p| stop("out-port", name, p.clone())));
                }
            }
            stops
        })
    })
}

/// The area of node `name` on the canvas.
fn node_area(doc: &Document, ports: &HashMap<String, PortNames>, name: &str) -> Area {
    let (inputs, outputs) = ports.get(name).map_or((0, 0), |(i, o)| (i.len(), o.len()));
    Area::node(doc.position(name), geometry::node_height(inputs, outputs))
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

/// Each node's area, to fit the view around.
fn node_areas(editor: Editor) -> Vec<Area> {
    editor.port_names.with_untracked(|ports| {
        editor.doc.with_untracked(|d| {
            d.iter()
                .flat_map(|d| d.node_names().into_iter().map(|n| node_area(d, ports, &n)))
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
    // The canvas's size in pixels, for what is in view; measured as it appears, when the flow
    // is fitted (it opened, or the Fit button) and when the window's size changes.
    let size = RwSignal::new((0.0, 0.0));
    Effect::new(move |_| {
        let wanted = editor.fit_wanted.get();
        let Some(canvas) = svg.get() else { return };
        if !wanted && size.with_untracked(|(width, _)| *width > 0.0) {
            return;
        }
        let rect = canvas.get_bounding_client_rect();
        size.set((rect.width(), rect.height()));
        if wanted {
            editor.view.set(View::fit(&node_areas(editor), rect.width(), rect.height()));
            editor.fit_wanted.set(false);
        }
    });
    let resized = window_event_listener(ev::resize, move |_| {
        if let Some(canvas) = svg.get_untracked() {
            let rect = canvas.get_bounding_client_rect();
            size.set((rect.width(), rect.height()));
        }
    });
    on_cleanup(move || resized.remove());
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

    // What is drawn besides what is in view: the first and the last place Tab stops at (the
    // first edge, or the first node when there are none, and the last node), so that Tab and Shift+Tab enter the canvas at its ends,
    // and what has focus (or had it last).
    let held = RwSignal::new(None::<Mark>);
    let shown = move || {
        let (width, height) = size.get();
        editor.view.get().shown(width, height, MARGIN)
    };
    // Every node and edge has a place in the canvas, in Tab's order, whether drawn or not, so
    // that what has focus is never moved; whether each is drawn is a signal of its own, set
    // here as the view moves, so a pan wakes only what comes into view or leaves it.
    let names = Memo::new(move |_| {
        editor.nodes.with(|nodes| {
            nodes.iter().flatten().filter_map(|n| n.metadata.name.clone()).collect::<Vec<_>>()
        })
    });
    // Every edge: unchanged while nodes are dragged.
    let edges = Memo::new(move |_| {
        editor.nodes.with(|nodes| {
            nodes
                .iter()
                .flatten()
                .flat_map(|node| {
                    let from = node.metadata.name.clone().unwrap_or_default();
                    node.spec.edges.iter().enumerate().map(move |(index, edge)| {
                        let (to, to_port) = (edge.to.node.to_string(), edge.to.port.to_string());
                        (from.clone(), index, edge.port.to_string(), to, to_port)
                    })
                })
                .collect::<Vec<EdgeKey>>()
        })
    });
    let node_flags = StoredValue::new(HashMap::<String, RwSignal<bool>>::new());
    let edge_flags = StoredValue::new(HashMap::<EdgeKey, RwSignal<bool>>::new());
    let joined = RwSignal::new(0_u32);
    Effect::new(move |_| {
        joined.track();
        let area = shown();
        let held = held.get();
        let first_edge = edges.with(|edges| edges.first().cloned());
        editor.port_names.with(|ports| {
            editor.doc.with(|d| {
                let Some(d) = d else { return };
                let pinned = |name: &str| {
                    [d.nodes.first(), d.nodes.last()]
                        .iter()
                        .flatten()
                        .any(|n| n.metadata.name.as_deref() == Some(name))
                        || held.as_ref().is_some_and(|(_, node, _)| node == name)
                };
                let set = |flag: &RwSignal<bool>, drawn: bool| {
                    if flag.get_untracked() != drawn {
                        flag.set(drawn);
                    }
                };
                node_flags.with_value(|flags| {
                    for (name, flag) in flags {
                        set(flag, pinned(name) || node_area(d, ports, name).meets(&area));
                    }
                });
                edge_flags.with_value(|flags| {
                    for (edge, flag) in flags {
                        let (from, index, port, to, to_port) = edge;
                        let held = held.as_ref().is_some_and(|(role, node, at)| {
                            role == "edge" && node == from && *at == index.to_string()
                        });
                        let drawn = held || first_edge.as_ref() == Some(edge) || {
                            let out = editor.port_index(from, port, false);
                            let start = geometry::output_point(d.position(from), out);
                            let into = editor.port_index(to, to_port, true);
                            let end = geometry::input_point(d.position(to), into);
                            geometry::edge_area(start, end).meets(&area)
                        };
                        set(flag, drawn);
                    }
                });
            });
        });
    });
    // A node or an edge joining the canvas: its flag, to be set by the effect above.
    let join = move |register: &dyn Fn(RwSignal<bool>)| {
        let flag = RwSignal::new(false);
        register(flag);
        joined.update(|n| *n = n.wrapping_add(1));
        flag
    };
    // Tab to what is not drawn: draw it, then focus it (the view follows).
    let on_key = move |event: ev::KeyboardEvent| {
        if event.key() != "Tab" || event.ctrl_key() || event.alt_key() || event.meta_key() {
            return;
        }
        let Some(here) = marked(event.target()) else { return };
        let stops = tab_stops(editor);
        let Some(at) = stops.iter().position(|stop| *stop == here) else { return };
        let next = if event.shift_key() { at.checked_sub(1) } else { Some(at + 1) };
        let Some(next) = next.and_then(|next| stops.get(next)) else { return };
        let target = selector(next);
        if document().query_selector(&target).ok().flatten().is_none() {
            event.prevent_default();
            held.set(Some(next.clone()));
            focus::soon(&target);
        }
    };
    // Keyboard focus brings what it lands on into view.
    let on_focus = move |event: ev::FocusEvent| {
        let Some(element) = event.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        else {
            return;
        };
        held.set(marked(Some(element.clone().into())));
        let Some(canvas) = svg.get_untracked() else { return };
        if !element.matches(":focus-visible").unwrap_or(false) {
            return;
        }
        let (c, e) = (canvas.get_bounding_client_rect(), element.get_bounding_client_rect());
        let area = Area {
            left: e.left() - c.left(),
            top: e.top() - c.top(),
            right: e.right() - c.left(),
            bottom: e.bottom() - c.top(),
        };
        let view = editor.view.get_untracked();
        let revealed = view.reveal(area, c.width(), c.height());
        if revealed != view {
            editor.view.set(revealed);
        }
    };
    let wire = move || match gesture.get() {
        Some(Gesture::Wire { start, to, .. }) => geometry::edge_path(start, to),
        _ => String::new(),
    };

    // Zoomed out so far that text would be a few pixels high, it is not drawn: laying text out
    // again at every step of a zoom is most of what a zoom costs.
    let far = Memo::new(move |_| editor.view.with(|view| view.zoom < FAR));
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
            class:far=far
            node_ref=svg
            data-testid="canvas"
            role="application"
            aria-label=move || format!("Flow {}", flow_name())
            aria-describedby="canvas-help"
            on:pointerdown=on_down
            on:pointermove=on_move
            on:pointerup=on_up
            on:wheel=on_wheel
            on:keydown=on_key
            on:focusin=on_focus
            on:dragover=|event: ev::DragEvent| event.prevent_default()
            on:drop=on_drop
        >
            <g transform=move || editor.view.get().transform()>
                <For
                    each=move || edges.get()
                    key=|edge| edge.clone()
                    children=move |edge: EdgeKey| {
                        let key = edge.clone();
                        let flag = join(&|flag| edge_flags.update_value(|f| { f.insert(key.clone(), flag); }));
                        let key = edge.clone();
                        on_cleanup(move || edge_flags.update_value(|f| { f.remove(&key); }));
                        move || flag.get().then(|| {
                            let (from, index, port, to, to_port) = edge.clone();
                            view! { <EdgeLine from index port to to_port/> }
                        })
                    }
                />
                <For
                    each=move || names.get()
                    key=|name| name.clone()
                    children=move |name: String| {
                        let key = name.clone();
                        let flag = join(&|flag| node_flags.update_value(|f| { f.insert(key.clone(), flag); }));
                        let key = name.clone();
                        on_cleanup(move || node_flags.update_value(|f| { f.remove(&key); }));
                        move || flag.get().then(|| view! { <NodeBox name=name.clone()/> })
                    }
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
    // From the nodes without their layout, so not again at each step of a drag.
    let spec = Memo::new(move |_| {
        editor.nodes.with(|nodes| {
            let node =
                nodes.iter().flatten().find(|n| n.metadata.name.as_ref() == Some(&spec_name));
            node.map(|n| (n.spec.module.to_string(), n.spec.component.to_string()))
        })
    });
    let ports_name = name.clone();
    let ports = Memo::new(move |_| {
        editor.port_names.with(|names| names.get(&ports_name).cloned().unwrap_or_default())
    });
    let height = move || ports.with(|(i, o)| geometry::node_height(i.len(), o.len()));
    let status_name = name.clone();
    // Only what the box shows: the counters line, and what is wrong (a node its module could
    // not build, or one that says what it cannot do, before its last error), not the whole
    // status.
    let shown = Memo::new(move |_| {
        editor.statuses.with(|statuses| {
            let status = statuses.get(&status_name)?;
            let counters = status.counters.as_ref().map(|c| {
                format!("in {} · out {} · errors {}", c.messages_in, c.messages_out, c.errors)
            });
            let wrong =
                status.problem().or_else(|| status.last_error.as_ref().map(|e| e.message.clone()));
            Some((counters.unwrap_or_default(), wrong))
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
