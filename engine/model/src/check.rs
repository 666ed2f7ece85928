//! Checks a flow against the module catalogues, without running it: every node's component
//! exists, every edge leaves from an output and reaches an input of a node in the same flow,
//! and every mapping compiles. The engine writes the problems into the Flow's conditions; the
//! editor shows them on the canvas.

use std::{collections::HashMap, fmt};

use crate::{Direction, FlowNode, Module, mapping::Mapping, module::ComponentDescriptor};

/// One thing wrong with a flow, naming the node and, where it is about an edge, the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The node concerned.
    pub node: String,
    /// The index of the edge in the node's `spec.edges`, when the problem is an edge's.
    pub edge: Option<usize>,
    /// The field of the node at fault, such as `spec.component` or `spec.edges[0].to.port`, so
    /// the editor can point at it.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.edge {
            Some(edge) => write!(f, "node {} spec.edges[{edge}]: {}", self.node, self.message),
            None => write!(f, "node {}: {}", self.node, self.message),
        }
    }
}

/// The problems of the flow made of `nodes`, given the catalogues of the installed `modules`.
/// A node's own resolved ports (in its status) win over its component's default ports, since
/// ports can depend on settings.
pub fn check_flow(nodes: &[FlowNode], modules: &[Module]) -> Vec<Problem> {
    let components: HashMap<(&str, &str), &ComponentDescriptor> = modules
        .iter()
        .filter_map(|m| Some((m.metadata.name.as_deref()?, m)))
        .flat_map(|(name, m)| m.spec.components.iter().map(move |c| ((name, c.name.as_str()), c)))
        .collect();
    let by_name: HashMap<&str, &FlowNode> =
        nodes.iter().filter_map(|n| Some((n.metadata.name.as_deref()?, n))).collect();
    let mut problems = Vec::new();
    for (name, node) in &by_name {
        let problem = |edge: Option<usize>, field: &str, message: String| Problem {
            node: (*name).to_owned(),
            edge,
            field: match edge {
                Some(index) => format!("spec.edges[{index}]{field}"),
                None => format!("spec.{field}"),
            },
            message,
        };
        let spec = &node.spec;
        let installed =
            modules.iter().any(|m| m.metadata.name.as_deref() == Some(spec.module.as_str()));
        if !installed {
            problems.push(problem(
                None,
                "module",
                format!("module {} is not installed", spec.module),
            ));
        } else if !components.contains_key(&(spec.module.as_str(), spec.component.as_str())) {
            problems.push(problem(
                None,
                "component",
                format!("module {} has no component {}", spec.module, spec.component),
            ));
        }
        let outputs = ports(node, &components, Direction::Out);
        for (index, edge) in spec.edges.iter().enumerate() {
            if let Some(outputs) = &outputs
                && !outputs.contains(&edge.port.as_str())
            {
                problems.push(problem(
                    Some(index),
                    ".port",
                    format!(
                        "{name} has no output port {} (its outputs: {})",
                        edge.port,
                        list(outputs)
                    ),
                ));
            }
            match by_name.get(edge.to.node.as_str()) {
                None => problems.push(problem(
                    Some(index),
                    ".to.node",
                    format!("node {} is not in flow {}", edge.to.node, spec.flow),
                )),
                Some(target) => {
                    let inputs = ports(target, &components, Direction::In);
                    if let Some(inputs) = &inputs
                        && !inputs.contains(&edge.to.port.as_str())
                    {
                        problems.push(problem(
                            Some(index),
                            ".to.port",
                            format!(
                                "{} has no input port {} (its inputs: {})",
                                edge.to.node,
                                edge.to.port,
                                list(inputs)
                            ),
                        ));
                    }
                }
            }
            let Some(mapping) = &edge.mapping else { continue };
            match Mapping::compile(mapping) {
                Err(errors) => {
                    for error in errors {
                        problems.push(problem(Some(index), ".mapping", format!("mapping {error}")));
                    }
                }
                Ok(compiled) => {
                    let target = by_name.get(edge.to.node.as_str());
                    let schema =
                        target.and_then(|t| port_schema(t, &components, edge.to.port.as_str()));
                    for misfit in schema.map(|s| compiled.misfits(s)).unwrap_or_default() {
                        problems.push(problem(
                            Some(index),
                            ".mapping",
                            format!(
                                "mapping cannot fit {}.{}: {misfit}",
                                edge.to.node, edge.to.port
                            ),
                        ));
                    }
                }
            }
        }
    }
    problems.sort_by(|a, b| (&a.node, a.edge).cmp(&(&b.node, b.edge)));
    problems
}

/// The node's ports in one direction: its own resolved ports when it has been built, else its
/// component's default ports; `None` when neither is known.
fn ports<'a>(
    node: &'a FlowNode,
    components: &HashMap<(&str, &str), &'a ComponentDescriptor>,
    direction: Direction,
) -> Option<Vec<&'a str>> {
    Some(
        known_ports(node, components)?
            .into_iter()
            .filter(|p| p.direction == direction)
            .map(|p| p.name)
            .collect(),
    )
}

/// The JSON Schema of a node's input port, when known.
fn port_schema<'a>(
    node: &'a FlowNode,
    components: &HashMap<(&str, &str), &'a ComponentDescriptor>,
    port: &str,
) -> Option<&'a serde_json::Value> {
    known_ports(node, components)?
        .into_iter()
        .find(|p| p.direction == Direction::In && p.name == port)?
        .schema
}

/// A port as far as checking needs it.
struct KnownPort<'a> {
    name: &'a str,
    direction: Direction,
    schema: Option<&'a serde_json::Value>,
}

/// The node's ports: its own resolved ports when it has been built (ports can depend on
/// settings), else its component's default ports.
fn known_ports<'a>(
    node: &'a FlowNode,
    components: &HashMap<(&str, &str), &'a ComponentDescriptor>,
) -> Option<Vec<KnownPort<'a>>> {
    let resolved = node.status.as_ref().map(|s| s.ports.as_slice()).filter(|p| !p.is_empty());
    if let Some(resolved) = resolved {
        let known = resolved.iter().map(|p| KnownPort {
            name: p.name.as_str(),
            direction: p.direction,
            schema: p.schema.as_ref(),
        });
        return Some(known.collect());
    }
    let component = components.get(&(node.spec.module.as_str(), node.spec.component.as_str()))?;
    let known = component.ports.iter().map(|p| KnownPort {
        name: p.name.as_str(),
        direction: p.direction,
        schema: p.schema.as_ref(),
    });
    Some(known.collect())
}

fn list(names: &[&str]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn module() -> Module {
        serde_json::from_value(json!({
            "apiVersion": "weir.dev/v1alpha1", "kind": "Module",
            "metadata": { "name": "common", "namespace": "default" },
            "spec": { "version": "1", "components": [
                { "name": "ticker", "label": "Ticker", "ports": [{ "name": "out", "direction": "out" }] },
                { "name": "debug", "label": "Debug", "ports": [{ "name": "in", "direction": "in" }] },
                { "name": "log", "label": "Log", "ports": [{ "name": "in", "direction": "in", "schema": {
                    "type": "object", "required": ["text"], "properties": { "text": { "type": "string" } }
                } }] },
                { "name": "router", "label": "Router", "ports": [{ "name": "in", "direction": "in" }, { "name": "default", "direction": "out" }] },
            ] },
        }))
        .unwrap()
    }

    // Owned arguments read better with json! literals at the call sites.
    #[allow(clippy::needless_pass_by_value)]
    fn node(name: &str, component: &str, edges: serde_json::Value) -> FlowNode {
        serde_json::from_value(json!({
            "apiVersion": "weir.dev/v1alpha1", "kind": "FlowNode",
            "metadata": { "name": name, "namespace": "default" },
            "spec": { "flow": "f", "module": "common", "component": component, "edges": edges },
        }))
        .unwrap()
    }

    fn messages(nodes: &[FlowNode]) -> Vec<String> {
        check_flow(nodes, &[module()]).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_sound_flow_has_no_problems() {
        let nodes = [
            node(
                "tick",
                "ticker",
                json!([{ "port": "out", "to": { "node": "log", "port": "in" } }]),
            ),
            node("log", "debug", json!([])),
        ];
        assert!(messages(&nodes).is_empty(), "{:?}", messages(&nodes));
    }

    #[test]
    fn every_problem_names_its_node_and_edge() {
        let mut unknown_module = node("ext", "ticker", json!([]));
        unknown_module.spec.module = "kubernetes".parse().unwrap();
        let nodes = [
            node(
                "tick",
                "ticker",
                json!([
                    { "port": "output", "to": { "node": "log", "port": "in" } },
                    { "port": "out", "to": { "node": "gone", "port": "in" } },
                    { "port": "out", "to": { "node": "log", "port": "input" } },
                    { "port": "out", "to": { "node": "log", "port": "in" }, "mapping": { "a": "{{ .x | nope }}" } },
                ]),
            ),
            node("log", "debug", json!([])),
            node("odd", "mystery", json!([])),
            unknown_module,
        ];
        assert_eq!(
            messages(&nodes),
            [
                "node ext: module kubernetes is not installed",
                "node odd: module common has no component mystery",
                "node tick spec.edges[0]: tick has no output port output (its outputs: out)",
                "node tick spec.edges[1]: node gone is not in flow f",
                "node tick spec.edges[2]: log has no input port input (its inputs: in)",
                "node tick spec.edges[3]: mapping a: {{ .x | nope }}: undefined filter at character 6 (`nope`)",
            ]
        );
        let fields: Vec<String> =
            check_flow(&nodes, &[module()]).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "spec.module",
                "spec.component",
                "spec.edges[0].port",
                "spec.edges[1].to.node",
                "spec.edges[2].to.port",
                "spec.edges[3].mapping",
            ]
        );
    }

    #[test]
    fn a_mapping_that_cannot_fit_the_target_port_is_named() {
        let nodes = [
            node(
                "tick",
                "ticker",
                json!([
                    { "port": "out", "to": { "node": "log", "port": "in" }, "mapping": { "text": 5 } },
                    { "port": "out", "to": { "node": "log", "port": "in" }, "mapping": { "text": "{{ .n }}" } },
                ]),
            ),
            node("log", "log", json!([])),
        ];
        assert_eq!(
            messages(&nodes),
            [
                "node tick spec.edges[0]: mapping cannot fit log.in: text: the target port takes string here, not an integer"
            ]
        );
    }

    #[test]
    fn resolved_ports_win_over_the_catalogue_defaults() {
        let mut router = node(
            "route",
            "router",
            json!([{ "port": "images", "to": { "node": "log", "port": "in" } }]),
        );
        let nodes = [router.clone(), node("log", "debug", json!([]))];
        assert_eq!(
            messages(&nodes),
            ["node route spec.edges[0]: route has no output port images (its outputs: default)"]
        );
        router.status = Some(serde_json::from_value(json!({ "ports": [
            { "name": "in", "direction": "in" }, { "name": "images", "direction": "out" }, { "name": "default", "direction": "out" },
        ] })).unwrap());
        assert!(messages(&[router, node("log", "debug", json!([]))]).is_empty());
    }
}
