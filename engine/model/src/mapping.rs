//! Edge mappings: a JSON document shaped like the target port's input, where a string that is
//! exactly `{{ expr }}` becomes the value of the jq expression `expr` (its JSON type kept),
//! `{{ expr }}` inside a longer string is interpolated as text, and everything else is literal.
//! Expressions read the source port's output as `.` and the message that started the run as
//! `$trigger`, so nothing needs to be carried along hop after hop.
//!
//! A mapping is compiled once per edge and evaluated for every message; compiling reports every
//! bad expression at once, with its place in the document, for the editor to show.

use std::fmt;

use jaq_core::{
    Compiler, Ctx, Vars,
    data::JustLut,
    load::{self, Arena, File, Loader},
};
use jaq_json::{Num, Val};
use serde::Deserialize as _;
use serde_json::{Map, Value};

/// The variable that holds the message which started the run.
pub const TRIGGER_VARIABLE: &str = "$trigger";

/// Native filters a mapping may not call: `env` would hand a module's environment (and its
/// secrets) to whoever writes flows; `now` has no clock to read in the browser's wasm.
const FORBIDDEN: &[&str] = if cfg!(target_arch = "wasm32") { &["env", "now"] } else { &["env"] };

type Data = JustLut<Val>;

/// A compiled mapping, ready to evaluate.
pub struct Mapping {
    root: Template,
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping").finish_non_exhaustive()
    }
}

enum Template {
    Literal(Value),
    Value(Expression),
    Text(Vec<Piece>),
    Array(Vec<Template>),
    Object(Vec<(String, Template)>),
}

enum Piece {
    Text(String),
    Value(Expression),
}

struct Expression {
    source: String,
    filter: jaq_core::Filter<Data>,
}

/// A mapping that does not compile or cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}{message}", at_path(path), at_expression(expression.as_deref()))]
pub struct MappingError {
    /// Where in the mapping document, such as `image` or `containers[1].name`; empty for the
    /// document itself.
    pub path: String,
    /// The expression concerned, when there is one.
    pub expression: Option<String>,
    /// What is wrong.
    pub message: String,
}

fn at_path(path: &str) -> String {
    if path.is_empty() { String::new() } else { format!("{path}: ") }
}

fn at_expression(expression: Option<&str>) -> String {
    expression.map(|e| format!("{{{{ {e} }}}}: ")).unwrap_or_default()
}

impl Mapping {
    /// Compiles a mapping document, reporting every expression that does not compile.
    pub fn compile(document: &Value) -> Result<Self, Vec<MappingError>> {
        let mut errors = Vec::new();
        let root = compile_template(document, "", &mut errors);
        if errors.is_empty() { Ok(Self { root }) } else { Err(errors) }
    }

    /// Shapes `input` (the source port's output) for the target port; `trigger` is the message
    /// that started the run.
    pub fn evaluate(&self, input: &Value, trigger: &Value) -> Result<Value, MappingError> {
        let input = to_val(input);
        let trigger = to_val(trigger);
        evaluate_template(&self.root, "", &input, &trigger)
    }
}

fn compile_template(value: &Value, path: &str, errors: &mut Vec<MappingError>) -> Template {
    match value {
        Value::String(text) => compile_text(text, path, errors),
        Value::Array(items) => Template::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| compile_template(item, &format!("{path}[{i}]"), errors))
                .collect(),
        ),
        Value::Object(fields) => Template::Object(
            fields
                .iter()
                .map(|(key, field)| {
                    let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    (key.clone(), compile_template(field, &path, errors))
                })
                .collect(),
        ),
        other => Template::Literal(other.clone()),
    }
}

/// Splits a string into text and `{{ … }}` expressions.
fn compile_text(text: &str, path: &str, errors: &mut Vec<MappingError>) -> Template {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            errors.push(MappingError {
                path: path.to_owned(),
                expression: None,
                message: format!(
                    "{{{{ at character {} is never closed with }}}}",
                    text.len() - rest.len() + start
                ),
            });
            return Template::Literal(Value::String(text.to_owned()));
        };
        let source = after[..end].trim();
        match compile_expression(source) {
            Ok(expression) => pieces.push(Piece::Value(expression)),
            Err(message) => errors.push(MappingError {
                path: path.to_owned(),
                expression: Some(source.to_owned()),
                message,
            }),
        }
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    match pieces.len() {
        0 => Template::Literal(Value::String(String::new())),
        1 => match pieces.pop() {
            Some(Piece::Value(expression)) => Template::Value(expression),
            Some(Piece::Text(text)) => Template::Literal(Value::String(text)),
            None => unreachable!("one piece"),
        },
        _ => Template::Text(pieces),
    }
}

fn compile_expression(source: &str) -> Result<Expression, String> {
    if source.is_empty() {
        return Err("the expression is empty: write a jq expression such as .name".to_owned());
    }
    let arena = Arena::default();
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let funs = jaq_core::funs::<Data>()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|(name, _, _)| !FORBIDDEN.contains(name));
    let modules =
        Loader::new(defs).load(&arena, File { code: source, path: () }).map_err(|errors| {
            let messages: Vec<String> = errors
                .into_iter()
                .flat_map(|(_, error)| match error {
                    load::Error::Lex(errors) => errors
                        .into_iter()
                        .map(|(expected, found)| {
                            located(source, found, &format!("expected {}", expected.as_str()))
                        })
                        .collect::<Vec<_>>(),
                    load::Error::Parse(errors) => errors
                        .into_iter()
                        .map(|(expected, found)| {
                            located(source, found, &format!("expected {}", expected.as_str()))
                        })
                        .collect(),
                    load::Error::Io(errors) => errors.into_iter().map(|(_, err)| err).collect(),
                })
                .collect();
            messages.join("; ")
        })?;
    let filter = Compiler::default()
        .with_funs(funs)
        .with_global_vars([TRIGGER_VARIABLE])
        .compile(modules)
        .map_err(|errors| {
            let messages: Vec<String> = errors
                .into_iter()
                .flat_map(|(_, undefined)| undefined)
                .map(|(name, kind)| located(source, name, &format!("undefined {}", kind.as_str())))
                .collect();
            messages.join("; ")
        })?;
    Ok(Expression { source: source.to_owned(), filter })
}

/// A message about a slice of `source`, with the character it starts at.
fn located(source: &str, part: &str, message: &str) -> String {
    let offset = load::span(source, part).start;
    let column = source[..offset].chars().count() + 1;
    if part.is_empty() {
        format!("{message} at the end")
    } else {
        let first: String = part.chars().take(12).collect();
        format!("{message} at character {column} (`{first}`)")
    }
}

fn evaluate_template(
    template: &Template,
    path: &str,
    input: &Val,
    trigger: &Val,
) -> Result<Value, MappingError> {
    match template {
        Template::Literal(value) => Ok(value.clone()),
        Template::Value(expression) => one_value(expression, path, input, trigger),
        Template::Text(pieces) => {
            let mut text = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(literal) => text.push_str(literal),
                    Piece::Value(expression) => {
                        match one_value(expression, path, input, trigger)? {
                            Value::String(s) => text.push_str(&s),
                            other => text.push_str(&other.to_string()),
                        }
                    }
                }
            }
            Ok(Value::String(text))
        }
        Template::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| evaluate_template(item, &format!("{path}[{i}]"), input, trigger))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Template::Object(fields) => {
            let mut object = Map::with_capacity(fields.len());
            for (key, field) in fields {
                let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                object.insert(key.clone(), evaluate_template(field, &path, input, trigger)?);
            }
            Ok(Value::Object(object))
        }
    }
}

/// Runs an expression that must give exactly one value: none or several would lose or invent
/// data silently.
fn one_value(
    expression: &Expression,
    path: &str,
    input: &Val,
    trigger: &Val,
) -> Result<Value, MappingError> {
    let fail = |message: String| MappingError {
        path: path.to_owned(),
        expression: Some(expression.source.clone()),
        message,
    };
    let context = Ctx::<Data>::new(&expression.filter.lut, Vars::new([trigger.clone()]));
    let mut outputs = expression.filter.id.run((context, input.clone()));
    let first = match outputs.next() {
        None => return Err(fail("gave no value: add a default such as `// null`".to_owned())),
        Some(result) => result.map_err(|exception| fail(exception_message(exception)))?,
    };
    if let Some(second) = outputs.next() {
        let extra = 1 + usize::from(second.is_ok()) + outputs.count();
        return Err(fail(format!(
            "gave {extra} values where one is expected: collect them with [ … ]"
        )));
    }
    Ok(from_val(&first))
}

fn exception_message(exception: jaq_core::Exn<'_, Val>) -> String {
    match exception.get_err() {
        Ok(error) => error.to_string(),
        Err(exception) => match exception.get_halt() {
            Ok(code) => format!("halted with exit code {code}"),
            Err(_) => "failed inside jq".to_owned(),
        },
    }
}

fn to_val(value: &Value) -> Val {
    Val::deserialize(value).unwrap_or(Val::Null)
}

fn from_val(value: &Val) -> Value {
    match value {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => from_num(n),
        Val::TStr(bytes) | Val::BStr(bytes) => {
            Value::String(String::from_utf8_lossy(bytes).into_owned())
        }
        Val::Arr(items) => Value::Array(items.iter().map(from_val).collect()),
        Val::Obj(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| {
                    let key = match key {
                        Val::TStr(bytes) | Val::BStr(bytes) => {
                            String::from_utf8_lossy(bytes).into_owned()
                        }
                        other => other.to_string(),
                    };
                    (key, from_val(value))
                })
                .collect(),
        ),
    }
}

fn from_num(number: &Num) -> Value {
    match number {
        Num::Int(i) => Value::from(*i as i64),
        // JSON has no NaN or infinity.
        Num::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        other => other.to_string().parse::<serde_json::Number>().map_or(Value::Null, Value::Number),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // Owned arguments read better with json! literals at the call sites.
    #[allow(clippy::needless_pass_by_value)]
    fn map(document: Value, input: Value) -> Result<Value, MappingError> {
        Mapping::compile(&document)
            .map_err(|mut e| e.remove(0))?
            .evaluate(&input, &json!({ "namespace": "prod" }))
    }

    #[test]
    fn whole_expressions_keep_their_type() {
        let input = json!({ "replicas": 3, "labels": { "app": "web" }, "ready": true, "tags": ["a", "b"], "gone": null });
        let mapped = map(
            json!({
                "count": "{{ .replicas }}",
                "labels": "{{.labels}}",
                "ready": "{{ .ready }}",
                "tags": "{{ .tags }}",
                "missing": "{{ .gone }}",
                "doubled": "{{ .replicas * 2 }}",
            }),
            input,
        )
        .unwrap();
        assert_eq!(
            mapped,
            json!({ "count": 3, "labels": { "app": "web" }, "ready": true, "tags": ["a", "b"], "missing": null, "doubled": 6 })
        );
    }

    #[test]
    fn text_interpolates_and_literals_stay() {
        let mapped = map(
            json!({
                "greeting": "Hello {{ .name }}, you have {{ .count }} items {{ .tags }}",
                "fixed": "no expressions here",
                "number": 42,
                "nested": [{ "image": "{{ .image }}:{{ .tag }}" }, false],
            }),
            json!({ "name": "Ada", "count": 2, "tags": ["x"], "image": "nginx", "tag": "1.27" }),
        )
        .unwrap();
        assert_eq!(
            mapped,
            json!({
                "greeting": "Hello Ada, you have 2 items [\"x\"]",
                "fixed": "no expressions here",
                "number": 42,
                "nested": [{ "image": "nginx:1.27" }, false],
            })
        );
    }

    #[test]
    fn the_trigger_is_a_variable_not_a_nested_context() {
        let mapped = map(
            json!({ "where": "{{ $trigger.namespace }}", "what": "{{ .name }}" }),
            json!({ "name": "web" }),
        );
        assert_eq!(mapped.unwrap(), json!({ "where": "prod", "what": "web" }));
    }

    #[test]
    fn the_standard_library_is_there() {
        let mapped = map(
            json!("{{ [.items[] | select(.ok) | .name | ascii_upcase] | join(\",\") }}"),
            json!({ "items": [{ "name": "a", "ok": true }, { "name": "b", "ok": false }, { "name": "c", "ok": true }] }),
        );
        assert_eq!(mapped.unwrap(), json!("A,C"));
    }

    #[test]
    fn compile_errors_name_the_field_and_the_expression() {
        let errors = Mapping::compile(&json!({
            "a": "{{ .name | nosuch }}",
            "b": ["ok", "{{ .x[ }}"],
            "c": "{{ .unclosed",
            "d": "{{ }}",
            "e": "{{ env.HOME }}",
        }))
        .unwrap_err();
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 5, "{messages:#?}");
        assert!(
            messages[0].starts_with("a: {{ .name | nosuch }}: undefined filter at character 9"),
            "{}",
            messages[0]
        );
        assert!(messages[1].starts_with("b[1]: {{ .x[ }}: expected"), "{}", messages[1]);
        assert_eq!(messages[2], "c: {{ at character 0 is never closed with }}");
        assert!(messages[3].starts_with("d: {{  }}: the expression is empty"), "{}", messages[3]);
        assert!(messages[4].starts_with("e: {{ env.HOME }}: undefined filter"), "{}", messages[4]);
    }

    #[test]
    fn runtime_errors_name_the_field() {
        let err = map(
            json!({ "image": { "name": "{{ .spec.image.name }}" } }),
            json!({ "spec": { "image": "nginx" } }),
        )
        .unwrap_err();
        assert_eq!(err.path, "image.name");
        assert_eq!(
            err.to_string(),
            "image.name: {{ .spec.image.name }}: cannot index \"nginx\" with \"name\""
        );
        let err = map(json!("{{ error(\"boom\") }}"), json!(null)).unwrap_err();
        assert_eq!(err.message, "\"boom\"");
    }

    #[test]
    fn an_expression_must_give_exactly_one_value() {
        let err = map(
            json!({ "names": "{{ .items[].name }}" }),
            json!({ "items": [{ "name": "a" }, { "name": "b" }] }),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "names: {{ .items[].name }}: gave 2 values where one is expected: collect them with [ … ]"
        );
        let err = map(json!({ "x": "{{ empty }}" }), json!(null)).unwrap_err();
        assert!(err.message.starts_with("gave no value"), "{err}");
        let collected = map(
            json!({ "names": "{{ [.items[].name] }}" }),
            json!({ "items": [{ "name": "a" }, { "name": "b" }] }),
        );
        assert_eq!(collected.unwrap(), json!({ "names": ["a", "b"] }));
    }

    #[test]
    fn numbers_survive_the_round_trip() {
        let mapped = map(
            json!("{{ [.i, .f, .big, (.i / 2)] }}"),
            json!({ "i": 7, "f": 1.5, "big": 9_007_199_254_740_993_i64 }),
        );
        assert_eq!(mapped.unwrap(), json!([7, 1.5, 9_007_199_254_740_993_i64, 3.5]));
    }
}
