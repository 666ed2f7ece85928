//! Signing in. An engine in a cluster acts for each user with their own Kubernetes token, so
//! before the editor starts it asks who it works as: on `weir up` nobody needs to sign in
//! (unless it was started with `--token-file`); in a cluster a signed-out editor shows a form
//! for a token (such as `kubectl create token NAME` prints), which the engine checks with the
//! cluster (or against its token file) and keeps in a cookie the page cannot read. The token
//! field is a password field and is cleared once sent.

use leptos::{ev, prelude::*, task::spawn_local};

use weir_model::names::NameRule;

use crate::{
    App,
    api::{self, Session, Started},
};

/// The engine's own namespace: where the editor works unless the user picks another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home(pub String);

/// Where webhooks are reached (ending in `/hooks/`), when the engine knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhooks(pub Option<String>);

/// The namespace the editor works in: the one the user chose, else the engine's own.
pub fn working_namespace() -> String {
    let chosen = api::namespace();
    if chosen.is_empty() {
        use_context::<Home>().map(|Home(home)| home).unwrap_or_default()
    } else {
        chosen
    }
}

/// The editor, once the engine knows who is using it.
#[component]
pub fn Root() -> impl IntoView {
    let session = RwSignal::new(None::<Result<Started, String>>);
    spawn_local(async move {
        session.set(Some(api::session().await.map_err(|err| err.to_string())));
    });
    move || match session.get() {
        None => view! { <p class="empty">"Connecting to the engine…"</p> }.into_any(),
        Some(Err(message)) => {
            view! { <p class="notice failed" data-testid="notice">{message}</p> }.into_any()
        }
        Some(Ok(Started { session: Session::SignedOut, .. })) => {
            view! { <SignIn session/> }.into_any()
        }
        Some(Ok(Started { session: who, home, webhooks })) => {
            provide_context(who);
            provide_context(Home(home));
            provide_context(Webhooks(webhooks));
            view! { <App/> }.into_any()
        }
    }
}

/// The sign-in form.
#[component]
fn SignIn(session: RwSignal<Option<Result<Started, String>>>) -> impl IntoView {
    let token = RwSignal::new(String::new());
    let failure = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |event: ev::SubmitEvent| {
        event.prevent_default();
        let text = token.get_untracked().trim().to_owned();
        if text.is_empty() {
            failure.set(Some("paste a token first".to_owned()));
            return;
        }
        busy.set(true);
        spawn_local(async move {
            match api::sign_in(&text).await {
                Ok(signed_in) => {
                    token.set(String::new());
                    session.set(Some(Ok(signed_in)));
                }
                Err(err) => failure.set(Some(err.to_string())),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="sign-in" data-testid="sign-in" on:submit=submit>
            <h1>"Weir"</h1>
            <p>
                "This engine acts with your own Kubernetes identity, so your RBAC decides which \
                 flows you may see and change. Sign in with a bearer token, such as "
                <code>"kubectl create token NAME"</code>" prints (for "
                <code>"weir up --token-file FILE"</code>", the token in that file)."
            </p>
            <label>
                "Token"
                <input
                    type="password"
                    autocomplete="off"
                    data-testid="token"
                    prop:value=move || token.get()
                    on:input=move |event| token.set(event_target_value(&event))
                />
            </label>
            <button type="submit" data-testid="sign-in-button" disabled=move || busy.get()>"Sign in"</button>
            {move || failure.get().map(|message| view! { <pre class="notice failed" data-testid="sign-in-error">{message}</pre> })}
        </form>
    }
}

/// Who the editor works as, with a way out when signed in.
#[component]
pub fn Who() -> impl IntoView {
    let session = use_context::<Session>();
    let user = match session {
        Some(Session::User(user)) => user,
        // `weir up`: nobody signs in, and nodes act on clusters with the user's own kubeconfig.
        Some(Session::Open) => {
            return Some(
                view! {
                    <span
                        class="who"
                        data-testid="who"
                        title="Nodes reach Kubernetes with your own kubeconfig: you are their identity"
                    >
                        "Nodes act as your kubeconfig"
                    </span>
                }
                .into_any(),
            );
        }
        _ => return None,
    };
    let out = move |_| {
        spawn_local(async move {
            // Signed out or not, a fresh page asks again.
            let _ = api::sign_out().await;
            reload();
        });
    };
    Some(
        view! {
            <span class="who" data-testid="who">{user}</span>
            <button data-testid="sign-out" on:click=out>"Sign out"</button>
        }
        .into_any(),
    )
}

/// The namespace the editor works in: the engine's own unless the user picks another, which is
/// kept across reloads. A new choice reloads the editor, so nothing of the last namespace stays.
#[component]
pub fn NamespacePicker() -> impl IntoView {
    let home = use_context::<Home>().map(|Home(home)| home).unwrap_or_default();
    let chosen = api::namespace();
    let text = RwSignal::new(chosen.clone());
    let wrong = RwSignal::new(None::<String>);
    let pick = move |_| {
        let value = text.get_untracked().trim().to_owned();
        if !value.is_empty() && !NameRule::DnsLabel.accepts(&value) {
            wrong.set(Some(format!(
                "{value:?} is not a namespace: use {}",
                NameRule::DnsLabel.describe()
            )));
            return;
        }
        wrong.set(None);
        if value != chosen {
            api::choose_namespace(&value);
            reload();
        }
    };
    view! {
        <label class="namespace" title=move || wrong.get().unwrap_or_default()>
            "Namespace"
            <input
                data-testid="namespace"
                class:wrong=move || wrong.get().is_some()
                placeholder=home
                prop:value=move || text.get()
                on:input=move |event| text.set(event_target_value(&event))
                on:change=pick
            />
        </label>
    }
}

/// Starts the editor afresh.
fn reload() {
    if let Some(window) = web_sys::window() {
        let _ = window.location().reload();
    }
}
