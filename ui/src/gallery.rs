//! The solutions gallery: ready-made flows from `solutions/`, each with its description and a
//! form of its settings (the same ones `weir solution install NAME --set key=value` takes).
//! Installing applies its manifests through the engine and opens the flow. A required
//! setting starts empty, its example only a hint, and installing without it is stopped at the
//! field; an optional one starts at its default (clearing it sets it empty), and a number
//! shows its range.

use std::collections::BTreeMap;

use leptos::{ev, prelude::*, task::spawn_local};
use serde_json::Value;
use weir_api::{SolutionSetting, SolutionSummary};

use crate::{api, editor::Editor};

/// The gallery.
#[component]
pub fn Gallery() -> impl IntoView {
    let editor = expect_context::<Editor>();
    let solutions = RwSignal::new(Vec::<SolutionSummary>::new());
    let chosen = RwSignal::new(None::<String>);
    let loaded = RwSignal::new(false);
    spawn_local(async move {
        match api::solutions().await {
            Ok(found) => solutions.set(found),
            Err(err) => editor.fail(err),
        }
        loaded.set(true);
    });
    view! {
        <section class="gallery" aria-busy=move || crate::editor::busy(loaded.get())>
            <h2>"Solutions"</h2>
            <ul>
                <For
                    each=move || solutions.get()
                    key=|solution| solution.name.clone()
                    children=move |solution| {
                        let name = solution.name.clone();
                        let pick = name.clone();
                        let open = Memo::new(move |_| chosen.get().as_deref() == Some(name.as_str()));
                        view! {
                            <li class="solution" class:open=open data-testid=format!("solution-{}", solution.name)>
                                <button
                                    title=solution.description
                                    aria-expanded=move || open.get().to_string()
                                    on:click=move |_| chosen.set(Some(pick.clone()))
                                >
                                    {solution.title.clone()}
                                </button>
                            </li>
                        }
                    }
                />
            </ul>
            {move || {
                let name = chosen.get()?;
                let solution = solutions.with(|all| all.iter().find(|s| s.name == name).cloned())?;
                Some(view! { <InstallForm solution on_done=move || chosen.set(None)/> })
            }}
        </section>
    }
}

/// A solution's description and settings, and the button that installs it.
#[component]
fn InstallForm(solution: SolutionSummary, on_done: impl Fn() + Copy + 'static) -> impl IntoView {
    let editor = expect_context::<Editor>();
    // Each setting changed, as text, the way --set takes it; one left alone keeps its default.
    let values = RwSignal::new(BTreeMap::<String, String>::new());
    // The required settings left empty when Install was pressed.
    let missing = RwSignal::new(Vec::<String>::new());
    let name = solution.name.clone();
    let required: Vec<String> =
        solution.settings.iter().filter(|s| s.required).map(|s| s.name.clone()).collect();
    // An optional text or list cleared is set empty (no selector, no namespace); any other
    // field cleared, such as a number, takes its default.
    let may_be_empty: Vec<String> = solution
        .settings
        .iter()
        .filter(|s| !s.required && matches!(s.kind.as_str(), "string" | "list"))
        .map(|s| s.name.clone())
        .collect();
    let install = move |_| {
        let name = name.clone();
        let given: BTreeMap<String, String> = values
            .get_untracked()
            .into_iter()
            .filter(|(setting, text)| !text.is_empty() || may_be_empty.contains(setting))
            .collect();
        let left_out: Vec<String> =
            required.iter().filter(|r| !given.contains_key(*r)).cloned().collect();
        if let Some(first) = left_out.first() {
            crate::focus::soon(&format!("#{}", field_id(&name, first)));
            missing.set(left_out);
            return;
        }
        missing.set(Vec::new());
        spawn_local(async move {
            match api::install(&name, &given).await {
                Ok(flows) => {
                    editor.done(format!("installed {name}: {}", flows.join(", ")));
                    editor.refresh_flows();
                    if let Some(first) = flows.into_iter().next() {
                        editor.open(first);
                    }
                    on_done();
                }
                Err(err) => editor.fail(err),
            }
        });
    };
    view! {
        <div class="install" data-testid="install-form">
            <h3>{solution.title.clone()}</h3>
            <p class="help">{solution.description.clone()}</p>
            {solution.settings.into_iter().map(|setting| view! { <SettingField solution=solution.name.clone() setting values missing/> }).collect_view()}
            <button data-testid="install" on:click=install>"Install"</button>
        </div>
    }
}

/// The id of a setting's field in the form of `solution`.
fn field_id(solution: &str, setting: &str) -> String {
    format!("solution-{solution}-{setting}")
}

/// One setting: a check box for a boolean, a choice for an enum, a number for an integer (its
/// range shown), text otherwise (a list is comma-separated). An optional field starts at its
/// default, so what it shows is what installs, and a text or list cleared is set empty; a
/// required one starts empty, with an example as its hint.
#[component]
fn SettingField(
    solution: String,
    setting: SolutionSetting,
    values: RwSignal<BTreeMap<String, String>>,
    missing: RwSignal<Vec<String>>,
) -> impl IntoView {
    let name = setting.name.clone();
    let id = field_id(&solution, &setting.name);
    let help_id = format!("{id}-help");
    let problem_id = format!("{id}-problem");
    let missing_name = setting.name.clone();
    let is_missing = Memo::new(move |_| missing.with(|m| m.contains(&missing_name)));
    let default_text = match &setting.default {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let set = move |text: String| {
        missing.update(|missing| missing.retain(|m| *m != name));
        let name = name.clone();
        values.update(|values| {
            values.insert(name, text);
        });
    };
    let testid = format!("solution-setting-{}", setting.name);
    let label = format!("{}{}", setting.name, if setting.required { " (required)" } else { "" });
    let described = {
        let (help_id, problem_id) = (help_id.clone(), problem_id.clone());
        move || if is_missing.get() { format!("{help_id} {problem_id}") } else { help_id.clone() }
    };
    let invalid = move || is_missing.get().then_some("true");
    let range = match (setting.minimum, setting.maximum) {
        (Some(min), Some(max)) => format!(" From {min} to {max}."),
        (Some(min), None) => format!(" At least {min}."),
        (None, Some(max)) => format!(" At most {max}."),
        (None, None) => String::new(),
    };
    let (hint, start) = if setting.required {
        let example = (!default_text.is_empty()).then(|| format!("such as {default_text}"));
        (example, String::new())
    } else {
        (None, default_text.clone())
    };
    let control = if setting.kind == "boolean" {
        let checked = setting.default.as_bool().unwrap_or(false);
        view! {
            <input type="checkbox" id=id.clone() aria-describedby=described data-testid=testid prop:checked=checked on:change=move |event: ev::Event| set(event_target_checked(&event).to_string())/>
        }
        .into_any()
    } else if !setting.values.is_empty() {
        let choices = setting.values.clone();
        view! {
            <select id=id.clone() aria-describedby=described data-testid=testid on:change=move |event: ev::Event| set(event_target_value(&event))>
                {choices.into_iter().map(|choice| {
                    let (selected, text) = (choice == default_text, choice.clone());
                    view! { <option value=choice selected=selected>{text}</option> }
                }).collect_view()}
            </select>
        }
        .into_any()
    } else {
        // A number for an integer (the browser's own range check), text otherwise.
        let integer = setting.kind == "integer";
        view! {
            <input
                type=if integer { "number" } else { "text" }
                step=integer.then_some("1")
                min=setting.minimum.map(|n| n.to_string())
                max=setting.maximum.map(|n| n.to_string())
                id=id.clone()
                aria-describedby=described
                aria-required=setting.required.then_some("true")
                aria-invalid=invalid
                data-testid=testid
                placeholder=hint
                prop:value=start
                on:change=move |event: ev::Event| set(event_target_value(&event))
            />
        }
        .into_any()
    };
    let problem_name = setting.name.clone();
    view! {
        <div class="field">
            <label for=id>{label}</label>
            {control}
            <p class="help" id=help_id>{setting.description}{range}</p>
            {move || is_missing.get().then(|| view! {
                <p class="problem" id=problem_id.clone() data-testid=format!("solution-problem-{problem_name}")>
                    {format!("{problem_name} is required")}
                </p>
            })}
        </div>
    }
}
