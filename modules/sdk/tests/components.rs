//! The SDK as a node author meets it: two small components, built and driven through the
//! harness, checked for compliance, and listed in a module catalogue.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir_sdk::{
    Component, Context, Description, ErrorKind, Failure, JsonSchema, Module, NodeError, Port,
    Value, json,
    testing::{Emitted, Harness, check_compliance},
};

/// Greets people.
struct Greeter {
    prefix: String,
    error_port: bool,
}

/// How to greet.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
struct GreeterSettings {
    /// The word in front of the name.
    prefix: String,
    /// Send failures to the `error` port instead of failing the call.
    error_port: bool,
}

impl Default for GreeterSettings {
    fn default() -> Self {
        Self { prefix: "Hello".to_owned(), error_port: false }
    }
}

#[derive(Deserialize, JsonSchema)]
struct Person {
    name: String,
}

#[derive(Serialize, JsonSchema)]
struct Greeting {
    text: String,
}

impl Component for Greeter {
    const NAME: &'static str = "greeter";
    type Settings = GreeterSettings;

    fn describe() -> Description {
        Description {
            label: "Greeter",
            description: "Greets a person by name.",
            tags: &["demo"],
            trigger: false,
            permissions: &[],
        }
    }

    fn ports(settings: &GreeterSettings) -> Vec<Port> {
        Port::with_error(
            vec![Port::input::<Person>("in"), Port::output::<Greeting>("out")],
            settings.error_port,
        )
    }

    fn build(settings: GreeterSettings) -> Result<Self, NodeError> {
        if settings.prefix.trim().is_empty() {
            return Err(NodeError::invalid("settings.prefix: must not be empty"));
        }
        Ok(Self { prefix: settings.prefix, error_port: settings.error_port })
    }

    async fn handle(&self, cx: &Context, _port: &str, message: Value) -> Result<Value, NodeError> {
        let person: Person = serde_json::from_value(message.clone())
            .map_err(|err| NodeError::invalid(format!("in: {err}")))?;
        if person.name.is_empty() {
            let error = NodeError::invalid("in.name: must not be empty");
            if self.error_port {
                return cx.emit("error", Failure::new(&error, message)).await;
            }
            return Err(error);
        }
        cx.emit("out", Greeting { text: format!("{} {}", self.prefix, person.name) }).await
    }
}

/// Starts a few runs, then waits to be stopped.
struct Counter {
    runs: u32,
}

/// How many runs to start.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
struct CounterSettings {
    /// Runs started before the counter waits.
    runs: u32,
}

impl Default for CounterSettings {
    fn default() -> Self {
        Self { runs: 3 }
    }
}

impl Component for Counter {
    const NAME: &'static str = "counter";
    type Settings = CounterSettings;

    fn describe() -> Description {
        Description {
            label: "Counter",
            description: "Counts.",
            trigger: true,
            ..Description::default()
        }
    }

    fn ports(_: &CounterSettings) -> Vec<Port> {
        vec![Port::output::<u32>("out")]
    }

    fn build(settings: CounterSettings) -> Result<Self, NodeError> {
        Ok(Self { runs: settings.runs })
    }

    async fn handle(&self, _: &Context, port: &str, _: Value) -> Result<Value, NodeError> {
        Err(NodeError::internal(format!("counter has no inputs, got {port}")))
    }

    async fn run(&self, cx: &Context) -> Result<(), NodeError> {
        for tick in 0..self.runs {
            let run = cx.start_run(json!({ "tick": tick }));
            run.emit("out", tick).await?;
        }
        cx.cancelled().await;
        Ok(())
    }
}

/// Breaks the naming rule on purpose.
struct BadlyNamed;

impl Component for BadlyNamed {
    const NAME: &'static str = "BadlyNamed";
    type Settings = CounterSettings;

    fn describe() -> Description {
        Description { label: "Bad", ..Description::default() }
    }

    fn ports(_: &CounterSettings) -> Vec<Port> {
        vec![Port::input::<Value>("in")]
    }

    fn build(_: CounterSettings) -> Result<Self, NodeError> {
        Ok(Self)
    }

    async fn handle(&self, _: &Context, _: &str, message: Value) -> Result<Value, NodeError> {
        Ok(message)
    }
}

#[tokio::test]
async fn components_follow_the_node_rules() {
    check_compliance::<Greeter>().await.unwrap();
    check_compliance::<Counter>().await.unwrap();
    let err = check_compliance::<BadlyNamed>().await.unwrap_err();
    assert!(
        err.to_string().starts_with("component BadlyNamed: the name must use lowercase"),
        "{err}"
    );
}

#[tokio::test]
async fn emit_returns_what_downstream_returned() {
    let harness = Harness::build::<Greeter>(&json!({ "prefix": "Hi" })).unwrap();
    harness.answer_with(|port, message| {
        Ok(json!({ "seen": port, "len": message["text"].as_str().map_or(0, str::len) }))
    });
    let reply = harness.send("in", json!({ "name": "Ada" })).await.unwrap();
    assert_eq!(reply, json!({ "seen": "out", "len": 6 }));
    assert_eq!(
        harness.emitted(),
        vec![Emitted { port: "out".to_owned(), message: json!({ "text": "Hi Ada" }) }]
    );
}

#[tokio::test]
async fn downstream_errors_come_back_with_their_kind() {
    let harness = Harness::build::<Greeter>(&Value::Null).unwrap();
    harness.answer_with(|_, _| Err(NodeError::transient("registry answered 429")));
    let err = harness.send("in", json!({ "name": "Ada" })).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
}

#[tokio::test]
async fn bad_settings_fail_the_build_naming_the_field() {
    let err = Harness::build::<Greeter>(&json!({ "prefix": 7 })).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.message().starts_with("settings.prefix: invalid type: integer `7`"), "{err}");
    let err = Harness::build::<Greeter>(&json!({ "prefx": "Hi" })).unwrap_err();
    assert!(err.message().starts_with("settings.prefx: unknown field `prefx`, expected"), "{err}");
    let err = Harness::build::<Greeter>(&json!({ "prefix": " " })).unwrap_err();
    assert_eq!(err.message(), "settings.prefix: must not be empty");
}

#[tokio::test]
async fn failures_go_to_the_error_port_when_it_is_there() {
    let without = Harness::build::<Greeter>(&Value::Null).unwrap();
    let err = without.send("in", json!({ "name": "" })).await.unwrap_err();
    assert_eq!(err.message(), "in.name: must not be empty");
    assert!(without.emitted().is_empty());

    let with = Harness::build::<Greeter>(&json!({ "errorPort": true })).unwrap();
    with.send("in", json!({ "name": "" })).await.unwrap();
    let emitted = with.emitted();
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].port, "error");
    assert_eq!(
        emitted[0].message["error"],
        json!({ "kind": "invalid", "message": "in.name: must not be empty" })
    );
    assert_eq!(emitted[0].message["input"], json!({ "name": "" }));
}

#[tokio::test]
async fn unknown_ports_are_refused() {
    let harness = Harness::build::<Greeter>(&Value::Null).unwrap();
    let err = harness.send("input", json!({ "name": "Ada" })).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(err.message(), "greeter has no input port \"input\"; its inputs are in");
    let err = harness.context().emit("sideways", json!(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(
        err.message().contains("emitted on \"sideways\", which is not one of its outputs (out)"),
        "{err}"
    );
}

#[tokio::test]
async fn a_trigger_starts_runs_and_stops_when_cancelled() {
    let harness = std::sync::Arc::new(Harness::build::<Counter>(&json!({ "runs": 2 })).unwrap());
    let running = tokio::spawn({
        let harness = std::sync::Arc::clone(&harness);
        async move { harness.run().await }
    });
    while harness.emitted().len() < 2 {
        tokio::task::yield_now().await;
    }
    assert!(!running.is_finished(), "the trigger returned before it was stopped");
    harness.cancel();
    tokio::time::timeout(Duration::from_secs(10), running).await.unwrap().unwrap().unwrap();
    let messages: Vec<Value> = harness.emitted().into_iter().map(|e| e.message).collect();
    assert_eq!(messages, vec![json!(0), json!(1)]);
    let err = harness.context().emit("out", 9).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
}

#[test]
fn the_catalogue_carries_schemas_and_help() {
    let module = Module::new("demo", "1.2.3").component::<Greeter>().component::<Counter>();
    let catalogue = module.catalogue().unwrap();
    assert_eq!(catalogue.version, "1.2.3");
    let names: Vec<&str> = catalogue.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["greeter", "counter"]);
    let greeter = &catalogue.components[0];
    assert_eq!(greeter.label, "Greeter");
    assert!(!greeter.trigger && catalogue.components[1].trigger);
    let schema = greeter.settings_schema.as_ref().unwrap();
    assert_eq!(schema["properties"]["prefix"]["description"], "The word in front of the name.");
    assert_eq!(schema["properties"]["prefix"]["default"], "Hello");
    let ports: Vec<(&str, weir_model::Direction)> =
        greeter.ports.iter().map(|p| (p.name.as_str(), p.direction)).collect();
    assert_eq!(ports, [("in", weir_model::Direction::In), ("out", weir_model::Direction::Out)]);
    assert!(module.find("counter").is_some() && module.find("nope").is_none());
}
