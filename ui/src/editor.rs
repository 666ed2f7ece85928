//! The editor's state, shared by every panel through Leptos context: the catalogues, the flow
//! list, the open flow with its undo history and the version it was read at, the selection,
//! the canvas view, and what the engine reports live (node status, messages seen).

use std::collections::{HashMap, VecDeque};

use leptos::{prelude::*, task::spawn_local};
use weir_api::{FlowSummary, MessageSeen};
use weir_model::{
    ComponentDescriptor, Direction, FlowNode, FlowNodeStatus, Module, PortDescriptor,
};

use crate::{
    api::{self, ApiError, Expected, Save},
    document::{Clipboard, Document, History, PortRef, Selection},
    geometry::View,
};

/// How many messages the debug panel keeps.
const SEEN_KEPT: usize = 300;

/// A note for the user at the top of the editor.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Something worked.
    Done(String),
    /// Something failed; the text says what and where.
    Failed(ApiError),
}

/// What the editor has loaded since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The module catalogues (the palette).
    pub modules: bool,
    /// The flow list.
    pub flows: bool,
}

/// `aria-busy` for a part of the editor until what it shows has `loaded`: assistive technology
/// waits for it, and so do the browser tests, so that nothing moves under a drag.
pub fn busy(loaded: bool) -> Option<&'static str> {
    (!loaded).then_some("true")
}

/// The shared state; every field is a cheap handle.
#[derive(Debug, Clone, Copy)]
pub struct Editor {
    /// The module catalogues.
    pub modules: RwSignal<Vec<Module>>,
    /// The flows.
    pub flows: RwSignal<Vec<FlowSummary>>,
    /// Whether the engine answered for the module catalogues, and for the flows, once: until
    /// then the palette and the flow list are `aria-busy`, as they may still grow.
    pub loaded: RwSignal<Loaded>,
    /// The open flow.
    pub doc: RwSignal<Option<Document>>,
    /// The open flow as last saved, to tell unsaved changes.
    pub saved: RwSignal<Option<Document>>,
    /// Undo and redo.
    pub history: StoredValue<History>,
    /// Bumped on every edit, so undo and redo buttons update.
    pub revision: RwSignal<u64>,
    /// What is selected.
    pub selection: RwSignal<Selection>,
    /// Pan and zoom.
    pub view: RwSignal<View>,
    /// Whether the canvas should fit the flow into view (when it opens, or asked to).
    pub fit_wanted: RwSignal<bool>,
    /// The open flow's version as last read or saved: a save is made over it, so the engine
    /// refuses it when someone else changed the flow since.
    pub version: StoredValue<Option<String>>,
    /// Why the last save was refused as made over a stale version: the editor then offers to
    /// reload or to overwrite.
    pub stale: RwSignal<Option<String>>,
    /// The port being wired from the keyboard, whose counterpart the port picker offers.
    pub wiring: RwSignal<Option<Wiring>>,
    /// Each node's status, as last reported.
    pub statuses: RwSignal<HashMap<String, FlowNodeStatus>>,
    /// Messages seen on the open flow's nodes, oldest first.
    pub seen: RwSignal<VecDeque<MessageSeen>>,
    /// The nodes the run chosen in the runs panel reached, in order: its path on the canvas.
    pub run_path: RwSignal<Vec<String>>,
    /// The latest note for the user.
    pub notice: RwSignal<Option<Notice>>,
    /// What was copied.
    pub clipboard: StoredValue<Option<Clipboard>>,
    /// Each node's port names, inputs then outputs, for the canvas. Unlike the document, it
    /// does not change while nodes are dragged, so the canvas redraws only what moved.
    pub port_names: Memo<HashMap<String, PortNames>>,
    /// The open flow's nodes without the layout: unchanged while nodes are dragged.
    pub nodes: Memo<Option<Vec<FlowNode>>>,
}

/// A node's input and output port names, in order.
pub type PortNames = (Vec<String>, Vec<String>);

/// An edge begun from the keyboard at one port, waiting for the port at its other end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wiring {
    /// The port it starts at.
    pub port: PortRef,
    /// Whether that is an output port (the picker then offers inputs), else an input.
    pub output: bool,
}

impl Editor {
    /// A new editor, loading the catalogues and the flow list.
    pub fn start() -> Self {
        let doc = RwSignal::new(None::<Document>);
        let statuses = RwSignal::new(HashMap::new());
        let modules = RwSignal::new(Vec::new());
        // The nodes without the layout: equal while only positions change, and then not
        // copied (a drag step changes the document once a frame).
        let nodes = Memo::new_owning(move |kept: Option<Option<Vec<FlowNode>>>| {
            doc.with(|d| {
                let now = d.as_ref().map(|d| &d.nodes);
                match kept {
                    Some(kept) if kept.as_ref() == now => (kept, false),
                    _ => (now.cloned(), true),
                }
            })
        });
        let port_names = Memo::new(move |_| {
            nodes.with(|nodes| {
                nodes
                    .iter()
                    .flatten()
                    .filter_map(|node| {
                        let name = node.metadata.name.clone()?;
                        let names = port_names(&name, node, statuses, modules);
                        Some((name, names))
                    })
                    .collect()
            })
        });
        let editor = Self {
            modules,
            flows: RwSignal::new(Vec::new()),
            loaded: RwSignal::new(Loaded::default()),
            doc,
            saved: RwSignal::new(None),
            history: StoredValue::new(History::default()),
            revision: RwSignal::new(0),
            selection: RwSignal::new(Selection::default()),
            view: RwSignal::new(View::default()),
            fit_wanted: RwSignal::new(false),
            version: StoredValue::new(None),
            stale: RwSignal::new(None),
            wiring: RwSignal::new(None),
            statuses,
            seen: RwSignal::new(VecDeque::new()),
            run_path: RwSignal::new(Vec::new()),
            notice: RwSignal::new(None),
            clipboard: StoredValue::new(None),
            port_names,
            nodes,
        };
        spawn_local(async move {
            match api::modules().await {
                Ok(modules) => editor.modules.set(modules),
                Err(err) => editor.fail(err),
            }
            editor.loaded.update(|loaded| loaded.modules = true);
        });
        editor.refresh_flows();
        editor
    }

    /// Shows a failure.
    pub fn fail(&self, error: ApiError) {
        self.notice.set(Some(Notice::Failed(error)));
    }

    /// Shows a success.
    pub fn done(&self, text: impl Into<String>) {
        self.notice.set(Some(Notice::Done(text.into())));
    }

    /// Reloads the flow list.
    pub fn refresh_flows(&self) {
        let editor = *self;
        spawn_local(async move {
            match api::flows().await {
                Ok(flows) => editor.flows.set(flows),
                Err(err) => editor.fail(err),
            }
            if !editor.loaded.with_untracked(|loaded| loaded.flows) {
                editor.loaded.update(|loaded| loaded.flows = true);
            }
        });
    }

    /// Opens a flow from the engine (again, for the open one: that drops unsaved edits, so it
    /// asks first).
    pub fn open(&self, name: String) {
        if self.unsaved_untracked() {
            let open = self.doc.with_untracked(|d| d.as_ref().map(|d| d.name().to_owned()));
            let question = format!("Discard the unsaved changes to {}?", open.unwrap_or_default());
            if !window().confirm_with_message(&question).unwrap_or(false) {
                return;
            }
        }
        self.load(name);
    }

    /// Opens a flow from the engine as it is stored, dropping unsaved edits without asking.
    pub fn load(&self, name: String) {
        let editor = *self;
        spawn_local(async move {
            match api::flow(&name).await {
                Ok((document, version)) => editor.show(document, version),
                Err(err) => editor.fail(err),
            }
        });
    }

    /// Shows `document` as the open, saved flow, read at `version`, fitted into view.
    pub fn show(&self, document: Document, version: Option<String>) {
        self.version.set_value(version);
        self.stale.set(None);
        self.wiring.set(None);
        self.fit_wanted.set(true);
        self.history.update_value(History::clear);
        self.selection.set(Selection::default());
        self.statuses.set(
            document
                .nodes
                .iter()
                .filter_map(|n| Some((n.metadata.name.clone()?, n.status.clone()?)))
                .collect(),
        );
        self.seen.set(VecDeque::new());
        self.run_path.set(Vec::new());
        self.saved.set(Some(document.clone()));
        self.doc.set(Some(document));
        self.revision.update(|r| *r += 1);
    }

    /// Applies an edit to the open flow, keeping the state before it for undo.
    pub fn edit(&self, change: impl FnOnce(&mut Document)) {
        let Some(before) = self.doc.get_untracked() else { return };
        let mut after = before.clone();
        change(&mut after);
        if after == before {
            return;
        }
        self.history.update_value(|h| h.record(before));
        self.doc.set(Some(after));
        self.revision.update(|r| *r += 1);
    }

    /// Notes the state before an edit made in several steps (a drag), for undo.
    pub fn begin_edit(&self) {
        if let Some(before) = self.doc.get_untracked() {
            self.history.update_value(|h| h.record(before));
            self.revision.update(|r| *r += 1);
        }
    }

    /// Changes the open flow without a history entry (the steps of a drag).
    pub fn edit_quietly(&self, change: impl FnOnce(&mut Document)) {
        self.doc.update(|doc| {
            if let Some(doc) = doc {
                change(doc);
            }
        });
    }

    /// Undoes the last edit.
    pub fn undo(&self) {
        self.travel(History::undo);
    }

    /// Redoes the last undone edit.
    pub fn redo(&self) {
        self.travel(History::redo);
    }

    /// Moves through the history: `step` takes the current document and gives the one to show.
    fn travel(&self, step: impl FnOnce(&mut History, Document) -> Option<Document>) {
        let Some(current) = self.doc.get_untracked() else { return };
        if let Some(shown) = self.history.try_update_value(|h| step(h, current)).flatten() {
            self.doc.set(Some(shown));
            self.selection.set(Selection::default());
            self.revision.update(|r| *r += 1);
        }
    }

    /// Whether the open flow differs from what was saved.
    pub fn unsaved(&self) -> bool {
        self.doc.with(|doc| self.saved.with(|saved| doc != saved))
    }

    /// [`Editor::unsaved`], outside of reactive tracking.
    fn unsaved_untracked(&self) -> bool {
        self.doc.with_untracked(|doc| self.saved.with_untracked(|saved| doc != saved))
    }

    /// Saves the open flow over the version it was read at (a flow made here: where no flow
    /// of its name is).
    pub fn save(&self) {
        self.save_over(false);
    }

    /// Saves the open flow over whatever is stored, someone else's change included.
    pub fn overwrite(&self) {
        self.save_over(true);
    }

    fn save_over(&self, anything: bool) {
        let Some(document) = self.doc.get_untracked() else { return };
        let version = self.version.get_value();
        let editor = *self;
        spawn_local(async move {
            let expected = match (anything, version.as_deref()) {
                (true, _) => Expected::Anything,
                (false, Some(version)) => Expected::At(version),
                (false, None) => Expected::Absent,
            };
            match api::save(&document, expected).await {
                Ok(Save::Stale(refusal)) => editor.stale.set(Some(refusal.to_string())),
                Ok(Save::Saved(saved, version)) => {
                    let saved = *saved;
                    editor.version.set_value(version);
                    editor.stale.set(None);
                    editor.saved.set(Some(saved.clone()));
                    // Keep edits made while saving; take the engine's status and metadata.
                    let unchanged = editor.doc.with_untracked(|d| d.as_ref() == Some(&document));
                    if unchanged {
                        editor.doc.set(Some(saved));
                    }
                    editor.done(format!("saved {}", document.name()));
                    editor.refresh_flows();
                }
                Err(err) => editor.fail(err),
            }
        });
    }

    /// A component's label, for node titles.
    pub fn component_label(&self, module: &str, component: &str) -> Option<String> {
        self.modules.with(|modules| {
            modules
                .iter()
                .find(|m| m.metadata.name.as_deref() == Some(module))
                .and_then(|m| m.spec.components.iter().find(|c| c.name.as_str() == component))
                .map(|c| c.label.clone())
                .filter(|label| !label.is_empty())
        })
    }

    /// The catalogue entry of a component.
    pub fn component(&self, module: &str, component: &str) -> Option<ComponentDescriptor> {
        self.modules.with(|modules| {
            modules
                .iter()
                .find(|m| m.metadata.name.as_deref() == Some(module))
                .and_then(|m| m.spec.components.iter().find(|c| c.name.as_str() == component))
                .cloned()
        })
    }

    /// A node's ports, inputs then outputs: as the module resolved them for its settings when
    /// it reported them, else the component's defaults.
    pub fn ports(&self, node: &str) -> (Vec<PortDescriptor>, Vec<PortDescriptor>) {
        let Some(flow_node) = self.doc.with(|d| d.as_ref()?.node(node).cloned()) else {
            return (Vec::new(), Vec::new());
        };
        resolved_ports(node, &flow_node, self.statuses, self.modules)
            .into_iter()
            .partition(|p| p.direction == Direction::In)
    }

    /// Where port `port` of `node` sits among its inputs (or outputs), for drawing.
    pub fn port_index(&self, node: &str, port: &str, input: bool) -> usize {
        self.port_names.with(|names| {
            names
                .get(node)
                .and_then(|(inputs, outputs)| {
                    let list = if input { inputs } else { outputs };
                    list.iter().position(|p| p == port)
                })
                .unwrap_or(0)
        })
    }

    /// Notes a message seen on a node.
    pub fn saw(&self, message: MessageSeen) {
        self.seen.update(|seen| {
            seen.push_back(message);
            while seen.len() > SEEN_KEPT {
                seen.pop_front();
            }
        });
    }
}

/// A node's port names, as [`resolved_ports`] would give them, without copying their schemas.
fn port_names(
    name: &str,
    node: &FlowNode,
    statuses: RwSignal<HashMap<String, FlowNodeStatus>>,
    modules: RwSignal<Vec<Module>>,
) -> PortNames {
    fn split<'a>(ports: impl Iterator<Item = (&'a str, Direction)>) -> PortNames {
        let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
        for (port, direction) in ports {
            match direction {
                Direction::In => inputs.push(port.to_owned()),
                Direction::Out => outputs.push(port.to_owned()),
            }
        }
        (inputs, outputs)
    }
    let reported = statuses.with(|statuses| {
        let ports = &statuses.get(name)?.ports;
        (!ports.is_empty()).then(|| split(ports.iter().map(|p| (p.name.as_str(), p.direction))))
    });
    reported.unwrap_or_else(|| {
        modules.with(|modules| {
            modules
                .iter()
                .find(|m| m.metadata.name.as_deref() == Some(node.spec.module.as_str()))
                .and_then(|m| m.spec.components.iter().find(|c| c.name == node.spec.component))
                .map(|c| split(c.ports.iter().map(|p| (p.name.as_str(), p.direction))))
                .unwrap_or_default()
        })
    })
}

/// A node's ports: as its module resolved them for its settings when it reported them, else
/// the component's defaults.
fn resolved_ports(
    name: &str,
    node: &FlowNode,
    statuses: RwSignal<HashMap<String, FlowNodeStatus>>,
    modules: RwSignal<Vec<Module>>,
) -> Vec<PortDescriptor> {
    let reported: Option<Vec<PortDescriptor>> = statuses.with(|statuses| {
        let ports = &statuses.get(name)?.ports;
        (!ports.is_empty()).then(|| {
            ports
                .iter()
                .map(|p| PortDescriptor {
                    name: p.name.clone(),
                    direction: p.direction,
                    label: String::new(),
                    schema: p.schema.clone(),
                })
                .collect()
        })
    });
    reported.unwrap_or_else(|| {
        modules.with(|modules| {
            modules
                .iter()
                .find(|m| m.metadata.name.as_deref() == Some(node.spec.module.as_str()))
                .and_then(|m| m.spec.components.iter().find(|c| c.name == node.spec.component))
                .map(|c| c.ports.clone())
                .unwrap_or_default()
        })
    })
}
