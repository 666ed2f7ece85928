//! The examples of the module's guide (GUIDE.md, shown in docs/nodes.md) do what it says: each
//! mapping compiles, and the request it shapes reaches a server of the test's own as the
//! service expects it.

use std::collections::BTreeMap;

use axum::{Router, body::Bytes, http::HeaderMap, routing::post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use weir_http::request::Request;
use weir_model::mapping::Mapping;
use weir_sdk::testing::Harness;

/// The guide's examples: the heading above each YAML block, and the block.
fn examples() -> Vec<(String, Value)> {
    let guide = include_str!("../GUIDE.md");
    let mut examples = Vec::new();
    let mut heading = String::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        if let Some(title) = line.strip_prefix("#### ") {
            title.clone_into(&mut heading);
        }
        if line == "```yaml" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            let value = serde_yaml_ng::from_str(&block.join("\n"))
                .unwrap_or_else(|err| panic!("{heading}: the example is not YAML: {err}"));
            examples.push((heading.clone(), value));
        }
    }
    examples
}

/// What a Deployment update says.
fn update() -> Value {
    json!({ "name": "web", "namespace": "prod", "image": "nginx:1.27" })
}

#[tokio::test]
async fn each_request_example_reaches_its_service_as_it_expects() {
    let app = Router::new().route(
        "/{*service}",
        post(|headers: HeaderMap, body: Bytes| async move {
            let content_type = headers.get("content-type").map(|v| v.to_str().unwrap_or_default().to_owned());
            axum::Json(json!({ "contentType": content_type, "got": serde_json::from_slice::<Value>(&body).ok() }))
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let examples = examples();
    let titles: Vec<&str> = examples.iter().map(|(title, _)| title.as_str()).collect();
    assert_eq!(
        titles,
        ["Slack incoming webhook", "Microsoft Teams", "Any JSON API", "Answering a webhook"]
    );
    for (title, example) in &examples[..3] {
        let mapping =
            Mapping::compile(&example["mapping"]).unwrap_or_else(|err| panic!("{title}: {err:?}"));
        let message = mapping.evaluate(&update(), &update()).unwrap();
        // The Secret references resolved to the test's own server.
        let mut settings = example["settings"].clone();
        let url = format!("http://{server}/{}", title.to_lowercase().replace(' ', "-"));
        if settings.get("secretUrl").is_some() {
            settings["secretUrl"] = json!(url);
        } else {
            settings["url"] = json!(url);
        }
        if settings["auth"]["token"].is_object() {
            settings["auth"]["token"] = json!("events-token");
        }
        let node =
            Harness::build::<Request>(&settings).unwrap_or_else(|err| panic!("{title}: {err}"));
        node.answer_with(|_, answer| Ok(answer.clone()));
        let answer = node.send("in", message).await.unwrap_or_else(|err| panic!("{title}: {err}"));
        assert_eq!(answer["body"]["contentType"], "application/json", "{title}");
        let got = &answer["body"]["got"];
        match title.as_str() {
            "Slack incoming webhook" => {
                assert_eq!(got["text"], "web in prod now runs nginx:1.27");
                assert_eq!(
                    got["blocks"][0]["text"]["text"],
                    "*web* in `prod` now runs `nginx:1.27`"
                );
            }
            "Microsoft Teams" => {
                let card = &got["attachments"][0];
                assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
                assert_eq!(card["content"]["type"], "AdaptiveCard");
                assert_eq!(card["content"]["body"][0]["text"], "web deployed");
            }
            _ => assert_eq!(
                got,
                &json!({ "service": "web", "namespace": "prod", "image": "nginx:1.27", "tags": ["weir", "prod"] })
            ),
        }
    }
}

#[test]
fn the_respond_example_shapes_the_answer() {
    let examples = examples();
    let (_, example) = examples.last().unwrap();
    let mapping = Mapping::compile(&example["mapping"]).unwrap();
    let delivery = json!({
        "headers": { "x-github-delivery": "72d3162e" },
        "body": { "repository": { "full_name": "acme/web" } },
    });
    let reply = mapping.evaluate(&json!({}), &delivery).unwrap();
    let expected: BTreeMap<&str, Value> = BTreeMap::from([
        ("status", json!(202)),
        ("headers", json!({ "x-delivery": "72d3162e" })),
        ("body", json!({ "queued": "acme/web" })),
    ]);
    assert_eq!(reply, serde_json::to_value(expected).unwrap());
}
