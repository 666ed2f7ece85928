//! Which requests the HTTP endpoint answers, so that web pages of other sites cannot drive it.
//!
//! A browser lets any page send "simple" requests anywhere (a form's `POST` with `text/plain`,
//! an image's `GET`) and, through DNS rebinding (a name the page controls, pointed at
//! `127.0.0.1`), read the answers too. So `weir up` answers only requests addressed to it as its
//! own address, `localhost` or a loopback address at its port, and refuses an `Origin` that is
//! not its own. Everywhere, a request a page of another site made (`Sec-Fetch-Site:
//! cross-site`) is refused, but for following a link to the editor; and a request that changes
//! something must carry the header [`REQUEST_HEADER`] and, with a body, say it is JSON or YAML
//! (the MCP endpoint, whose clients know no such header, only the latter, body or not).
//! A page may send neither to another origin without the browser asking the server first (a
//! CORS preflight), and the engine never says yes.

use std::net::{IpAddr, SocketAddr};

use axum::{
    body::HttpBody as _,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode, header, uri::Authority},
    middleware::Next,
    response::{IntoResponse, Response},
};
use weir_api::{FailureKind, REQUEST_HEADER};

use crate::api::error::ApiError;

/// Where the API's MCP endpoint is (`api/mcp.rs`).
const MCP_PATH: &str = "/api/mcp";

/// Which requests an HTTP endpoint answers.
#[derive(Debug, Clone, Copy)]
pub enum Guard {
    /// `weir up`, listening on this address: only requests for it, from its own pages.
    Local(SocketAddr),
    /// `weir engine`, reached through Services and ingresses under names it cannot know:
    /// callers prove who they are with their Kubernetes token, and no page of another site
    /// may make them change something.
    Cluster,
}

/// Answers the request only if `guard` lets it through.
pub async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let has_body = !request.body().is_end_stream();
    let mcp = request.uri().path() == MCP_PATH;
    let (method, headers, authority) =
        (request.method(), request.headers(), request.uri().authority());
    match refusal(guard, method, headers, authority, (has_body, mcp)) {
        Some(refused) => refused.into_response(),
        None => next.run(request).await,
    }
}

/// Why a request must not be answered, if it must not.
fn refusal(
    guard: Guard,
    method: &Method,
    headers: &HeaderMap,
    authority: Option<&Authority>,
    (has_body, mcp): (bool, bool),
) -> Option<ApiError> {
    if let Guard::Local(listen) = guard {
        // A request says where it goes in `Host`, or (absolute-form) in its URI.
        let host = match headers.get(header::HOST).map(|value| value.to_str()) {
            Some(Ok(host)) => host.to_owned(),
            Some(Err(_)) => return Some(forbidden("the Host header is not text".to_owned())),
            None => match authority {
                Some(authority) => authority.as_str().to_owned(),
                None => return Some(forbidden("the request names no Host".to_owned())),
            },
        };
        if !is_local_host(listen, &host) {
            return Some(ApiError::Failed {
                status: StatusCode::MISDIRECTED_REQUEST,
                kind: FailureKind::Misdirected,
                message: format!(
                    "Host {host:?} is not this weir up: it answers only requests for \
                     localhost:{port} or a loopback address at port {port}{also}, so that a web \
                     page under another name cannot reach it",
                    port = listen.port(),
                    also = match listen.ip() {
                        ip if ip.is_loopback() => String::new(),
                        ip if ip.is_unspecified() => " or an address of this machine".to_owned(),
                        _ => format!(" or {listen}"),
                    },
                ),
            });
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            if !is_same_origin(origin, &host) {
                return Some(forbidden(format!(
                    "Origin {origin:?} is not this weir up's own (http://{host}): pages of other \
                     sites may not use it"
                )));
            }
        }
    }
    let site = headers.get("sec-fetch-site").and_then(|value| value.to_str().ok());
    let navigates = matches!(*method, Method::GET | Method::HEAD)
        && headers.get("sec-fetch-mode").is_some_and(|mode| mode == "navigate");
    if site == Some("cross-site") && !navigates {
        return Some(forbidden(
            "a page of another site may not use weir (the browser said Sec-Fetch-Site: cross-site)"
                .to_owned(),
        ));
    }
    if !changes(method) {
        return None;
    }
    // MCP clients know nothing of Weir's header: a change of the MCP endpoint must say it is
    // JSON instead (its DELETE has no body, but is no request a page may send unasked either).
    if !headers.contains_key(REQUEST_HEADER) && !mcp {
        return Some(forbidden(format!(
            "a {method} needs the header X-Weir-Request (any value, such as 1): pages of other \
             sites cannot send it, the editor and scripts can"
        )));
    }
    let content_type = headers.get(header::CONTENT_TYPE).map(|t| t.to_str().unwrap_or("?"));
    let with_body = has_body || (mcp && *method == Method::POST);
    if with_body && !content_type.is_some_and(is_json_or_yaml) {
        return Some(ApiError::Failed {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            kind: FailureKind::BadRequest,
            message: format!(
                "the body of a {method} must say it is JSON or YAML (Content-Type \
                 application/json or application/yaml), not {}",
                content_type.map_or_else(|| "nothing".to_owned(), |t| format!("{t:?}"))
            ),
        });
    }
    None
}

fn forbidden(message: String) -> ApiError {
    ApiError::Failed { status: StatusCode::FORBIDDEN, kind: FailureKind::Forbidden, message }
}

/// Whether `method` may change something: those a page may not send to another origin unasked.
fn changes(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

/// Whether `host` (a `Host` header) names `listen`: `localhost`, a loopback address, the
/// address listened on, or (listening on every address) any address, each at its port. Only
/// names other than `localhost` can be rebound to us by a page, and those are refused.
fn is_local_host(listen: SocketAddr, host: &str) -> bool {
    let Ok(authority) = host.parse::<Authority>() else { return false };
    if authority.as_str().contains('@') {
        return false;
    }
    let name = authority.host().trim_start_matches('[').trim_end_matches(']');
    let ours = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip == listen.ip() || listen.ip().is_unspecified());
    ours && authority.port_u16().unwrap_or(80) == listen.port()
}

/// Whether `origin` (an `Origin` header) is the origin of pages served as `host`.
fn is_same_origin(origin: &str, host: &str) -> bool {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

/// Whether a `Content-Type` says JSON or YAML, parameters (`; charset=utf-8`) aside.
fn is_json_or_yaml(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/json" | "application/yaml" | "application/x-yaml" | "text/yaml"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(address: &str) -> SocketAddr {
        address.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn only_local_names_at_the_port_are_ours() {
        let loopback = listen("127.0.0.1:7420");
        for host in
            ["localhost:7420", "LocalHost:7420", "127.0.0.1:7420", "127.3.4.5:7420", "[::1]:7420"]
        {
            assert!(is_local_host(loopback, host), "{host}");
        }
        for host in [
            "evil.example:7420",
            "localhost",
            "localhost:80",
            "127.0.0.1:7421",
            "192.168.1.5:7420",
            "localhost.evil.example:7420",
            "user@localhost:7420",
            "",
            "localhost:7420/x",
        ] {
            assert!(!is_local_host(loopback, host), "{host}");
        }
        let everywhere = listen("0.0.0.0:7420");
        assert!(is_local_host(everywhere, "192.168.1.5:7420"));
        assert!(is_local_host(everywhere, "[fe80::1]:7420"));
        assert!(!is_local_host(everywhere, "evil.example:7420"));
        let one = listen("192.168.1.5:7420");
        assert!(is_local_host(one, "192.168.1.5:7420"));
        assert!(!is_local_host(one, "192.168.1.6:7420"));
    }

    #[test]
    fn an_origin_is_ours_only_with_the_same_host() {
        assert!(is_same_origin("http://127.0.0.1:7420", "127.0.0.1:7420"));
        assert!(is_same_origin("http://LOCALHOST:7420", "localhost:7420"));
        assert!(!is_same_origin("http://evil.example", "127.0.0.1:7420"));
        assert!(!is_same_origin("null", "127.0.0.1:7420"));
        assert!(!is_same_origin("http://localhost:7421", "localhost:7420"));
    }

    #[test]
    fn json_and_yaml_are_the_only_bodies() {
        for ok in
            ["application/json", "application/json; charset=utf-8", "application/yaml", "text/yaml"]
        {
            assert!(is_json_or_yaml(ok), "{ok}");
        }
        for refused in
            ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
        {
            assert!(!is_json_or_yaml(refused), "{refused}");
        }
    }
}
