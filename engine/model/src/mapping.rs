//! Edge mappings: a JSON document shaped like the target port's input, where a string that is
//! exactly `{{ expr }}` becomes the value of the jq expression `expr` (its JSON type kept),
//! `{{ expr }}` inside a longer string is interpolated as text, and everything else is literal.
//! Expressions read the source port's output as `.` and the message that started the run as
//! `$trigger`, so nothing needs to be carried along hop after hop.
//!
//! A mapping is compiled once per edge and evaluated for every message; compiling reports every
//! bad expression at once, with its place in the document, for the editor to show.

mod budget;
mod direct;

use std::fmt;

use jaq_core::{
    Compiler, Ctx, Vars,
    load::{self, Arena, File, Loader},
};
use jaq_json::{Num, Val};
use serde::Deserialize as _;
use serde_json::{Map, Value};

use self::budget::{Budget, Budgeted, Run};
pub use self::budget::{
    EVALUATION_STACK, MAX_EXPRESSION_LENGTH, MAX_NESTING, MAX_STEPS, THREAD_STACK,
};

/// The variable that holds the message which started the run.
pub const TRIGGER_VARIABLE: &str = "$trigger";

/// Native filters a mapping may not call: `env` would hand a module's environment (and its
/// secrets) to whoever writes flows; `now` has no clock to read in the browser's wasm.
const FORBIDDEN: &[&str] = if cfg!(target_arch = "wasm32") { &["env", "now"] } else { &["env"] };

/// How many values of an expression that gave more than one are counted for its error.
const MAX_COUNTED: usize = 1_000;

const NO_VALUE: &str = "gave no value: add a default such as `// null`";

/// How deep a value an expression gives may nest, as deep as the JSON Weir takes in.
pub const MAX_VALUE_DEPTH: usize = 128;

/// A compiled mapping, ready to evaluate.
pub struct Mapping {
    root: Template,
    /// Whether any expression reads `$trigger`, which otherwise is not converted for jq.
    reads_trigger: bool,
    /// Whether every expression has a shape evaluated without jaq, so the mapping is tried
    /// that way first.
    direct: bool,
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

impl Template {
    /// Whether any expression in the template passes `test`.
    fn any(&self, test: fn(&Expression) -> bool) -> bool {
        match self {
            Template::Literal(_) => false,
            Template::Value(expression) => test(expression),
            Template::Text(pieces) => pieces.iter().any(|piece| match piece {
                Piece::Text(_) => false,
                Piece::Value(expression) => test(expression),
            }),
            Template::Array(items) => items.iter().any(|item| item.any(test)),
            Template::Object(fields) => fields.iter().any(|(_, field)| field.any(test)),
        }
    }
}

/// One compiled jq expression that must give exactly one value: a mapping's `{{ expr }}`, a
/// router's condition, a collect's key.
pub struct Expression {
    source: String,
    /// Where it is written (such as `settings.key` or `containers[1].name`), for its errors.
    path: String,
    filter: jaq_core::Filter<Budgeted>,
    /// Whether the expression may read `$trigger`, which otherwise is not converted for jq (a
    /// whole message converted on every evaluation). Judged from the text, so it is also true
    /// for an expression that only mentions the name.
    reads_trigger: bool,
    /// The expression in a shape evaluated without jaq, when it has one.
    direct: Option<direct::Term>,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

impl Expression {
    /// Compiles `source` (without `{{ }}`); `path` names where it was written (such as
    /// `settings.routes[0].condition`) in its errors, at compile time and when it runs.
    pub fn compile(source: &str, path: &str) -> Result<Self, MappingError> {
        compile_expression(source.trim(), path).map_err(|message| MappingError {
            path: path.to_owned(),
            expression: Some(source.trim().to_owned()),
            message,
        })
    }

    /// Runs the expression over `input` with `$trigger` bound.
    pub fn evaluate(&self, input: &Value, trigger: &Value) -> Result<Value, MappingError> {
        if let Some(value) = self.evaluate_directly(input, trigger) {
            return Ok(value);
        }
        let trigger = trigger_val(self.reads_trigger, trigger);
        budget::within_budget(|budget| one_value(self, &to_val(input), &trigger, budget))
    }

    /// The value without jaq, when the expression has a shape that allows it and gives one.
    fn evaluate_directly(&self, input: &Value, trigger: &Value) -> Option<Value> {
        self.direct.as_ref()?.evaluate(input, trigger)
    }

    /// Whether the expression may read `$trigger` (judged from its text): where it does not,
    /// any value may stand for the trigger, which then need not be read.
    pub fn reads_trigger(&self) -> bool {
        self.reads_trigger
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }
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

/// How much of an expression an error quotes: enough to find it, never a whole long one.
const QUOTED_CHARACTERS: usize = 64;

fn at_expression(expression: Option<&str>) -> String {
    let Some(expression) = expression else { return String::new() };
    match expression.char_indices().nth(QUOTED_CHARACTERS) {
        None => format!("{{{{ {expression} }}}}: "),
        Some(_) => {
            let start: String = expression.chars().take(QUOTED_CHARACTERS - 1).collect();
            format!("{{{{ {start}… }}}}: ")
        }
    }
}

impl Mapping {
    /// Compiles a mapping document, reporting every expression that does not compile.
    pub fn compile(document: &Value) -> Result<Self, Vec<MappingError>> {
        let mut errors = Vec::new();
        let root = compile_template(document, "", &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let reads_trigger = root.any(|expression| expression.reads_trigger);
        let direct = !root.any(|expression| expression.direct.is_none());
        Ok(Self { root, reads_trigger, direct })
    }

    /// Whether any expression may read `$trigger`, as [`Expression::reads_trigger`].
    pub fn reads_trigger(&self) -> bool {
        self.reads_trigger
    }

    /// Shapes `input` (the source port's output) for the target port; `trigger` is the message
    /// that started the run.
    pub fn evaluate(&self, input: &Value, trigger: &Value) -> Result<Value, MappingError> {
        if let Some(value) = self.evaluate_directly(input, trigger) {
            return Ok(value);
        }
        budget::within_budget(|budget| self.evaluate_with_jaq(input, trigger, budget))
    }

    /// The mapping's value without jaq, when every expression has a shape that allows it and
    /// gives a value; otherwise jaq evaluates the whole mapping, as if this had not been tried.
    fn evaluate_directly(&self, input: &Value, trigger: &Value) -> Option<Value> {
        if !self.direct {
            return None;
        }
        fill(&self.root, &mut |expression| expression.evaluate_directly(input, trigger).ok_or(()))
            .ok()
    }

    fn evaluate_with_jaq(
        &self,
        input: &Value,
        trigger: &Value,
        budget: &Budget,
    ) -> Result<Value, MappingError> {
        let input = to_val(input);
        let trigger = trigger_val(self.reads_trigger, trigger);
        fill(&self.root, &mut |expression| one_value(expression, &input, &trigger, budget))
    }

    /// [`Mapping::evaluate`], but giving up after `time` with `None` instead of spending the
    /// whole time budget: a caller on an async worker evaluates briefly in place and moves the
    /// rare slow mapping to a thread where taking its time blocks nobody.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn evaluate_briefly(
        &self,
        input: &Value,
        trigger: &Value,
        time: std::time::Duration,
    ) -> Option<Result<Value, MappingError>> {
        if let Some(value) = self.evaluate_directly(input, trigger) {
            return Some(Ok(value));
        }
        budget::within_time(time, |budget| {
            let evaluated = self.evaluate_with_jaq(input, trigger, budget);
            (!budget.ran_out_of_time()).then_some(evaluated)
        })
    }
}

impl Mapping {
    /// Where the mapping's output cannot fit `schema` (the target port's JSON Schema), judged
    /// without running it: literals of the wrong type, required fields the mapping never sets,
    /// fields the schema does not allow. A `{{ expr }}` could give anything, so it always fits;
    /// the runtime checks its value on every delivery.
    pub fn misfits(&self, schema: &Value) -> Vec<MappingError> {
        let mut problems = Vec::new();
        fit(&self.root, schema, schema, "", 0, &mut problems);
        problems
    }
}

/// How deep [`Mapping::misfits`] follows a schema, so a schema that refers to itself ends.
const MAX_FIT_DEPTH: usize = 32;

fn fit(
    template: &Template,
    root: &Value,
    schema: &Value,
    path: &str,
    depth: usize,
    problems: &mut Vec<MappingError>,
) {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            reference.strip_prefix('#').and_then(|p| root.pointer(p)).unwrap_or(schema)
        }
        None => schema,
    };
    // Alternatives would need every branch tried; the runtime's check covers them.
    if depth > MAX_FIT_DEPTH
        || !schema.is_object()
        || schema.get("anyOf").is_some()
        || schema.get("oneOf").is_some()
    {
        return;
    }
    if let Some(Value::Array(branches)) = schema.get("allOf") {
        for branch in branches {
            fit(template, root, branch, path, depth + 1, problems);
        }
    }
    if let Some(shape) = shape(template) {
        let allowed: Vec<&str> = match schema.get("type") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let fits = allowed.is_empty()
            || allowed.contains(&shape)
            || (shape == "integer" && allowed.contains(&"number"))
            || (shape == "number" && allowed.contains(&"integer") && is_whole(template));
        if !fits {
            let message =
                format!("the target port takes {} here, not {}", allowed.join(" or "), a(shape));
            problems.push(MappingError { path: path.to_owned(), expression: None, message });
            return;
        }
    }
    if let Template::Literal(value) = template {
        let listed = |name| schema.get(name).and_then(Value::as_array).map(Vec::as_slice);
        if let Some(allowed) =
            listed("enum").or_else(|| schema.get("const").map(std::slice::from_ref))
            && !allowed.contains(value)
        {
            let allowed: Vec<String> = allowed.iter().map(ToString::to_string).collect();
            let message = format!("the target port takes only {} here", allowed.join(", "));
            problems.push(MappingError { path: path.to_owned(), expression: None, message });
        }
    }
    match template {
        Template::Object(fields) => {
            let required = schema
                .get("required")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.iter().any(|(key, _)| key == name) {
                    let message = format!("sets no {name}, which the target port requires");
                    problems.push(MappingError {
                        path: path.to_owned(),
                        expression: None,
                        message,
                    });
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (key, field) in fields {
                let field_path =
                    if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(field_schema), _) => {
                        fit(field, root, field_schema, &field_path, depth + 1, problems);
                    }
                    (None, Some(Value::Bool(false))) => problems.push(MappingError {
                        path: field_path,
                        expression: None,
                        message: format!("the target port has no field {key}"),
                    }),
                    (None, Some(other)) => {
                        fit(field, root, other, &field_path, depth + 1, problems);
                    }
                    (None, None) => {}
                }
            }
        }
        Template::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    fit(item, root, item_schema, &format!("{path}[{index}]"), depth + 1, problems);
                }
            }
        }
        _ => {}
    }
}

/// The JSON Schema type a template always gives, when it is known before running it.
fn shape(template: &Template) -> Option<&'static str> {
    Some(match template {
        Template::Value(_) => return None,
        Template::Text(_) => "string",
        Template::Array(_) => "array",
        Template::Object(_) => "object",
        Template::Literal(Value::Null) => "null",
        Template::Literal(Value::Bool(_)) => "boolean",
        Template::Literal(Value::Number(n)) if n.is_i64() || n.is_u64() => "integer",
        Template::Literal(Value::Number(_)) => "number",
        Template::Literal(Value::String(_)) => "string",
        Template::Literal(Value::Array(_)) => "array",
        Template::Literal(Value::Object(_)) => "object",
    })
}

fn is_whole(template: &Template) -> bool {
    matches!(template, Template::Literal(Value::Number(n)) if n.as_f64().is_some_and(|f| f.fract() == 0.0))
}

fn a(shape: &str) -> String {
    match shape {
        "null" => "null".to_owned(),
        "array" | "integer" | "object" => format!("an {shape}"),
        _ => format!("a {shape}"),
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
        match compile_expression(source, path) {
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

/// Compiles `source`, written at `path`.
fn compile_expression(source: &str, path: &str) -> Result<Expression, String> {
    if source.is_empty() {
        return Err("the expression is empty: write a jq expression such as .name".to_owned());
    }
    budget::check_size(source)?;
    budget::on_big_stack(|| compile_checked(source, path))
}

fn compile_checked(source: &str, path: &str) -> Result<Expression, String> {
    let arena = Arena::default();
    let modules = Loader::new(budget::definitions())
        .load(&arena, File { code: source, path: () })
        .map_err(|errors| {
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
        .with_funs(budget::natives(FORBIDDEN))
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
    // It compiled, so it parses.
    let mut parsed = load::parse(source, |p| p.term())
        .ok_or("modules and imports cannot be used in a mapping")?;
    if let Some(call) = budget::find_recursion(&mut parsed) {
        return Err(located(
            source,
            call,
            "a function may not call itself in a mapping: use recurse, while, until or reduce",
        ));
    }
    // The name without its `$`, so that no spelling of the variable is missed.
    let reads_trigger = source.contains(TRIGGER_VARIABLE.trim_start_matches('$'));
    let direct = direct::Term::compile(&parsed);
    Ok(Expression {
        source: source.to_owned(),
        path: path.to_owned(),
        filter,
        reads_trigger,
        direct,
    })
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

/// Fills `template` in, each expression's value given by `value_of`.
fn fill<E>(
    template: &Template,
    value_of: &mut impl FnMut(&Expression) -> Result<Value, E>,
) -> Result<Value, E> {
    match template {
        Template::Literal(value) => Ok(value.clone()),
        Template::Value(expression) => value_of(expression),
        Template::Text(pieces) => {
            let mut text = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(literal) => text.push_str(literal),
                    Piece::Value(expression) => match value_of(expression)? {
                        Value::String(s) => text.push_str(&s),
                        other => text.push_str(&other.to_string()),
                    },
                }
            }
            Ok(Value::String(text))
        }
        Template::Array(items) => items
            .iter()
            .map(|item| fill(item, value_of))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Template::Object(fields) => {
            let mut object = Map::with_capacity(fields.len());
            for (key, field) in fields {
                object.insert(key.clone(), fill(field, value_of)?);
            }
            Ok(Value::Object(object))
        }
    }
}

/// Runs an expression that must give exactly one value: none or several would lose or invent
/// data silently. A budget that ran out fails the expression whatever it gave, since `try`
/// could have caught the error.
fn one_value(
    expression: &Expression,
    input: &Val,
    trigger: &Val,
    budget: &Budget,
) -> Result<Value, MappingError> {
    let fail = |message: String| MappingError {
        path: expression.path.clone(),
        expression: Some(expression.source.clone()),
        message,
    };
    let context = Ctx::<Budgeted>::new(
        Run::new(&expression.filter.lut, budget),
        Vars::new([trigger.clone()]),
    );
    let mut outputs = expression.filter.id.run((context, input.clone()));
    let exceeded = || budget.exceeded().map(&fail);
    let first = match outputs.next() {
        None => return Err(exceeded().unwrap_or_else(|| fail(NO_VALUE.to_owned()))),
        Some(Err(exception)) => {
            return Err(exceeded().unwrap_or_else(|| {
                fail(mask_data(&exception_message(exception), &expression.source))
            }));
        }
        Some(Ok(first)) => first,
    };
    if let Some(second) = outputs.next() {
        // Counting stops with the budget or at a bound: the rest could be endless.
        let rest = outputs.take(MAX_COUNTED).take_while(|_| budget.exceeded().is_none()).count();
        let count = 1 + usize::from(second.is_ok()) + rest;
        return Err(exceeded().unwrap_or_else(|| {
            let count = if rest == MAX_COUNTED {
                format!("more than {MAX_COUNTED}")
            } else {
                count.to_string()
            };
            fail(format!("gave {count} values where one is expected: collect them with [ … ]"))
        }));
    }
    if let Some(exceeded) = exceeded() {
        return Err(exceeded);
    }
    if val_depth(&first) > MAX_VALUE_DEPTH {
        return Err(fail(format!("gave a value nested deeper than {MAX_VALUE_DEPTH} levels")));
    }
    Ok(from_val(&first))
}

/// How deep a value nests, counted without recursion since the value may be deeper than the
/// stack allows; `inside` gives a value's items or fields.
fn depth<'v, T>(value: &'v T, inside: fn(&'v T, &mut Vec<&'v T>)) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 1)];
    let mut children = Vec::new();
    while let Some((value, level)) = pending.pop() {
        deepest = deepest.max(level);
        inside(value, &mut children);
        pending.extend(children.drain(..).map(|child| (child, level + 1)));
    }
    deepest
}

fn val_depth(value: &Val) -> usize {
    depth(value, |value, children| match value {
        Val::Arr(items) => children.extend(items.iter()),
        Val::Obj(fields) => children.extend(fields.values()),
        _ => {}
    })
}

fn json_depth(value: &Value) -> usize {
    depth(value, |value, children| match value {
        Value::Array(items) => children.extend(items.iter()),
        Value::Object(fields) => children.extend(fields.values()),
        _ => {}
    })
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

/// jq quotes the data it failed on (`cannot index "s3cr3t" with "name"`), and the data may be
/// a secret while the error goes to status and logs: every quoted string that the expression
/// itself does not contain becomes `a string`.
fn mask_data(message: &str, expression: &str) -> String {
    let mut masked = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find('"') {
        masked.push_str(&rest[..start]);
        let quoted = &rest[start..];
        let Some(end) = closing_quote(quoted) else {
            // An unterminated quote: hide everything after it rather than guess.
            masked.push_str("a string");
            return masked;
        };
        let literal = &quoted[..=end];
        let content: String = serde_json::from_str(literal).unwrap_or_default();
        if !content.is_empty() && expression.contains(&content) {
            masked.push_str(literal);
        } else {
            masked.push_str("a string");
        }
        rest = &quoted[end + 1..];
    }
    masked.push_str(rest);
    masked
}

/// The index of the quote that closes the JSON string starting at `quoted[0]`.
fn closing_quote(quoted: &str) -> Option<usize> {
    let mut escaped = false;
    for (index, c) in quoted.char_indices().skip(1) {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(index),
            _ => escaped = false,
        }
    }
    None
}

/// `trigger` for jq where it is read, else nothing: converting it is a deep copy.
fn trigger_val(read: bool, trigger: &Value) -> Val {
    if read { to_val(trigger) } else { Val::Null }
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

/// A float as JSON, which has no NaN or infinity: those become null, as jq writes them.
fn json_float(float: f64) -> Value {
    serde_json::Number::from_f64(float).map_or(Value::Null, Value::Number)
}

fn from_num(number: &Num) -> Value {
    match number {
        Num::Int(i) => Value::from(*i as i64),
        Num::Float(f) => json_float(*f),
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
        // Evaluated on the message itself, and by jaq (`as` is outside the common shapes).
        for place in ["{{ $trigger.namespace }}", "{{ $trigger.namespace as $where | $where }}"] {
            let mapped =
                map(json!({ "where": place, "what": "{{ .name }}" }), json!({ "name": "web" }));
            assert_eq!(mapped.unwrap(), json!({ "where": "prod", "what": "web" }), "{place}");
        }
    }

    #[test]
    fn only_a_mapping_that_mentions_the_trigger_reads_it() {
        let reads = |document: Value| Mapping::compile(&document).unwrap().reads_trigger;
        assert!(!reads(json!({ "name": "{{ .name }}", "fixed": "trigger" })));
        assert!(reads(json!(["{{ .a }}", { "b": "at {{ $trigger.at }}" }])));
        let trigger = json!({ "n": 2 });
        for source in [".n + ($trigger | .n)", "[.n, ($trigger | .n)] | add"] {
            let expression = Expression::compile(source, "condition").unwrap();
            assert_eq!(
                expression.evaluate(&json!({ "n": 1 }), &trigger).unwrap(),
                json!(3),
                "{source}"
            );
        }
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
            "image.name: {{ .spec.image.name }}: cannot index a string with \"name\""
        );
        let err = map(json!("{{ .token + 1 }}"), json!({ "token": "s3cr\"et" })).unwrap_err();
        assert_eq!(err.message, "cannot calculate a string + 1");
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
        // A failed parse gives errors without end: the first one is the answer.
        let err = map(json!("{{ \"big\" | tonumber }}"), json!(null)).unwrap_err();
        assert_eq!(err.expression.as_deref(), Some("\"big\" | tonumber"));
        let err = map(json!("{{ 1, (\"big\" | tonumber) }}"), json!(null)).unwrap_err();
        assert!(err.message.starts_with("gave more than 1000 values"), "{err}");
        let err = map(json!("{{ .[] }}"), Value::from(vec![0; 5_000])).unwrap_err();
        assert!(err.message.starts_with("gave more than 1000 values"), "{err}");
        let collected = map(
            json!({ "names": "{{ [.items[].name] }}" }),
            json!({ "items": [{ "name": "a" }, { "name": "b" }] }),
        );
        assert_eq!(collected.unwrap(), json!({ "names": ["a", "b"] }));
    }

    fn compile_error(source: &str) -> String {
        Mapping::compile(&json!(format!("{{{{ {source} }}}}"))).unwrap_err()[0].message.clone()
    }

    #[test]
    fn deep_or_long_expressions_are_refused_before_jaq_reads_them() {
        let deep = format!("{}.{}", "(".repeat(1_000), ")".repeat(1_000));
        assert_eq!(compile_error(&deep), "brackets nest 1000 deep; at most 64 levels are allowed");
        let deeper = format!("{}.{}", "(".repeat(3_000), ")".repeat(3_000));
        assert!(compile_error(&deeper).starts_with("the expression is 6001 bytes long"));
        let deep = format!("\"{}\"", "\\(\"".repeat(1_000));
        assert!(compile_error(&deep).starts_with("brackets nest"), "{}", compile_error(&deep));
        let long = ".a | ".repeat(1_000);
        assert_eq!(
            compile_error(&long),
            "the expression is 4999 bytes long; at most 4000 are allowed"
        );
        let nested = format!("{}.{}", "[".repeat(64), "]".repeat(64));
        assert!(Mapping::compile(&json!(format!("{{{{ {nested} }}}}"))).is_ok());
    }

    #[test]
    fn the_deepest_expressions_within_the_limits_compile_and_run() {
        // Without brackets, operators and keywords nest as deep as the length allows.
        let longest = [
            format!("{}.", ". | ".repeat(999)),
            format!("{}1", "- ".repeat(1_999)),
            format!("{}1", "1 + ".repeat(999)),
            format!("{}.{}", "if . then ".repeat(200), " end".repeat(200)),
            format!("{}.", "try ".repeat(999)),
        ];
        for source in longest {
            assert!(source.len() <= MAX_EXPRESSION_LENGTH, "{}", source.len());
            let mapping = Mapping::compile(&json!(format!("{{{{ {source} }}}}"))).unwrap();
            mapping.evaluate(&json!(1), &json!(null)).unwrap();
        }
    }

    #[test]
    fn functions_that_call_themselves_are_refused() {
        for (source, column) in
            [("def f: [f]; f", 9), ("def f: f; f", 8), ("def f: def g: f; g; f", 15)]
        {
            assert_eq!(
                compile_error(source),
                format!(
                    "a function may not call itself in a mapping: use recurse, while, until or \
                     reduce at character {column} (`f`)"
                )
            );
        }
    }

    #[test]
    fn runaway_evaluations_end_with_an_error() {
        let budget_ran_out = |message: &str| {
            message.starts_with("took more than")
                || message.starts_with("ran longer than")
                || message.starts_with("recursed deeper than")
        };
        for source in [
            "[limit(1e9; repeat(1))]",
            "[repeat(1)] | length",
            "reduce range(1e12) as $x (0; . + $x)",
            "[range(1e12)] | length",
            "last(range(1e12))",
            "[recurse(. + 1)] | length",
            "[limit(1e9; recurse([.]))] | length",
            "try ([limit(1e9; repeat(1))] | length) catch 0",
            "[repeat(try error(1) catch 1)] | length",
            "until(false; .)",
            "[while(true; [.])] | length",
        ] {
            let err = map(json!({ "x": format!("{{{{ {source} }}}}") }), json!(0)).unwrap_err();
            assert_eq!(err.path, "x");
            assert!(budget_ran_out(&err.message), "{source}: {err}");
        }
    }

    #[test]
    fn a_brief_evaluation_gives_up_when_its_time_is_up_and_a_full_one_finishes() {
        let compiled = |source: &str| {
            Mapping::compile(&json!({ "n": format!("{{{{ {source} }}}}") })).unwrap_or_else(|e| {
                panic!("{source}: {e:?}");
            })
        };
        // With no time at all, the first look at the clock ends it; a few steps never look.
        let slow = compiled("[range(0; 5000)] | length");
        assert_eq!(slow.evaluate_briefly(&json!({}), &json!({}), std::time::Duration::ZERO), None);
        assert_eq!(slow.evaluate(&json!({}), &json!({})), Ok(json!({ "n": 5000 })));
        // One evaluated on the message itself, one by jaq in a few steps.
        for quick in [".a", "[.a][0]"] {
            assert_eq!(
                compiled(quick).evaluate_briefly(
                    &json!({ "a": 1 }),
                    &json!({}),
                    std::time::Duration::ZERO
                ),
                Some(Ok(json!({ "n": 1 }))),
                "{quick}"
            );
        }
    }

    #[test]
    fn loops_within_the_budget_run() {
        let mapped = map(
            json!({
                // Well inside the step budget, and far from its second (a loaded machine
                // runs a debug build slowly).
                "sum": "{{ reduce range(20000) as $x (0; . + $x) }}",
                "count": "{{ [limit(10000; repeat(1))] | length }}",
                "last": "{{ last(range(1000)) }}",
                "until": "{{ 0 | until(. >= 5000; . + 1) }}",
                "deep": "{{ reduce range(128) as $x (0; [.]) | [..] | length }}",
            }),
            json!(null),
        );
        assert_eq!(
            mapped.unwrap(),
            json!({ "sum": 199_990_000_u64, "count": 10000, "last": 999, "until": 5000, "deep": 129 })
        );
    }

    #[test]
    fn values_deeper_than_json_may_be_are_refused() {
        let err = map(json!("{{ reduce range(1000) as $x (0; [.]) }}"), json!(null)).unwrap_err();
        assert_eq!(err.message, "gave a value nested deeper than 128 levels");
        let err = map(json!("{{ reduce range(128) as $x (0; [.]) }}"), json!(null)).unwrap_err();
        assert_eq!(err.message, "gave a value nested deeper than 128 levels");
        map(json!("{{ reduce range(127) as $x (0; [.]) }}"), json!(null)).unwrap();
        // Built and dropped inside jaq, a value this deep needs the evaluation's own stack: it
        // gives 1 or runs out of time on a slow machine, but does not overflow.
        let outcome = map(json!("{{ reduce range(150000) as $x (0; [.]) | length }}"), json!(null));
        assert!(outcome.as_ref().map_or_else(|e| e.message.starts_with("ran longer"), |v| v == 1));
    }

    #[test]
    fn numbers_survive_the_round_trip() {
        let mapped = map(
            json!("{{ [.i, .f, .big, (.i / 2)] }}"),
            json!({ "i": 7, "f": 1.5, "big": 9_007_199_254_740_993_i64 }),
        );
        assert_eq!(mapped.unwrap(), json!([7, 1.5, 9_007_199_254_740_993_i64, 3.5]));
    }

    #[test]
    fn misfits_are_found_without_running_the_mapping() {
        let schema = json!({
            "type": "object",
            "required": ["image", "replicas"],
            "additionalProperties": false,
            "properties": {
                "image": { "type": "string" },
                "replicas": { "type": "integer" },
                "ratio": { "type": "number" },
                "policy": { "$ref": "#/$defs/Policy" },
                "tags": { "type": "array", "items": { "type": "string" } }
            },
            "$defs": { "Policy": { "enum": ["Always", "IfNotPresent"] } }
        });
        let misfits = |document: Value| -> Vec<String> {
            Mapping::compile(&document)
                .unwrap()
                .misfits(&schema)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            misfits(
                json!({ "image": "{{ .image }}", "replicas": "{{ .n }}", "ratio": 1, "tags": ["a", "{{ .t }}"] })
            ),
            Vec::<String>::new(),
            "expressions could give anything, and an integer is a number"
        );
        assert_eq!(
            misfits(json!({
                "image": 7,
                "replicas": "three {{ .n }}",
                "policy": "Sometimes",
                "tags": [1],
                "extra": true
            })),
            [
                "image: the target port takes string here, not an integer",
                "replicas: the target port takes integer here, not a string",
                "policy: the target port takes only \"Always\", \"IfNotPresent\" here",
                "tags[0]: the target port takes string here, not an integer",
                "extra: the target port has no field extra",
            ]
        );
        assert_eq!(
            misfits(json!({ "image": "x" })),
            ["sets no replicas, which the target port requires"]
        );
        assert_eq!(misfits(json!("{{ . }}")), Vec::<String>::new());
        assert_eq!(misfits(json!([1])), ["the target port takes object here, not an array"]);
    }
}
