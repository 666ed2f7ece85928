//! `weir chart --out charts/weir`: the generated parts of the Helm chart. The CRDs (the same
//! as `weir crds`), the RBAC rules of every process (`crate::rbac`, read by the chart's
//! templates from `files/rules.yaml`), the README, whose values table comes from the
//! `# --` comments of `values.yaml`, and the Artifact Hub annotations of `Chart.yaml` that
//! follow from the code (CRDs, examples, image). `--check` compares instead of writing, and fails naming
//! every stale file, so a test keeps the committed chart in step.

use std::{
    fmt::Write as _,
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use weir_model::{Kind, crd, module::PolicyRule};
use weir_sdk::Module;

use crate::{
    cli::ChartArgs,
    rbac::{self, Rules},
};

/// Runs `weir chart`.
pub fn run(builtins: &[Module], args: &ChartArgs, out: &mut impl Write) -> Result<()> {
    let files = generate(builtins, &args.out)?;
    if args.check {
        let stale: Vec<String> = files
            .iter()
            .filter(|(path, text)| fs::read_to_string(path).ok().as_deref() != Some(text))
            .map(|(path, _)| path.display().to_string())
            .collect();
        if !stale.is_empty() {
            bail!(
                "stale: {} (run `weir chart --out {}` and commit the result)",
                stale.join(", "),
                args.out.display()
            );
        }
        writeln!(out, "{} generated files are up to date", files.len())?;
        return Ok(());
    }
    for (path, text) in files {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(out, "wrote {}", path.display())?;
    }
    Ok(())
}

/// Every generated file of the chart in `dir`, with its contents.
pub fn generate(builtins: &[Module], dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut files: Vec<(PathBuf, String)> = Kind::ALL
        .into_iter()
        .map(|kind| (dir.join("crds").join(crd::file_name(kind)), crd::to_yaml(kind)))
        .collect();
    let modules = builtins
        .iter()
        .map(|m| Ok((m.name().to_owned(), rbac::module(m)?)))
        .collect::<Result<Vec<_>>>()?;
    let parts =
        Parts { engine: rbac::engine(), modules, flow_account: rbac::flow_account(builtins)? };
    files.push((dir.join("files/rules.yaml"), rules_yaml(&parts)));
    let values_path = dir.join("values.yaml");
    let values = fs::read_to_string(&values_path)
        .with_context(|| format!("cannot read {}", values_path.display()))?;
    let chart_path = dir.join("Chart.yaml");
    let chart = fs::read_to_string(&chart_path)
        .with_context(|| format!("cannot read {}", chart_path.display()))?;
    let chart: Value = serde_yaml_ng::from_str(&chart)
        .with_context(|| format!("{} is not YAML", chart_path.display()))?;
    let values_parsed: Value = serde_yaml_ng::from_str(&values)
        .with_context(|| format!("{} is not YAML", values_path.display()))?;
    let chart = with_artifact_hub_annotations(chart, &values_parsed)?;
    files.push((chart_path, serde_yaml_ng::to_string(&chart)?));
    let documented = documented_values(&values)
        .with_context(|| format!("cannot document {}", values_path.display()))?;
    files.push((dir.join("README.md"), readme(&chart, &parts, &documented)));
    let schema = values_schema(&values_parsed, &documented);
    files.push((dir.join("values.schema.json"), format!("{schema:#}\n")));
    Ok(files)
}

/// `Chart.yaml` with the annotations Artifact Hub reads that follow from the code: the CRDs
/// (`artifacthub.io/crds`), an example of each (`artifacthub.io/crdsExamples`) and the image
/// (`artifacthub.io/images`). Everything else, `artifacthub.io/changes` among it, stays as
/// written.
fn with_artifact_hub_annotations(mut chart: Value, values: &Value) -> Result<Value> {
    let crds: Vec<Value> = Kind::ALL
        .into_iter()
        .map(|kind| {
            let definition = kind.crd();
            let version = definition.spec.versions.first();
            let description = version
                .and_then(|v| v.schema.as_ref()?.open_api_v3_schema.as_ref()?.description.clone())
                .unwrap_or_default();
            serde_json::json!({
                "kind": kind.name(),
                "version": version.map(|v| v.name.clone()).unwrap_or_default(),
                "name": definition.metadata.name.unwrap_or_default(),
                "displayName": kind.name(),
                "description": description,
            })
        })
        .collect();
    let examples = serde_json::json!([
        { "apiVersion": weir_model::API_VERSION, "kind": "Flow",
          "metadata": { "name": "hello" },
          "spec": { "description": "Says hello every minute." } },
        { "apiVersion": weir_model::API_VERSION, "kind": "FlowNode",
          "metadata": { "name": "tick" },
          "spec": { "flow": "hello", "module": "common", "component": "ticker",
                    "settings": { "interval": "1m" },
                    "edges": [{ "port": "out", "to": { "node": "greet", "port": "in" } }] } },
        { "apiVersion": weir_model::API_VERSION, "kind": "FlowNode",
          "metadata": { "name": "greet" },
          "spec": { "flow": "hello", "module": "common", "component": "debug" } },
    ]);
    let repository = values
        .pointer("/image/repository")
        .and_then(Value::as_str)
        .context("values.yaml has no image.repository")?;
    let tag =
        chart.get("appVersion").and_then(Value::as_str).context("Chart.yaml has no appVersion")?;
    let images = serde_json::json!([{ "name": "weir", "image": format!("{repository}:{tag}") }]);
    let annotations = chart
        .as_object_mut()
        .context("Chart.yaml is not a mapping")?
        .entry("annotations")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let annotations = annotations.as_object_mut().context("Chart.yaml's annotations")?;
    for (key, value) in [
        ("artifacthub.io/crds", crds.into()),
        ("artifacthub.io/crdsExamples", examples),
        ("artifacthub.io/images", images),
    ] {
        annotations.insert(key.to_owned(), Value::String(serde_yaml_ng::to_string(&value)?));
    }
    Ok(chart)
}

/// Keys whose objects go to Kubernetes as they are (pod and container fields, maps of labels
/// and annotations), so any field Kubernetes takes is allowed in them. Every other object of
/// `values.yaml` takes only its own keys, so `helm install` refuses a misspelt one by name.
const PASSED_THROUGH: &[&str] = &[
    "affinity",
    "annotations",
    "capabilities",
    "labels",
    "nodeSelector",
    "podAnnotations",
    "podLabels",
    "podSecurityContext",
    "resources",
    "seccompProfile",
    "securityContext",
    "tolerations",
];

/// `values.schema.json`: each value's type from its default, its description from its
/// `# --` comment.
fn values_schema(values: &Value, documented: &[Documented]) -> Value {
    fn schema_of(key: &str, path: &str, value: &Value, documented: &[Documented]) -> Value {
        let mut schema = match value {
            Value::Null => serde_json::json!({}),
            Value::Bool(_) => serde_json::json!({ "type": "boolean" }),
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                serde_json::json!({ "type": "integer" })
            }
            Value::Number(_) => serde_json::json!({ "type": "number" }),
            // `--set image.tag=1.2` reads as a number; it is still meant as text.
            Value::String(_) => serde_json::json!({ "type": ["string", "number"] }),
            Value::Array(_) => serde_json::json!({ "type": "array" }),
            Value::Object(fields) => {
                let properties: serde_json::Map<String, Value> = fields
                    .iter()
                    .map(|(name, field)| {
                        let path =
                            if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                        (name.clone(), schema_of(name, &path, field, documented))
                    })
                    .collect();
                let open = fields.is_empty() || PASSED_THROUGH.contains(&key);
                serde_json::json!({
                    "type": "object",
                    "properties": properties,
                    "additionalProperties": open,
                })
            }
        };
        if let Some(described) = documented.iter().find(|d| d.key == path) {
            schema["description"] = Value::String(described.description.clone());
        }
        schema
    }
    let mut schema = schema_of("", "", values, documented);
    schema["$schema"] = Value::String("https://json-schema.org/draft-07/schema#".to_owned());
    schema["title"] = Value::String(
        "Values of the weir chart (generated by `weir chart --out charts/weir` from values.yaml)"
            .to_owned(),
    );
    schema
}

/// The rules of every process: the engine's, and each module's by name; and what the
/// default flow account may do.
struct Parts {
    engine: Rules,
    modules: Vec<(String, Rules)>,
    flow_account: Vec<PolicyRule>,
}

impl Parts {
    fn all(&self) -> impl Iterator<Item = (&str, &Rules)> {
        std::iter::once(("engine", &self.engine))
            .chain(self.modules.iter().map(|(name, rules)| (name.as_str(), rules)))
    }
}

fn rules_yaml(parts: &Parts) -> String {
    let mut text = String::from(
        "# Generated by `weir chart --out charts/weir` from the rules each part of Weir declares\n\
         # (engine/src/rbac.rs and the components' descriptions); do not edit.\n\
         # home: the release namespace; flows: where flows live (the release namespace, or every\n\
         # namespace with rbac.scope cluster). flowAccount: what the default flow account\n\
         # (weir-flow) may do where flows act (the release namespace and rbac.namespaces, or\n\
         # every namespace with rbac.scope cluster): every component's declared rules.\n",
    );
    let write_part = |text: &mut String, indent: &str, name: &str, rules: &Rules| {
        let _ = writeln!(text, "{indent}{name}:");
        for (place, list) in rules.places() {
            if list.is_empty() {
                let _ = writeln!(text, "{indent}  {place}: []");
                continue;
            }
            let _ = writeln!(text, "{indent}  {place}:");
            for rule in list {
                let _ = writeln!(text, "{indent}    - {}", rule_yaml(rule));
            }
        }
    };
    write_part(&mut text, "", "engine", &parts.engine);
    text.push_str("modules:\n");
    for (name, rules) in &parts.modules {
        write_part(&mut text, "  ", name, rules);
    }
    text.push_str("flowAccount:\n");
    for rule in &parts.flow_account {
        let _ = writeln!(text, "  - {}", rule_yaml(rule));
    }
    text
}

fn rule_yaml(rule: &PolicyRule) -> String {
    let list =
        |items: &[String]| items.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ");
    format!(
        "{{apiGroups: [{}], resources: [{}], verbs: [{}]}}",
        list(&rule.api_groups),
        list(&rule.resources),
        list(&rule.verbs)
    )
}

/// A value of `values.yaml` with its description.
#[derive(Debug, PartialEq)]
struct Documented {
    key: String,
    default: Value,
    description: String,
}

/// Reads the `# --` descriptions of `values.yaml` (helm-docs' convention: the comment lines
/// right above a key). Every value must be described, itself or through an ancestor, whose
/// default then covers it.
fn documented_values(text: &str) -> Result<Vec<Documented>> {
    let parsed: Value = serde_yaml_ng::from_str(text).context("not YAML")?;
    let mut documented: Vec<Documented> = Vec::new();
    let mut path: Vec<(usize, String, bool)> = Vec::new();
    let mut pending: Option<String> = None;
    let mut list_at: Option<usize> = None;
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed == "---" {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            match (comment.strip_prefix(" --"), &mut pending) {
                (Some(start), _) => pending = Some(start.trim().to_owned()),
                (None, Some(description)) => {
                    description.push(' ');
                    description.push_str(comment.trim());
                }
                (None, None) => {}
            }
            continue;
        }
        // A list's items, with whatever they hold, belong to the key above them.
        if let Some(depth) = list_at {
            if indent > depth || indent == depth && trimmed.starts_with('-') {
                continue;
            }
            list_at = None;
        }
        if trimmed.starts_with('-') {
            list_at = Some(indent);
            continue;
        }
        let Some((key, rest)) = trimmed.split_once(':') else {
            bail!("line {number}: cannot read {trimmed:?}");
        };
        while path.last().is_some_and(|(depth, ..)| *depth >= indent) {
            path.pop();
        }
        let covered = path.iter().any(|(_, _, described)| *described);
        let described = pending.is_some();
        path.push((indent, key.trim_matches('"').to_owned(), described));
        let dotted = path.iter().map(|(_, k, _)| k.as_str()).collect::<Vec<_>>().join(".");
        let pointer: String = path.iter().map(|(_, k, _)| format!("/{k}")).collect();
        let default = parsed.pointer(&pointer).cloned().unwrap_or(Value::Null);
        let is_leaf = !rest.trim().is_empty() || !default.is_object();
        match pending.take() {
            Some(description) => documented.push(Documented { key: dotted, default, description }),
            None if is_leaf && !covered => {
                bail!("line {number}: {dotted} has no `# --` description")
            }
            None => {}
        }
    }
    Ok(documented)
}

fn readme(chart: &Value, parts: &Parts, values: &[Documented]) -> String {
    let field = |name: &str| chart.get(name).and_then(Value::as_str).unwrap_or_default();
    let mut text = format!(
        "# {name}\n\n<!-- Generated by `weir chart --out charts/weir` from Chart.yaml, values.yaml \
         and the rules each part of Weir declares; do not edit. -->\n\n{description}\n\n\
         Chart version {version}, Weir {app}, Kubernetes {kube}.\n\n",
        name = field("name"),
        description = field("description"),
        version = field("version"),
        app = field("appVersion"),
        kube = field("kubeVersion"),
    );
    text.push_str(
        "## Installing\n\n\
         ```sh\n\
         helm install weir charts/weir --namespace weir --create-namespace\n\
         kubectl -n weir port-forward svc/weir-engine 7420:80   # the editor on http://127.0.0.1:7420\n\
         ```\n\n\
         The editor signs users in with their Kubernetes bearer token (`kubectl create token NAME`,\n\
         or an OIDC ID token) and acts with it, so RBAC decides who may see and change which flows.\n\
         Bind the chart's `<release>-view` or `<release>-edit` ClusterRole to let someone in.\n\n\
         Helm installs `crds/` with the first release only and never upgrades them: after an\n\
         upgrade that changes them, apply them yourself with\n\
         `kubectl apply --server-side -f charts/weir/crds/`.\n\n\
         ## What each process may do\n\n\
         One ServiceAccount per process, granted exactly this. *home* is the release namespace;\n\
         *flows* is where flows live (the release namespace, or every namespace with\n\
         `rbac.scope: cluster`). Nodes do not act with their module's account: every\n\
         Kubernetes call a node makes is made as its flow's ServiceAccount\n\
         (`spec.serviceAccountName`, `weir-flow` by default), with a token the module asks for.\n\
         Naming an account in a flow is like naming one in a pod: whoever may write flows in a\n\
         namespace may act as its accounts, so grant `weir-edit` as you would grant creating\n\
         pods. The chart creates `weir-flow` in the release namespace, granted every\n\
         component's rules (*flow account* below) there and in `rbac.namespaces`, or in every\n\
         namespace with `rbac.scope: cluster`; a flow that needs less runs as an account of its\n\
         own (`weir rbac FLOW` prints its rules). Secret settings saved from the editor go into\n\
         a Secret named `weir-node-NODE`, written as the editor's user (who needs to write\n\
         Secrets there), and the node keeps only a reference that its flow's account reads.\n\n\
         | process | where | API group | resource | verbs |\n|---|---|---|---|---|\n",
    );
    let places = parts.all().flat_map(|(name, rules)| {
        rules.places().into_iter().flat_map(move |(place, list)| {
            list.iter().map(move |rule| (name.to_owned(), place, rule))
        })
    });
    let flow_account = parts
        .flow_account
        .iter()
        .map(|rule| ("flow account `weir-flow`".to_owned(), "where flows act", rule));
    for (who, place, rule) in places.chain(flow_account) {
        let group = rule.api_groups.join(", ");
        let group = if group.is_empty() { "core".to_owned() } else { group };
        let _ = writeln!(
            text,
            "| {who} | {place} | {group} | {} | {} |",
            rule.resources.join(", "),
            rule.verbs.join(", ")
        );
    }
    text.push_str("\n## Values\n\n| key | type | default | description |\n|---|---|---|---|\n");
    for value in values {
        // A group whose parts have rows of their own shows no default of its own.
        let prefix = format!("{}.", value.key);
        let grouping = values.iter().any(|other| other.key.starts_with(&prefix));
        let default = if grouping {
            String::new()
        } else {
            serde_json::to_string(&value.default).unwrap_or_default()
        };
        let _ = writeln!(
            text,
            "| `{}` | {} | {} | {} |",
            value.key,
            type_of(&value.default),
            if default.is_empty() {
                String::new()
            } else {
                format!("`{}`", default.replace('|', "\\|"))
            },
            value.description.replace('|', "\\|")
        );
    }
    text
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use anyhow::ensure;
    use serde_json::json;

    use super::*;

    #[test]
    fn the_examples_artifact_hub_shows_are_valid_resources() -> Result<()> {
        let chart = with_artifact_hub_annotations(
            json!({ "appVersion": "1.2.3" }),
            &json!({ "image": { "repository": "example.org/weir" } }),
        )?;
        let annotations = &chart["annotations"];
        let examples: Vec<Value> = serde_yaml_ng::from_str(
            annotations["artifacthub.io/crdsExamples"].as_str().context("examples")?,
        )?;
        ensure!(examples.len() == 3, "{examples:?}");
        for example in &examples {
            weir_model::manifest::validate(example).map_err(|err| anyhow::anyhow!("{err}"))?;
        }
        let crds: Vec<Value> =
            serde_yaml_ng::from_str(annotations["artifacthub.io/crds"].as_str().context("crds")?)?;
        ensure!(
            crds.iter().map(|c| c["name"].as_str().unwrap_or_default()).collect::<Vec<_>>()
                == ["flows.weir.dev", "flownodes.weir.dev", "modules.weir.dev"]
                && crds.iter().all(|c| c["description"].as_str().is_some_and(|d| !d.is_empty())),
            "{crds:?}"
        );
        ensure!(
            annotations["artifacthub.io/images"]
                == "- name: weir\n  image: example.org/weir:1.2.3\n",
            "{annotations}"
        );
        Ok(())
    }

    #[test]
    fn descriptions_belong_to_the_key_below_them_and_cover_undescribed_children() -> Result<()> {
        let values = "\
# -- How many replicas
replicas: 1
engine:
  # -- The Service
  # of the engine
  service:
    type: ClusterIP
    ports:
      - 80
  # -- Extra labels
  labels: {}
";
        let documented = documented_values(values)?;
        assert_eq!(
            documented,
            vec![
                Documented {
                    key: "replicas".into(),
                    default: json!(1),
                    description: "How many replicas".into()
                },
                Documented {
                    key: "engine.service".into(),
                    default: json!({ "type": "ClusterIP", "ports": [80] }),
                    description: "The Service of the engine".into()
                },
                Documented {
                    key: "engine.labels".into(),
                    default: json!({}),
                    description: "Extra labels".into()
                },
            ]
        );
        Ok(())
    }

    #[test]
    fn an_undescribed_value_is_named_with_its_line() {
        let err = documented_values("engine:\n  # -- fine\n  a: 1\n  b: 2\n")
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("line 4: engine.b has no `# --` description"));
    }
}
