//! A form for a node's settings, generated from the component's settings schema: text, number
//! and check boxes, choices for enums, lists with add and remove, nested groups, password
//! fields for secrets (whose stored value the engine keeps unless a new one is typed), a code
//! editor for scripts (`x-weir-code`), the cluster's kinds and namespaces for fields marked
//! `x-weir-picker` (see [`crate::kubernetes`]), and a JSON box for anything free-form. Each
//! field's description is its help text. A change is one undoable edit.

use leptos::{ev, prelude::*};
use serde_json::{Map, Value};

use crate::{editor::Editor, kubernetes, schema};

/// One step into a settings document.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Item(usize),
}

fn get<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(value, |at, step| match step {
        Step::Field(name) => at.get(name),
        Step::Item(index) => at.get(index),
    })
}

/// Sets (or, with `None`, removes) the value at `path`, making objects on the way.
fn set(value: &mut Value, path: &[Step], new: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        if let Some(new) = new {
            *value = new;
        }
        return;
    };
    let mut at = value;
    for step in parents {
        if let Step::Field(_) = step
            && !at.is_object()
        {
            *at = Value::Object(Map::new());
        }
        at = match (step, at) {
            (Step::Field(name), Value::Object(object)) => {
                object.entry(name.clone()).or_insert(Value::Null)
            }
            (Step::Item(index), Value::Array(items)) if *index < items.len() => &mut items[*index],
            _ => return,
        };
    }
    match (last, new) {
        (Step::Field(name), Some(new)) => {
            if !at.is_object() {
                *at = Value::Object(Map::new());
            }
            if let Some(object) = at.as_object_mut() {
                object.insert(name.clone(), new);
            }
        }
        (Step::Field(name), None) => {
            if let Some(object) = at.as_object_mut() {
                object.remove(name);
            }
        }
        (Step::Item(index), Some(new)) => {
            if let Some(item) = at.get_mut(*index) {
                *item = new;
            }
        }
        (Step::Item(index), None) => {
            if let Some(array) = at.as_array_mut()
                && *index < array.len()
            {
                array.remove(*index);
            }
        }
    }
}

/// The settings form of node `node`.
#[component]
pub fn SettingsForm(node: String) -> impl IntoView {
    let editor = expect_context::<Editor>();
    let spec_node = node.clone();
    let spec = Memo::new(move |_| {
        editor.doc.with(|d| d.as_ref().and_then(|d| d.node(&spec_node)).map(|n| n.spec.clone()))
    });
    let form_node = node;
    move || {
        let Some(spec) = spec.get() else { return view! { <p>"No such node."</p> }.into_any() };
        let Some(root) = editor
            .component(spec.module.as_str(), spec.component.as_str())
            .and_then(|c| c.settings_schema)
        else {
            return view! { <p class="help">"This component has no settings."</p> }.into_any();
        };
        let settings = Value::Object(spec.settings);
        let node = form_node.clone();
        let change = Callback::new(move |(path, value): (Vec<Step>, Option<Value>)| {
            let node = node.clone();
            editor.edit(move |doc| {
                let Some(current) = doc.node(&node).map(|n| Value::Object(n.spec.settings.clone()))
                else {
                    return;
                };
                let mut next = current;
                set(&mut next, &path, value);
                if let Value::Object(object) = next {
                    doc.set_settings(&node, object);
                }
            });
        });
        view! { <div class="settings" data-testid="settings">{object_fields(&root, &root, &settings, &[], change)}</div> }.into_any()
    }
}

type Change = Callback<(Vec<Step>, Option<Value>)>;

fn object_fields(
    root: &Value,
    schema: &Value,
    value: &Value,
    path: &[Step],
    change: Change,
) -> AnyView {
    let schema = schema::resolve(root, schema);
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return json_field(value, path, change);
    };
    properties
        .iter()
        .map(|(name, property)| {
            let mut at = path.to_vec();
            at.push(Step::Field(name.clone()));
            let current = get(value, &[Step::Field(name.clone())]).cloned();
            let input = Input {
                value: current,
                parent: value,
                parent_schema: schema,
                required: required.contains(name),
            };
            field(root, property, input, &at, name, change)
        })
        .collect_view()
        .into_any()
}

/// A field's value, the object it is a field of (with its schema), and whether it is required.
struct Input<'a> {
    value: Option<Value>,
    parent: &'a Value,
    parent_schema: &'a Value,
    required: bool,
}

fn field(
    root: &Value,
    schema: &Value,
    input: Input<'_>,
    path: &[Step],
    name: &str,
    change: Change,
) -> AnyView {
    let Input { value, parent, parent_schema, required } = input;
    let resolved = schema::resolve(root, schema);
    // An unset field shows the value the component takes for it.
    let value =
        value.or_else(|| schema.get("default").or_else(|| resolved.get("default")).cloned());
    let help = schema
        .get("description")
        .or_else(|| resolved.get("description"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let id = path
        .iter()
        .map(|s| match s {
            Step::Field(n) => n.clone(),
            Step::Item(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".");
    let picker = schema.get("x-weir-picker").or_else(|| resolved.get("x-weir-picker"));
    let input = match picker.and_then(Value::as_str) {
        Some("kubernetes-kind") => kind_picker(parent, parent_schema, path, change),
        Some("kubernetes-namespace") => {
            let current = value.as_ref().and_then(Value::as_str).unwrap_or_default().to_owned();
            let path = path.to_vec();
            let testid = format!("setting-{}", path_name(&path));
            let pick = Callback::new(move |chosen: String| {
                let chosen = (!chosen.is_empty()).then_some(Value::String(chosen));
                change.run((path.clone(), chosen));
            });
            kubernetes::namespace_picker(current, testid, pick)
        }
        _ => control(root, resolved, value, path, required, change, &id),
    };
    view! {
        <div class="field">
            <label for=id>{name.to_owned()}{if required { " *" } else { "" }}</label>
            {input}
            <p class="help">{help}</p>
        </div>
    }
    .into_any()
}

fn control(
    root: &Value,
    schema: &Value,
    value: Option<Value>,
    path: &[Step],
    required: bool,
    change: Change,
    id: &str,
) -> AnyView {
    let path = path.to_vec();
    let id = id.to_owned();
    if let Some(choices) = schema::choices(schema) {
        let current = value.unwrap_or(Value::Null);
        let options: Vec<Value> = choices.clone();
        return view! {
            <select id=id data-testid=format!("setting-{}", path_name(&path)) on:change=move |event: ev::Event| {
                let index: Option<usize> = event_target_value(&event).parse().ok();
                change.run((path.clone(), index.and_then(|i| options.get(i).cloned())));
            }>
                {(!required).then(|| view! { <option value="">"(none)"</option> })}
                {choices.iter().enumerate().map(|(i, choice)| {
                    let text = choice.as_str().map_or_else(|| choice.to_string(), str::to_owned);
                    view! { <option value=i.to_string() selected=*choice == current>{text}</option> }
                }).collect_view()}
            </select>
        }
        .into_any();
    }
    let testid = format!("setting-{}", path_name(&path));
    match schema::kind(schema) {
        Some("boolean") => {
            let checked = value.as_ref().and_then(Value::as_bool).unwrap_or(false);
            view! {
                <input type="checkbox" id=id data-testid=testid prop:checked=checked on:change=move |event: ev::Event| {
                    change.run((path.clone(), Some(Value::Bool(event_target_checked(&event)))));
                }/>
            }
            .into_any()
        }
        Some(kind @ ("integer" | "number")) => {
            let text = value.as_ref().map(Value::to_string).unwrap_or_default();
            let integer = kind == "integer";
            view! {
                <input type="number" step=if integer { "1" } else { "any" } id=id data-testid=testid prop:value=text on:change=move |event: ev::Event| {
                    let text = event_target_value(&event);
                    let parsed = if text.trim().is_empty() {
                        None
                    } else if integer {
                        text.trim().parse::<i64>().ok().map(Value::from)
                    } else {
                        text.trim().parse::<f64>().ok().and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                    };
                    if parsed.is_some() || !required {
                        change.run((path.clone(), parsed));
                    }
                }/>
            }
            .into_any()
        }
        Some("string") => {
            let text = value.as_ref().and_then(Value::as_str).unwrap_or_default().to_owned();
            let commit = move |event: ev::Event| {
                let text = event_target_value(&event);
                change.run((
                    path.clone(),
                    if text.is_empty() && !required { None } else { Some(Value::String(text)) },
                ));
            };
            if schema::is_secret(schema) {
                // The stored value stays on the engine; typing replaces it.
                let placeholder =
                    if text == weir_model::redact::KEPT { "stored (type to replace)" } else { "" };
                view! { <input type="password" id=id data-testid=testid autocomplete="off" placeholder=placeholder on:change=commit/> }.into_any()
            } else if let Some(language) = schema.get("x-weir-code").and_then(Value::as_str) {
                let rows = text.lines().count().clamp(4, 24);
                view! { <textarea class="code" spellcheck="false" data-language=language.to_owned() rows=rows id=id data-testid=testid prop:value=text on:change=commit/> }.into_any()
            } else {
                view! { <input type="text" id=id data-testid=testid prop:value=text on:change=commit/> }.into_any()
            }
        }
        Some("array") => {
            let items = value.as_ref().and_then(Value::as_array).cloned().unwrap_or_default();
            let item_schema = schema.get("items").cloned().unwrap_or(Value::Bool(true));
            let root_for_add = root.clone();
            let add_path = path.clone();
            let add_items = items.clone();
            let rows = items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    let mut at = path.clone();
                    at.push(Step::Item(index));
                    let remove_path = at.clone();
                    let inner = control(root, schema::resolve(root, &item_schema), Some(item.clone()), &at, true, change, &format!("{id}.{index}"));
                    view! {
                        <li>{inner}<button class="remove" title="Remove" on:click=move |_| change.run((remove_path.clone(), None))>"×"</button></li>
                    }
                })
                .collect_view();
            view! {
                <div class="list">
                    <ol>{rows}</ol>
                    <button class="add" data-testid=format!("{testid}-add") on:click=move |_| {
                        let mut next = add_items.clone();
                        next.push(schema::sample(&root_for_add, &item_schema));
                        change.run((add_path.clone(), Some(Value::Array(next))));
                    }>"Add"</button>
                </div>
            }
            .into_any()
        }
        Some("object") if schema.get("properties").is_some() => {
            let value = value.unwrap_or(Value::Object(Map::new()));
            view! { <fieldset>{object_fields(root, schema, &value, &path, change)}</fieldset> }
                .into_any()
        }
        _ => json_field(&value.unwrap_or(Value::Null), &path, change),
    }
}

/// The kind picker of the `kind` field at `path`, which sets `apiVersion` beside it in
/// `parent` in the same edit, and `resource` where the settings have one: the plural the
/// cluster serves the kind as, or none (guessed) for another kind it does not offer; unset,
/// they show the defaults `schema` gives them.
fn kind_picker(parent: &Value, schema: &Value, path: &[Step], change: Change) -> AnyView {
    let text = |key: &str| {
        let default = || schema.get("properties")?.get(key)?.get("default");
        let given = parent.get(key).or_else(default);
        given.and_then(Value::as_str).unwrap_or_default().to_owned()
    };
    let current = (text("apiVersion"), text("kind"));
    let object_path = path[..path.len().saturating_sub(1)].to_vec();
    let testid = format!("setting-{}", path_name(path));
    let parent = parent.clone();
    let has_resource = schema.get("properties").and_then(|p| p.get("resource")).is_some();
    let before = current.clone();
    let pick = Callback::new(move |(api_version, kind, resource): kubernetes::Picked| {
        let mut next = parent.as_object().cloned().unwrap_or_default();
        let same = (&api_version, &kind) == (&before.0, &before.1);
        match resource {
            Some(resource) if has_resource => {
                next.insert("resource".to_owned(), Value::String(resource));
            }
            // Another kind: the plural of the one before would be refused.
            None if !same => {
                next.remove("resource");
            }
            _ => {}
        }
        next.insert("apiVersion".to_owned(), Value::String(api_version));
        next.insert("kind".to_owned(), Value::String(kind));
        change.run((object_path.clone(), Some(Value::Object(next))));
    });
    kubernetes::kind_picker(current, testid, pick)
}

/// A JSON box for free-form values; text that is not JSON is refused in place.
fn json_field(value: &Value, path: &[Step], change: Change) -> AnyView {
    let text = if value.is_null() {
        String::new()
    } else {
        serde_json::to_string_pretty(value).unwrap_or_default()
    };
    let problem = RwSignal::new(String::new());
    let path = path.to_vec();
    let testid = format!("setting-{}", path_name(&path));
    view! {
        <textarea class="code" spellcheck="false" rows="4" data-testid=testid prop:value=text on:change=move |event: ev::Event| {
            let text = event_target_value(&event);
            if text.trim().is_empty() {
                problem.set(String::new());
                change.run((path.clone(), None));
                return;
            }
            match serde_json::from_str::<Value>(&text) {
                Ok(parsed) => {
                    problem.set(String::new());
                    change.run((path.clone(), Some(parsed)));
                }
                Err(err) => problem.set(format!("not JSON: {err}")),
            }
        }/>
        <p class="problem">{move || problem.get()}</p>
    }
    .into_any()
}

fn path_name(path: &[Step]) -> String {
    path.iter()
        .map(|s| match s {
            Step::Field(n) => n.clone(),
            Step::Item(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_are_set_and_removed_along_paths() {
        let mut settings = json!({ "routes": [{ "name": "a" }] });
        set(&mut settings, &[Step::Field("interval".to_owned())], Some(json!("5s")));
        set(
            &mut settings,
            &[Step::Field("routes".to_owned()), Step::Item(0), Step::Field("when".to_owned())],
            Some(json!(".x")),
        );
        set(
            &mut settings,
            &[Step::Field("nested".to_owned()), Step::Field("deep".to_owned())],
            Some(json!(1)),
        );
        assert_eq!(
            settings,
            json!({ "routes": [{ "name": "a", "when": ".x" }], "interval": "5s", "nested": { "deep": 1 } })
        );
        set(&mut settings, &[Step::Field("routes".to_owned()), Step::Item(0)], None);
        set(&mut settings, &[Step::Field("interval".to_owned())], None);
        assert_eq!(settings, json!({ "routes": [], "nested": { "deep": 1 } }));
        assert_eq!(
            get(&settings, &[Step::Field("nested".to_owned()), Step::Field("deep".to_owned())]),
            Some(&json!(1))
        );
    }
}
