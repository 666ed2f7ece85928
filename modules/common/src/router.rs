//! `router`: sends a message to the output of the route whose jq condition holds. Routes are
//! tried in order; the first that holds takes the message, or every one that holds (setting).
//! A message no route takes goes to `default` when that output is on, and is otherwise a clear
//! error naming the input.

use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, ERROR_PORT, Expression, JsonSchema, NodeError, Port, PortName,
    Value,
};

/// Settings of a router.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RouterSettings {
    /// The routes, tried in order; each gets an output port named after it.
    pub routes: Vec<Route>,
    /// `first`: the first route that holds takes the message; `all`: every route that holds
    /// does, in order, and the answer lists their answers by route.
    pub mode: Mode,
    /// Send messages no route takes to the `default` output instead of failing.
    pub default: bool,
    /// Send failures (a condition that cannot be evaluated, a message nothing takes) to the
    /// `error` output as data instead of failing the caller.
    pub error_port: bool,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self { routes: Vec::new(), mode: Mode::First, default: true, error_port: false }
    }
}

/// One route.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The route's output port (snake_case, such as `has_secret`).
    pub name: PortName,
    /// A jq condition over the message, such as `.pullSecret != null`; it holds unless it gives
    /// `false` or `null`. `$trigger` is the message that started the run.
    pub condition: String,
}

/// Which routes take a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The first route that holds.
    First,
    /// Every route that holds.
    All,
}

/// A node of the router component.
#[derive(Debug)]
pub struct Router {
    routes: Vec<(String, Expression)>,
    mode: Mode,
    default: bool,
}

/// Port names a route cannot take.
const RESERVED: [&str; 3] = ["in", "default", ERROR_PORT];

impl Component for Router {
    const NAME: &'static str = "router";
    type Settings = RouterSettings;

    fn describe() -> Description {
        Description {
            label: "Router",
            description: "Sends each message to the route whose jq condition holds.",
            tags: &["switch", "condition", "branch", "if"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(settings: &RouterSettings) -> Vec<Port> {
        let mut ports = vec![Port::input::<Value>("in")];
        ports.extend(settings.routes.iter().map(|r| Port::output::<Value>(r.name.as_str())));
        if settings.default {
            ports.push(Port::output::<Value>("default"));
        }
        if settings.error_port {
            ports.push(Port::error());
        }
        ports
    }

    fn build(settings: RouterSettings) -> Result<Self, NodeError> {
        let mut routes: Vec<(String, Expression)> = Vec::with_capacity(settings.routes.len());
        for (index, route) in settings.routes.iter().enumerate() {
            let name = route.name.as_str();
            if RESERVED.contains(&name) {
                return Err(NodeError::invalid(format!(
                    "settings.routes[{index}].name: {name} is taken by the router's own ports (in, default, error)"
                )));
            }
            if routes.iter().any(|(taken, _)| taken == name) {
                return Err(NodeError::invalid(format!(
                    "settings.routes[{index}].name: route {name} is named twice"
                )));
            }
            let place = format!("settings.routes[{index}].condition");
            let condition = Expression::compile(&route.condition, &place)
                .map_err(|err| NodeError::invalid(err.to_string()))?;
            routes.push((name.to_owned(), condition));
        }
        Ok(Self { routes, mode: settings.mode, default: settings.default })
    }

    async fn handle(&self, cx: &Context, _: &str, message: Value) -> Result<Value, NodeError> {
        let taken = match self.matching(cx, &message) {
            Ok(taken) => taken,
            Err(err) => return cx.fail(err, message).await,
        };
        match (taken.as_slice(), self.mode) {
            ([], _) if self.default => cx.emit("default", message).await,
            ([], _) => {
                let names: Vec<&str> = self.routes.iter().map(|(name, _)| name.as_str()).collect();
                let routes = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
                let err = NodeError::invalid(format!(
                    "router {}: no route took the message on in (routes: {routes}) and there is no default output",
                    cx.node().node
                ));
                cx.fail(err, message).await
            }
            ([first, ..], Mode::First) => cx.emit(first, message).await,
            (all, Mode::All) => {
                let mut answers = serde_json::Map::new();
                for route in all {
                    let answer = cx.emit(route, message.clone()).await?;
                    answers.insert((*route).to_owned(), answer);
                }
                Ok(Value::Object(answers))
            }
        }
    }
}

impl Router {
    /// The routes whose condition holds for `message`, in order (only the first in `first`
    /// mode).
    fn matching(&self, cx: &Context, message: &Value) -> Result<Vec<&str>, NodeError> {
        let mut taken = Vec::new();
        for (name, condition) in &self.routes {
            let holds = cx
                .evaluate(condition, message)
                .map_err(|err| NodeError::invalid(format!("route {name}: {err}")))?;
            if !matches!(holds, Value::Null | Value::Bool(false)) {
                taken.push(name.as_str());
                if self.mode == Mode::First {
                    break;
                }
            }
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use weir_sdk::{ErrorKind, json, testing::Harness};

    use super::*;

    fn settings(mode: &str, default: bool) -> Value {
        json!({
            "routes": [
                { "name": "has_secret", "condition": ".pullSecret != null" },
                { "name": "docker_hub", "condition": ".image | startswith(\"docker.io/\")" },
            ],
            "mode": mode,
            "default": default,
        })
    }

    fn ports_sent(node: &Harness) -> Vec<String> {
        node.emitted().into_iter().map(|e| e.port).collect()
    }

    #[tokio::test]
    async fn the_first_route_that_holds_takes_the_message() {
        let node = Harness::build::<Router>(&settings("first", true)).unwrap();
        node.answer_with(|port, _| Ok(json!(port)));
        let answer = node
            .send("in", json!({ "image": "docker.io/library/nginx", "pullSecret": "hub" }))
            .await
            .unwrap();
        assert_eq!(answer, json!("has_secret"));
        node.send("in", json!({ "image": "docker.io/library/redis", "pullSecret": null }))
            .await
            .unwrap();
        node.send("in", json!({ "image": "ghcr.io/acme/app" })).await.unwrap();
        assert_eq!(ports_sent(&node), ["has_secret", "docker_hub", "default"]);
    }

    #[tokio::test]
    async fn in_all_mode_every_route_that_holds_takes_it() {
        let node = Harness::build::<Router>(&settings("all", false)).unwrap();
        node.answer_with(|port, _| Ok(json!(format!("via {port}"))));
        let answer = node
            .send("in", json!({ "image": "docker.io/library/nginx", "pullSecret": "hub" }))
            .await
            .unwrap();
        assert_eq!(
            answer,
            json!({ "has_secret": "via has_secret", "docker_hub": "via docker_hub" })
        );
    }

    #[tokio::test]
    async fn a_message_nothing_takes_is_an_error_or_goes_to_the_error_port() {
        let node = Harness::build::<Router>(&settings("first", false)).unwrap();
        let err = node.send("in", json!({ "image": "ghcr.io/acme/app" })).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert_eq!(
            err.message(),
            "router router: no route took the message on in (routes: has_secret, docker_hub) and there is no default output"
        );
        let mut with_error_port = settings("first", false);
        with_error_port["errorPort"] = json!(true);
        let node = Harness::build::<Router>(&with_error_port).unwrap();
        node.send("in", json!({ "image": 7 })).await.unwrap();
        let sent = node.emitted();
        assert_eq!(sent[0].port, "error");
        assert_eq!(sent[0].message["input"], json!({ "image": 7 }));
        assert_eq!(sent[0].message["error"]["kind"], "invalid");
        assert_eq!(
            sent[0].message["error"]["message"],
            "route docker_hub: settings.routes[1].condition: {{ .image | startswith(\"docker.io/\") }}: cannot use 7 as string"
        );
    }

    #[test]
    fn bad_routes_are_refused_naming_the_field() {
        let cases = [
            (
                json!([{ "name": "in", "condition": "true" }]),
                "settings.routes[0].name: in is taken by the router's own ports (in, default, error)",
            ),
            (
                json!([{ "name": "a", "condition": "true" }, { "name": "a", "condition": "false" }]),
                "settings.routes[1].name: route a is named twice",
            ),
            (
                json!([{ "name": "a", "condition": ".x | nope" }]),
                "settings.routes[0].condition: {{ .x | nope }}: undefined filter at character 6 (`nope`)",
            ),
        ];
        for (routes, expected) in cases {
            let err = Harness::build::<Router>(&json!({ "routes": routes })).unwrap_err();
            assert_eq!(err.message(), expected);
        }
        let err = Harness::build::<Router>(
            &json!({ "routes": [{ "name": "Has-Secret", "condition": "true" }] }),
        )
        .unwrap_err();
        assert!(err.message().starts_with("settings.routes[0].name: "), "{err}");
    }
}
