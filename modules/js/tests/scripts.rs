//! `js_eval` on friendly and hostile scripts: each hostile one gets a clear error naming what
//! it did, and the node (and every other node) keeps serving.

use weir_js::js_eval::JsEval;
use weir_sdk::{ErrorKind, NodeError, Value, json, testing::Harness};

fn node(script: &str) -> Harness {
    Harness::build::<JsEval>(&json!({ "script": script, "timeout": "200ms", "memoryMib": 16 }))
        .unwrap_or_else(|err| panic!("the script does not build: {err}"))
}

async fn run(node: &Harness, input: Value) -> Result<Value, NodeError> {
    node.answer_with(|_, output| Ok(output.clone()));
    node.send("in", input).await
}

#[tokio::test]
async fn a_function_transforms_its_input_and_logs_reach_the_debug_stream() {
    let node = node(
        "export default function (input) {\n  console.log('got', input.n, { deep: true });\n  return { n: input.n + 1 };\n}\n",
    );
    assert_eq!(run(&node, json!({ "n": 1 })).await.unwrap(), json!({ "n": 2 }));
    assert_eq!(node.emitted()[0].port, "response");
    assert_eq!(node.logged(), ["got 1 {\"deep\":true}"]);
}

#[tokio::test]
async fn async_functions_are_awaited_and_the_runtime_is_reused() {
    let node = node(
        "let calls = 0;\nexport default async (input) => {\n  await null;\n  calls += 1;\n  return { doubled: input * 2, calls };\n};\n",
    );
    assert_eq!(run(&node, json!(21)).await.unwrap(), json!({ "doubled": 42, "calls": 1 }));
    assert_eq!(run(&node, json!(1)).await.unwrap(), json!({ "doubled": 2, "calls": 2 }));
}

#[tokio::test]
async fn a_thrown_error_names_its_line_and_column() {
    let node = node("export default (input) => {\n  return JSON.parse(input.raw);\n};\n");
    let err = run(&node, json!({ "raw": "{oops" })).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(
        err.message(),
        "js-eval script: line 2, column 21: Expected property name or '}' in JSON at position 1 (line 1 column 2)"
    );
}

#[tokio::test]
async fn a_huge_thrown_message_is_cut_to_the_bound() {
    use weir_sdk::error::{CUT_MARKER, MAX_MESSAGE_BYTES};

    let node = node("export default () => {\n  throw new Error('x'.repeat(4000000));\n};\n");
    let err = run(&node, json!({})).await.unwrap_err();
    let message = err.message();
    assert!(message.starts_with("js-eval script: line 2, column "), "{message:.80}");
    assert!(message.len() <= MAX_MESSAGE_BYTES, "{} bytes", message.len());
    assert!(message.contains(CUT_MARKER) && message.ends_with(" bytes)"), "{}", &message[4000..]);
}

#[tokio::test]
async fn failures_go_to_the_error_port_as_data_when_it_is_on() {
    let node = Harness::build::<JsEval>(&json!({
        "script": "export default (input) => {\n  throw new RangeError('bad replicas: ' + input.replicas);\n};\n",
        "errorPort": true
    }))
    .unwrap();
    run(&node, json!({ "replicas": -1 })).await.unwrap();
    let sent = &node.emitted()[0];
    assert_eq!(sent.port, "error");
    assert_eq!(sent.message["input"], json!({ "replicas": -1 }));
    let error = &sent.message["error"];
    assert_eq!(
        (error["kind"].clone(), error["name"].clone(), error["line"].clone()),
        (json!("invalid"), json!("RangeError"), json!(2))
    );
    assert_eq!(error["message"], "bad replicas: -1");
    assert!(error["stack"].as_str().is_some_and(|s| s.contains("script.js:2")), "{error}");
}

#[tokio::test]
async fn hostile_scripts_get_clear_errors_and_the_node_keeps_serving() {
    let node = node(
        r#"export default function (input) {
  switch (input.attack) {
    case "loop": while (true) {}
    case "memory": { const hoard = []; while (true) hoard.push(new Array(100000).fill(7)); }
    case "recursion": { const down = (n) => down(n + 1) + 1; return down(0); }
    case "output": return "x".repeat(5 * 1024 * 1024);
    case "pollute": Object.prototype.isAdmin = true; return "polluted";
    case "words": throw new Error("the job was interrupted: out of memory, stack overflow");
    case "string": throw "oops";
    case "object": throw { code: 7 };
    case "hang": return new Promise(() => {});
    case "escape": return [typeof require, typeof process, typeof fetch, typeof std, typeof os, typeof XMLHttpRequest];
    default: return { fine: true, admin: ({}).isAdmin ?? false };
  }
}
"#,
    );
    let cases = [
        ("loop", ErrorKind::Transient, "the script ran past its time limit"),
        ("memory", ErrorKind::Invalid, "the script ran out of memory (over its memory limit)"),
        ("recursion", ErrorKind::Invalid, "the script overflowed its stack (recursion too deep?)"),
        (
            "output",
            ErrorKind::Invalid,
            "the output is 5242882 bytes of JSON, over the limit of 4194304",
        ),
        ("pollute", ErrorKind::Invalid, "object is not extensible"),
        // The script's own error, though it names the limits.
        ("words", ErrorKind::Invalid, "the job was interrupted: out of memory, stack overflow"),
        ("string", ErrorKind::Invalid, "the script threw \"oops\", which is not an Error"),
        ("object", ErrorKind::Invalid, "the script threw {\"code\":7}, which is not an Error"),
        ("hang", ErrorKind::Invalid, "the function returned a promise that never settles"),
    ];
    for (attack, kind, says) in cases {
        let err = run(&node, json!({ "attack": attack })).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{attack}: {err}");
        assert!(err.message().contains(says), "{attack}: {err}");
        assert_eq!(
            run(&node, json!({})).await.unwrap(),
            json!({ "fine": true, "admin": false }),
            "after {attack}"
        );
    }
    let reachable = run(&node, json!({ "attack": "escape" })).await.unwrap();
    assert_eq!(
        reachable,
        json!(["undefined", "undefined", "undefined", "undefined", "undefined", "undefined"])
    );
}

#[tokio::test]
async fn limits_hold_for_a_script_that_starts_on_the_calling_task() {
    // Each attack is a fresh node's first message, so it starts where short scripts run: on
    // the calling task, under the inline budget, before any thread is involved.
    let attacks = [
        ("while (true) {}", ErrorKind::Transient, "the script ran past its time limit"),
        (
            "return 'x'.repeat(64 * 1024 * 1024);",
            ErrorKind::Invalid,
            "the script ran out of memory (over its memory limit)",
        ),
        (
            "const down = (n) => down(n + 1) + 1; return down(0);",
            ErrorKind::Invalid,
            "the script overflowed its stack (recursion too deep?)",
        ),
    ];
    for (attack, kind, says) in attacks {
        let node = node(&format!(
            "export default (input) => {{\n  if (input.attack) {{ {attack} }}\n  return {{ fine: true }};\n}};\n"
        ));
        let err = run(&node, json!({ "attack": true })).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{attack}: {err}");
        assert!(err.message().contains(says), "{attack}: {err}");
        assert_eq!(run(&node, json!({})).await.unwrap(), json!({ "fine": true }), "after {attack}");
    }
}

#[tokio::test]
async fn a_script_longer_than_the_inline_budget_answers_within_its_limit() {
    // 20 ms of work: far past the inline budget, well within the 200 ms limit. Its first call
    // is stopped at the budget and called again off the task with the whole limit.
    let node = node(
        "let calls = 0;\nexport default (input) => {\n  const start = Date.now();\n  while (Date.now() - start < 20) {}\n  calls += 1;\n  return { n: input.n, calls };\n};\n",
    );
    assert_eq!(run(&node, json!({ "n": 1 })).await.unwrap(), json!({ "n": 1, "calls": 1 }));
    assert_eq!(run(&node, json!({ "n": 2 })).await.unwrap(), json!({ "n": 2, "calls": 2 }));
}

#[test]
fn scripts_that_do_not_load_fail_the_build_naming_the_place() {
    let err = Harness::build::<JsEval>(
        &json!({ "script": "export default function (input) {\n  return input +;\n}\n" }),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.message().starts_with("settings.script: line 2, column "), "{err}");
    let err = Harness::build::<JsEval>(&json!({ "script": "export const x = 1;" })).unwrap_err();
    assert_eq!(
        err.message(),
        "settings.script: the script has no default export function: write `export default function (input) { … }`"
    );
    let err = Harness::build::<JsEval>(
        &json!({ "script": "import * as std from 'std';\nexport default (x) => x;" }),
    )
    .unwrap_err();
    assert!(err.message().starts_with("settings.script: "), "{err}");
    let err = Harness::build::<JsEval>(&json!({ "memoryMib": 2 })).unwrap_err();
    assert_eq!(err.message(), "settings.memoryMib: 2 is not between 4 and 1024");
}

#[test]
fn the_examples_give_the_ports_their_schemas() {
    let node = Harness::build::<JsEval>(&json!({
        "exampleInput": { "image": "nginx", "replicas": 2 },
        "exampleOutput": [{ "target": "registry.local/nginx" }],
    }))
    .unwrap();
    let ports: Vec<(String, Value)> =
        node.ports().iter().map(|p| (p.name().to_owned(), p.schema().clone())).collect();
    assert_eq!(
        ports[0].1,
        json!({ "type": "object", "properties": { "image": { "type": "string" }, "replicas": { "type": "integer" } } })
    );
    assert_eq!(
        ports[1].1,
        json!({ "type": "array", "items": { "type": "object", "properties": { "target": { "type": "string" } } } })
    );
}
