//! The runtime's numbers in the Prometheus text format, for the `/metrics` endpoint of every
//! process that hosts modules.

use std::fmt::Write as _;

use crate::runtime::Runtime;

/// Renders every metric of `runtime`.
pub fn render(runtime: &Runtime) -> String {
    let mut out = String::new();
    let nodes = runtime.node_counters();
    let families = [
        ("weir_node_messages_in_total", "Messages delivered to a node.", 0),
        ("weir_node_messages_out_total", "Messages a node emitted.", 1),
        ("weir_node_errors_total", "Deliveries to a node that ended in an error.", 2),
    ];
    for (name, help, field) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (identity, counters) in &nodes {
            let value = [counters.messages_in, counters.messages_out, counters.errors][field];
            let _ = writeln!(out, "{name}{{{}}} {value}", node_labels(identity));
        }
    }
    out.push_str("# HELP weir_nodes Nodes running in this process.\n# TYPE weir_nodes gauge\n");
    let _ = writeln!(out, "weir_nodes {}", nodes.len());
    out.push_str(
        "# HELP weir_leader Whether this replica leads and so runs the triggers.\n\
         # TYPE weir_leader gauge\n",
    );
    let _ = writeln!(out, "weir_leader {}", u8::from(runtime.leads()));
    let (delivered, failed) = runtime.remote_outcomes();
    out.push_str(
        "# HELP weir_remote_deliveries_total Deliveries to nodes of other modules, by outcome.\n\
         # TYPE weir_remote_deliveries_total counter\n",
    );
    let _ = writeln!(out, "weir_remote_deliveries_total{{outcome=\"answered\"}} {delivered}");
    let _ = writeln!(out, "weir_remote_deliveries_total{{outcome=\"failed\"}} {failed}");
    out.push_str(
        "# HELP weir_remote_delivery_seconds How long deliveries to other modules took, \
         downstream work included.\n# TYPE weir_remote_delivery_seconds histogram\n",
    );
    runtime.remote_latency().render("weir_remote_delivery_seconds", "", &mut out);
    out.push_str(
        "# HELP weir_node_delivery_seconds How long a node took to handle a message, \
         downstream work included.\n# TYPE weir_node_delivery_seconds histogram\n",
    );
    for node in runtime.local_nodes() {
        node.latency().render("weir_node_delivery_seconds", &node_labels(&node.identity), &mut out);
    }
    render_node_gauges(runtime, &mut out);
    out
}

/// The gauges nodes reported, one family at a time (a family's lines must not be split), each
/// series labelled with its node.
fn render_node_gauges(runtime: &Runtime, out: &mut String) {
    let mut families: std::collections::BTreeMap<&str, (&str, Vec<String>)> =
        std::collections::BTreeMap::new();
    let nodes = runtime.node_gauges();
    for (identity, gauges) in &nodes {
        for (gauge, series) in gauges {
            let lines = &mut families.entry(gauge.name).or_insert((gauge.help, Vec::new())).1;
            for (labels, value) in series {
                let mut text = node_labels(identity);
                for (name, label) in labels {
                    let _ = write!(text, ",{name}=\"{}\"", escape(label));
                }
                lines.push(format!("{}{{{text}}} {value}", gauge.name));
            }
        }
    }
    for (name, (help, lines)) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// The labels that name a node: its namespace, flow and name.
fn node_labels(identity: &weir_sdk::NodeIdentity) -> String {
    format!(
        "namespace=\"{}\",flow=\"{}\",node=\"{}\"",
        escape(&identity.namespace),
        escape(&identity.flow),
        escape(&identity.node)
    )
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
