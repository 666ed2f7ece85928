//! The runtime's numbers in the Prometheus text format, for the `/metrics` endpoint of every
//! process that hosts modules.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use crate::Runtime;

/// Upper bounds of the remote delivery latency buckets, in seconds.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A latency histogram that many tasks record into without locks.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    /// Observations at or below each bound (not cumulative; summed when rendered).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, name: &str, out: &mut String) {
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

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
            let _ = writeln!(
                out,
                "{name}{{namespace=\"{}\",flow=\"{}\",node=\"{}\"}} {value}",
                escape(&identity.namespace),
                escape(&identity.flow),
                escape(&identity.node),
            );
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
    runtime.remote_latency().render("weir_remote_delivery_seconds", &mut out);
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
                let mut text = format!(
                    "namespace=\"{}\",flow=\"{}\",node=\"{}\"",
                    escape(&identity.namespace),
                    escape(&identity.flow),
                    escape(&identity.node)
                );
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

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(300));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(60));
        let mut out = String::new();
        histogram.render("h", &mut out);
        assert!(out.contains("h_bucket{le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("h_count 3\n"), "{out}");
        assert!(out.contains("h_sum 60.0033\n"), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
