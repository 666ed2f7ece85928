//! The solutions gallery: ready-made flows from `solutions/`, each with its description and a
//! form of its settings (the same ones `weir solution install NAME --set key=value` takes).
//! Installing applies its manifests through the engine and opens the flow.

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
    spawn_local(async move {
        match api::solutions().await {
            Ok(found) => solutions.set(found),
            Err(err) => editor.fail(err),
        }
    });
    view! {
        <section class="gallery">
            <h2>"Solutions"</h2>
            <ul>
                <For
                    each=move || solutions.get()
                    key=|solution| solution.name.clone()
                    children=move |solution| {
                        let name = solution.name.clone();
                        let pick = name.clone();
                        view! {
                            <li
                                class="solution"
                                class:open=move || chosen.get().as_deref() == Some(name.as_str())
                                data-testid=format!("solution-{}", solution.name)
                                title=solution.description
                                on:click=move |_| chosen.set(Some(pick.clone()))
                            >
                                {solution.title.clone()}
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
    // Each setting as text, the way --set takes it; empty keeps the default.
    let values = RwSignal::new(BTreeMap::<String, String>::new());
    let name = solution.name.clone();
    let install = move |_| {
        let name = name.clone();
        let given: BTreeMap<String, String> =
            values.get_untracked().into_iter().filter(|(_, text)| !text.is_empty()).collect();
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
            {solution.settings.into_iter().map(|setting| view! { <SettingField setting values/> }).collect_view()}
            <button data-testid="install" on:click=install>"Install"</button>
        </div>
    }
}

/// One setting: a check box for a boolean, a choice for an enum, text otherwise (a list is
/// comma-separated), the default shown until something is typed.
#[component]
fn SettingField(
    setting: SolutionSetting,
    values: RwSignal<BTreeMap<String, String>>,
) -> impl IntoView {
    let name = setting.name.clone();
    let default_text = match &setting.default {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let set = move |text: String| {
        let name = name.clone();
        values.update(|values| {
            values.insert(name, text);
        });
    };
    let testid = format!("solution-setting-{}", setting.name);
    let label = format!("{}{}", setting.name, if setting.required { " *" } else { "" });
    let control = if setting.kind == "boolean" {
        let checked = setting.default.as_bool().unwrap_or(false);
        view! {
            <input type="checkbox" data-testid=testid prop:checked=checked on:change=move |event: ev::Event| set(event_target_checked(&event).to_string())/>
        }
        .into_any()
    } else if !setting.values.is_empty() {
        let choices = setting.values.clone();
        view! {
            <select data-testid=testid on:change=move |event: ev::Event| set(event_target_value(&event))>
                {choices.into_iter().map(|choice| {
                    let (selected, text) = (choice == default_text, choice.clone());
                    view! { <option value=choice selected=selected>{text}</option> }
                }).collect_view()}
            </select>
        }
        .into_any()
    } else {
        view! {
            <input type="text" data-testid=testid placeholder=default_text on:change=move |event: ev::Event| set(event_target_value(&event))/>
        }
        .into_any()
    };
    view! {
        <div class="field">
            <label>{label}</label>
            {control}
            <p class="help">{setting.description}</p>
        </div>
    }
}
