//! Printing resources the way `kubectl get` does: the CRD's printer columns as a table, or the
//! objects as YAML, JSON or names.

use std::io::Write;

use anyhow::Result;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use serde_json::{Value, json};
use weir_model::Kind;
use weir_store::DynamicObject;

use crate::cli::Output;

/// Prints objects of one kind in the given format.
pub fn print(
    out: &mut impl Write,
    kind: Kind,
    objects: &[DynamicObject],
    format: Output,
    all_namespaces: bool,
) -> Result<()> {
    match format {
        Output::Table | Output::Wide => {
            table(out, kind, objects, format == Output::Wide, all_namespaces)
        }
        Output::Yaml => Ok(write!(out, "{}", serde_yaml_ng::to_string(&one_or_list(objects)?)?)?),
        Output::Json => {
            Ok(writeln!(out, "{}", serde_json::to_string_pretty(&one_or_list(objects)?)?)?)
        }
        Output::Name => {
            for object in objects {
                writeln!(
                    out,
                    "{}/{}",
                    resource_name(kind),
                    object.metadata.name.as_deref().unwrap_or_default()
                )?;
            }
            Ok(())
        }
    }
}

/// `flow.weir.dev`, as kubectl names a resource in its messages.
pub fn resource_name(kind: Kind) -> String {
    format!("{}.{}", kind.name().to_ascii_lowercase(), weir_model::GROUP)
}

fn one_or_list(objects: &[DynamicObject]) -> Result<Value> {
    if let [one] = objects {
        return Ok(serde_json::to_value(one)?);
    }
    Ok(json!({ "apiVersion": "v1", "kind": "List", "items": objects }))
}

fn table(
    out: &mut impl Write,
    kind: Kind,
    objects: &[DynamicObject],
    wide: bool,
    all_namespaces: bool,
) -> Result<()> {
    if objects.is_empty() {
        writeln!(out, "No resources found.")?;
        return Ok(());
    }
    let crd = kind.crd();
    let columns: Vec<CustomResourceColumnDefinition> = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| wide || c.priority.unwrap_or(0) == 0)
        .collect();
    let mut rows = vec![];
    let mut header = vec![];
    if all_namespaces {
        header.push("NAMESPACE".to_owned());
    }
    header.push("NAME".to_owned());
    header.extend(columns.iter().map(|c| c.name.to_ascii_uppercase()));
    rows.push(header);
    for object in objects {
        let value = serde_json::to_value(object)?;
        let mut row = vec![];
        if all_namespaces {
            row.push(object.metadata.namespace.clone().unwrap_or_default());
        }
        row.push(object.metadata.name.clone().unwrap_or_default());
        for column in &columns {
            let cell = json_path(&value, &column.json_path);
            row.push(match (column.type_.as_str(), cell) {
                ("date", Some(Value::String(time))) => age(time),
                (_, Some(Value::String(text))) => text.clone(),
                (_, Some(Value::Null) | None) => "<none>".to_owned(),
                (_, Some(other)) => other.to_string(),
            });
        }
        rows.push(row);
    }
    write_columns(out, &rows)
}

/// Prints rows (the header first) as columns, as `kubectl get` does.
pub fn write_columns(out: &mut impl Write, rows: &[Vec<String>]) -> Result<()> {
    let Some(header) = rows.first() else { return Ok(()) };
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r.get(i).map_or(0, |c| c.chars().count())).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        writeln!(out, "{}", cells.join("   ").trim_end())?;
    }
    Ok(())
}

/// Evaluates the JSONPath subset printer columns use: `.a.b` steps and `[?(@.k=="v")]` filters.
fn json_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(filter) = rest.strip_prefix("[?(@.") {
            let (condition, after) = filter.split_once(")]")?;
            let (key, wanted) = condition.split_once("==")?;
            let wanted = wanted.trim_matches('"');
            current = current
                .as_array()?
                .iter()
                .find(|item| item.get(key).and_then(Value::as_str) == Some(wanted))?;
            rest = after;
        } else if let Some(step) = rest.strip_prefix('.') {
            let end = step.find(['.', '[']).unwrap_or(step.len());
            current = current.get(&step[..end])?;
            rest = &step[end..];
        } else {
            return None;
        }
    }
    Some(current)
}

/// How long ago an RFC 3339 time was, as kubectl shows ages.
fn age(time: &str) -> String {
    let Ok(then) = time.parse::<k8s_openapi::jiff::Timestamp>() else {
        return "<invalid>".to_owned();
    };
    let seconds = (k8s_openapi::jiff::Timestamp::now().as_second() - then.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_follows_fields_and_filters() {
        let value = json!({
            "spec": { "flow": "mirror" },
            "status": { "conditions": [
                { "type": "Built", "status": "True" },
                { "type": "Ready", "status": "False" },
            ] },
        });
        assert_eq!(json_path(&value, ".spec.flow"), Some(&json!("mirror")));
        assert_eq!(
            json_path(&value, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("False"))
        );
        assert_eq!(json_path(&value, ".status.conditions[?(@.type==\"Gone\")].status"), None);
        assert_eq!(json_path(&value, ".spec.missing"), None);
    }

    #[test]
    fn ages_read_like_kubectl() {
        let ago = |seconds: i64| {
            let then = k8s_openapi::jiff::Timestamp::from_second(
                k8s_openapi::jiff::Timestamp::now().as_second() - seconds,
            )
            .unwrap();
            age(&then.to_string())
        };
        assert_eq!(ago(30), "30s");
        assert_eq!(ago(600), "10m");
        assert_eq!(ago(5 * 3600), "5h");
        assert_eq!(ago(3 * 86_400), "3d");
    }
}
