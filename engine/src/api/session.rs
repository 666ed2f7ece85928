//! `/api/session`: signing in to the editor in a cluster. `POST` takes a Kubernetes bearer
//! token, asks the apiserver who it belongs to, and keeps it in an `HttpOnly` cookie, so the
//! browser's requests and event stream carry it without the page ever reading it again; `GET`
//! says who the caller is; `DELETE` signs out. On `weir up` there is nobody to sign in as, and
//! `GET` says so, unless it wants the token of its `--token-file`, which signs in the same way.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use weir_api::{Session, SignIn};

use super::{
    access::{self, Caller, SESSION_COOKIE},
    error::ApiError,
    extract::Body,
    state::Api,
};

/// Who the caller is: `{"user", "groups"}`, or `{"open": true}` when the API has no users;
/// with `namespace`, the engine's own, where requests that name none go, and `webhooks`,
/// where the http module's webhooks are reached, when the engine knows it.
pub async fn get(State(api): State<Api>, caller: Caller) -> Json<Session> {
    let who = caller.who.unwrap_or(Session { open: true, ..Session::default() });
    Json(Session { namespace: api.scope.home, webhooks: api.webhooks, ..who })
}

/// Signs in with a token: answers who it belongs to and sets the session cookie.
pub async fn post(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let signed_in = async {
        let request: SignIn = body.json()?;
        let token = request.token.trim();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::bad_request("field token: not a bearer token"));
        }
        let who = access::sign_in(&api.access, token).await?;
        Ok((Session { namespace: api.scope.home, ..who }, token.to_owned()))
    };
    match signed_in.await {
        Ok((who, token)) => {
            let cookie = cookie(&format!("{SESSION_COOKIE}={token}"), secure(&headers), None);
            (StatusCode::OK, [(header::SET_COOKIE, cookie)], Json(who)).into_response()
        }
        Err(err) => err.into_response(),
    }
}

/// Signs out: the session cookie is dropped.
pub async fn delete(headers: HeaderMap) -> Response {
    let cookie = cookie(&format!("{SESSION_COOKIE}="), secure(&headers), Some(0));
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

/// Whether the browser reached us over HTTPS (directly or through a proxy that says so), so
/// the cookie may be marked `Secure`.
fn secure(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https")
}

fn cookie(pair: &str, secure: bool, max_age: Option<u32>) -> HeaderValue {
    let mut text = format!("{pair}; Path=/api; HttpOnly; SameSite=Strict");
    if secure {
        text.push_str("; Secure");
    }
    if let Some(seconds) = max_age {
        text.push_str(&format!("; Max-Age={seconds}"));
    }
    // The token was checked to be visible ASCII, so the value is a valid header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("weir_session="))
}
