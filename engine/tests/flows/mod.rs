//! Flows the chart's tests run: with the chart's identities as local processes (chart.rs) and
//! as the chart's pods on a real node (served.rs).

/// A flow across three modules: a ticker lists the namespace's Deployments, a script keeps
/// their names, and a debug node keeps what arrives.
pub fn listing_flow(namespace: &str) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Flow
metadata: {{name: census}}
spec: {{description: Counts the Deployments}}
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: tick}}
spec:
  flow: census
  module: common
  component: ticker
  settings: {{interval: 1s, firstTick: immediately}}
  edges: [{{port: out, to: {{node: list, port: in}}, mapping: {{}}}}]
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: list}}
spec:
  flow: census
  module: kubernetes
  component: workload_list
  settings: {{namespace: {namespace}}}
  edges: [{{port: out, to: {{node: names, port: in}}, mapping: "{{{{ . }}}}"}}]
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: names}}
spec:
  flow: census
  module: js
  component: js_eval
  settings:
    script: "export default (input) => ({{ names: input.workloads.filter((w) => w.kind === \"Deployment\").map((w) => w.name) }})"
  edges: [{{port: response, to: {{node: log, port: in}}, mapping: "{{{{ . }}}}"}}]
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata: {{name: log}}
spec: {{flow: census, module: common, component: debug, settings: {{keep: 5}}}}
"#
    )
}
