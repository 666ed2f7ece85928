//! Signing in. An engine in a cluster acts for each user with their own Kubernetes token, so
//! before the editor starts it asks who it works as: on `weir up` nobody needs to sign in; in a
//! cluster a signed-out editor shows a form for a token (such as `kubectl create token NAME`
//! prints), which the engine checks with the cluster and keeps in a cookie the page cannot
//! read. The token field is a password field and is cleared once sent.

use leptos::{ev, prelude::*, task::spawn_local};

use crate::{
    App,
    api::{self, Session},
};

/// The editor, once the engine knows who is using it.
#[component]
pub fn Root() -> impl IntoView {
    let session = RwSignal::new(None::<Result<Session, String>>);
    spawn_local(async move {
        session.set(Some(api::session().await.map_err(|err| err.to_string())));
    });
    move || match session.get() {
        None => view! { <p class="empty">"Connecting to the engine…"</p> }.into_any(),
        Some(Err(message)) => {
            view! { <p class="notice failed" data-testid="notice">{message}</p> }.into_any()
        }
        Some(Ok(Session::SignedOut)) => view! { <SignIn session/> }.into_any(),
        Some(Ok(who)) => {
            provide_context(who);
            view! { <App/> }.into_any()
        }
    }
}

/// The sign-in form.
#[component]
fn SignIn(session: RwSignal<Option<Result<Session, String>>>) -> impl IntoView {
    let token = RwSignal::new(String::new());
    let failure = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |event: ev::SubmitEvent| {
        event.prevent_default();
        let text = token.get_untracked().trim().to_owned();
        if text.is_empty() {
            failure.set(Some("paste a Kubernetes token first".to_owned()));
            return;
        }
        busy.set(true);
        spawn_local(async move {
            match api::sign_in(&text).await {
                Ok(who) => {
                    token.set(String::new());
                    session.set(Some(Ok(who)));
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
                <code>"kubectl create token NAME"</code>" prints."
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
    let Some(Session::User(user)) = session else { return None };
    let out = move |_| {
        spawn_local(async move {
            // Signed out or not, a fresh page asks again.
            let _ = api::sign_out().await;
            if let Some(window) = web_sys::window() {
                let _ = window.location().reload();
            }
        });
    };
    Some(view! {
        <span class="who" data-testid="who">{user}</span>
        <button data-testid="sign-out" on:click=out>"Sign out"</button>
    })
}
