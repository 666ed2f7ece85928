//! The QuickJS engine (rquickjs): one runtime per node, reused for every message, so a call
//! costs microseconds. The sandbox is what QuickJS leaves out: there is no file system, network,
//! process or module loader, only the language and its built-ins, plus a `console` whose lines
//! are captured. The built-in prototypes are frozen before the script loads, so a script cannot
//! change how other code behaves. An interrupt handler enforces the time limit and the runtime
//! the memory and stack limits.
//!
//! With rquickjs's `parallel` feature a runtime and its context may move between threads (each
//! `Context::with` takes the runtime's lock and re-reads the stack top, so the stack limit
//! holds on whichever thread calls); a `Persistent` handle may not, so the script's function is
//! kept in the script's own global object, where every call finds it.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use rquickjs::{
    CatchResultExt as _, CaughtError, Context, Ctx, Function, Module, Object, Promise, Runtime,
    Value as JsValue, function::Rest,
};
use serde_json::Value;

use crate::engine::{Engine, Limits, Output, Program, ScriptError, ScriptFailure};

/// The name scripts are compiled under; stack traces show it.
const SCRIPT_NAME: &str = "script.js";
/// The global property the script's function is kept under: read-only and hidden from
/// enumeration, so the script cannot swap it (and could only swap in its own code if it did).
const ENTRY: &str = "__weirEntry";
/// The most stack a script may use.
const STACK_BYTES: usize = 512 * 1024;
/// The most console lines one call keeps, and the longest line.
const MAX_LOG_LINES: usize = 100;
const MAX_LOG_LINE: usize = 1024;

/// QuickJS as the js module's engine.
#[derive(Debug, Default, Clone, Copy)]
pub struct QuickJs;

impl Engine for QuickJs {
    fn load(&self, source: &str, limits: Limits) -> Result<Box<dyn Program>, ScriptError> {
        Ok(Box::new(Loaded::new(source, limits)?))
    }
}

/// When the current call must stop, for the interrupt handler.
type Deadline = Arc<Mutex<Option<Instant>>>;

struct Loaded {
    // Dropped in this order: the context before the runtime that holds it.
    context: Context,
    _runtime: Runtime,
    deadline: Deadline,
    logs: Arc<Mutex<Vec<String>>>,
    limits: Limits,
}

impl Loaded {
    fn new(source: &str, limits: Limits) -> Result<Self, ScriptError> {
        let failed = |message: String| ScriptError::bare(ScriptFailure::Load, message);
        let runtime =
            Runtime::new().map_err(|err| failed(format!("cannot start QuickJS: {err}")))?;
        runtime.set_memory_limit(limits.memory_bytes);
        runtime.set_max_stack_size(STACK_BYTES);
        let deadline: Deadline = Arc::default();
        let watched = Arc::clone(&deadline);
        runtime.set_interrupt_handler(Some(Box::new(move || {
            watched
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some_and(|deadline| Instant::now() >= deadline)
        })));
        let context = Context::full(&runtime)
            .map_err(|err| failed(format!("cannot start QuickJS: {err}")))?;
        let logs: Arc<Mutex<Vec<String>>> = Arc::default();
        *deadline.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Instant::now() + limits.time);
        let loaded = context.with(|ctx| -> Result<(), ScriptError> {
            install_console(&ctx, &logs).map_err(|err| failed(format!("cannot install console: {err}")))?;
            freeze_builtins(&ctx).map_err(|err| failed(format!("cannot freeze the built-ins: {err}")))?;
            let module = Module::declare(ctx.clone(), SCRIPT_NAME, source)
                .catch(&ctx)
                .map_err(|err| caught(ScriptFailure::Load, err))?;
            let (module, evaluated) = module.eval().catch(&ctx).map_err(|err| caught(ScriptFailure::Load, err))?;
            evaluated.finish::<()>().catch(&ctx).map_err(|err| caught(ScriptFailure::Load, err))?;
            let export: JsValue<'_> = module.get("default").catch(&ctx).map_err(|err| caught(ScriptFailure::Load, err))?;
            let function = export.into_function().ok_or_else(|| {
                failed("the script has no default export function: write `export default function (input) { … }`".to_owned())
            })?;
            let keep: Function<'_> = ctx
                .eval(format!("(f) => {{ Object.defineProperty(globalThis, '{ENTRY}', {{ value: f }}); }}"))
                .map_err(|err| failed(format!("cannot keep the function: {err}")))?;
            keep.call::<_, ()>((function,)).catch(&ctx).map_err(|err| caught(ScriptFailure::Load, err))
        });
        *deadline.lock().unwrap_or_else(PoisonError::into_inner) = None;
        loaded.map_err(|mut err| {
            err.logs = take(&logs);
            err
        })?;
        Ok(Self { context, _runtime: runtime, deadline, logs, limits })
    }
}

impl Program for Loaded {
    fn call(&mut self, input: &Value, time: Duration) -> Result<Output, ScriptError> {
        let input = serde_json::to_string(input).map_err(|err| {
            ScriptError::bare(ScriptFailure::Output, format!("the input is not JSON: {err}"))
        })?;
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Instant::now() + time.min(self.limits.time));
        let limits = self.limits;
        let result = self.context.with(|ctx| -> Result<Value, ScriptError> {
            let threw = |err| caught(ScriptFailure::Threw, err);
            let function: Function<'_> = ctx.globals().get(ENTRY).map_err(|err| {
                ScriptError::bare(
                    ScriptFailure::Load,
                    format!("the script's function is gone: {err}"),
                )
            })?;
            let input = ctx.json_parse(input).catch(&ctx).map_err(threw)?;
            let mut output: JsValue<'_> = function.call((input,)).catch(&ctx).map_err(threw)?;
            if let Some(promise) = output.as_promise().cloned() {
                output = settle(&ctx, &promise)?;
            }
            let text = ctx.json_stringify(output).catch(&ctx).map_err(threw)?;
            let Some(text) = text else { return Ok(Value::Null) };
            let text = text
                .to_string()
                .map_err(|err| ScriptError::bare(ScriptFailure::Output, err.to_string()))?;
            if text.len() > limits.output_bytes {
                return Err(ScriptError::bare(
                    ScriptFailure::Output,
                    format!(
                        "the output is {} bytes of JSON, over the limit of {}",
                        text.len(),
                        limits.output_bytes
                    ),
                ));
            }
            serde_json::from_str(&text).map_err(|err| {
                ScriptError::bare(ScriptFailure::Output, format!("the output is not JSON: {err}"))
            })
        });
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let logs = take(&self.logs);
        match result {
            Ok(value) => Ok(Output { value, logs }),
            Err(mut err) => {
                err.logs = logs;
                Err(err)
            }
        }
    }
}

/// Runs the job queue until `promise` settles.
fn settle<'js>(ctx: &Ctx<'js>, promise: &Promise<'js>) -> Result<JsValue<'js>, ScriptError> {
    match promise.finish::<JsValue<'js>>() {
        Err(rquickjs::Error::WouldBlock) => Err(ScriptError::bare(
            ScriptFailure::Threw,
            "the function returned a promise that never settles (it awaits something no script can resolve)".to_owned(),
        )),
        other => other.catch(ctx).map_err(|err| caught(ScriptFailure::Threw, err)),
    }
}

/// A `console` whose `log`, `info`, `warn`, `error` and `debug` lines are kept for the node.
fn install_console(ctx: &Ctx<'_>, logs: &Arc<Mutex<Vec<String>>>) -> rquickjs::Result<()> {
    let console = Object::new(ctx.clone())?;
    for level in ["log", "info", "warn", "error", "debug"] {
        let logs = Arc::clone(logs);
        let write = Function::new(ctx.clone(), move |parts: Rest<JsValue<'_>>| {
            let words: Vec<String> =
                parts.0.into_iter().map(|part| shown(&part.ctx().clone(), &part)).collect();
            let mut line = words.join(" ");
            if line.len() > MAX_LOG_LINE {
                line.truncate(line.floor_char_boundary(MAX_LOG_LINE));
                line.push('…');
            }
            let mut logs = logs.lock().unwrap_or_else(PoisonError::into_inner);
            if logs.len() < MAX_LOG_LINES {
                logs.push(line);
            }
        })?;
        console.set(level, write)?;
    }
    ctx.globals().set("console", console)
}

/// How a console argument reads: strings as they are, everything else as JSON (or its string
/// form when it has no JSON).
fn shown<'js>(ctx: &Ctx<'js>, value: &JsValue<'js>) -> String {
    if let Some(text) = value.as_string().and_then(|s| s.to_string().ok()) {
        return text;
    }
    match ctx.json_stringify(value.clone()) {
        Ok(Some(text)) => text.to_string().unwrap_or_default(),
        _ => format!("{value:?}"),
    }
}

/// Freezes the built-in prototypes and constructors, so a script cannot change how other code
/// (or its own next call) behaves by polluting them.
fn freeze_builtins(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    ctx.eval::<(), _>(
        r#"(() => {
            const names = ["Object", "Array", "Function", "String", "Number", "Boolean", "Symbol",
                "Promise", "RegExp", "Date", "Error", "TypeError", "RangeError", "SyntaxError",
                "ReferenceError", "Map", "Set", "WeakMap", "WeakSet", "JSON", "Math", "BigInt"];
            for (const name of names) {
                const value = globalThis[name];
                if (value === undefined) continue;
                Object.freeze(value);
                if (value.prototype) Object.freeze(value.prototype);
            }
        })()"#,
    )
}

fn take(logs: &Mutex<Vec<String>>) -> Vec<String> {
    std::mem::take(&mut *logs.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Turns what a script threw into a [`ScriptError`], telling limits apart from the script's
/// own failures.
fn caught(kind: ScriptFailure, error: CaughtError<'_>) -> ScriptError {
    match error {
        CaughtError::Exception(exception) => {
            let message = exception.message().unwrap_or_default();
            let stack = exception.stack().filter(|s| !s.trim().is_empty());
            let name: Option<String> = exception.as_object().get("name").ok();
            let (line, column) = stack.as_deref().and_then(position).unzip();
            // Only QuickJS's own errors stand for a limit: a script's error whose message
            // mentions one is still the script's.
            let limit = name.as_deref().and_then(|name| limit_kind(name, &message));
            let kind = limit.unwrap_or(kind);
            let message = match limit {
                Some(limit) => limit_message(limit, &message),
                None => message,
            };
            ScriptError {
                kind,
                name,
                message,
                stack,
                line,
                column: column.flatten(),
                logs: Vec::new(),
            }
        }
        CaughtError::Value(value) => {
            let ctx = value.ctx().clone();
            // As JSON, so a thrown string reads as one.
            let shown = match ctx.json_stringify(value.clone()) {
                Ok(Some(text)) => text.to_string().unwrap_or_default(),
                _ => shown(&ctx, &value),
            };
            ScriptError::bare(kind, format!("the script threw {shown}, which is not an Error"))
        }
        CaughtError::Error(rquickjs::Error::Exception) => {
            ScriptError::bare(kind, "the script failed".to_owned())
        }
        CaughtError::Error(rquickjs::Error::Allocation) => ScriptError::bare(
            ScriptFailure::Memory,
            limit_message(ScriptFailure::Memory, OUT_OF_MEMORY),
        ),
        CaughtError::Error(err) => ScriptError::bare(kind, err.to_string()),
    }
}

const OUT_OF_MEMORY: &str = "out of memory";

/// The limit an error QuickJS threw stands for: its own messages, exactly, on the kinds of
/// error it throws them as.
fn limit_kind(name: &str, message: &str) -> Option<ScriptFailure> {
    match (name, message) {
        ("InternalError", "interrupted") => Some(ScriptFailure::Timeout),
        ("InternalError", OUT_OF_MEMORY | "stack overflow")
        | ("RangeError", "Maximum call stack size exceeded") => Some(ScriptFailure::Memory),
        _ => None,
    }
}

/// What a limit that was hit says, for QuickJS's `message`.
fn limit_message(limit: ScriptFailure, message: &str) -> String {
    match limit {
        ScriptFailure::Timeout => "the script ran past its time limit".to_owned(),
        ScriptFailure::Memory if message != OUT_OF_MEMORY => {
            "the script overflowed its stack (recursion too deep?)".to_owned()
        }
        _ => "the script ran out of memory (over its memory limit)".to_owned(),
    }
}

/// The line and column of the first frame in the script, from a stack trace such as
/// `    at main (script.js:3:11)`.
fn position(stack: &str) -> Option<(u32, Option<u32>)> {
    let at = stack.find(&format!("{SCRIPT_NAME}:"))? + SCRIPT_NAME.len() + 1;
    let rest = &stack[at..];
    let digits = |text: &str| -> String { text.chars().take_while(char::is_ascii_digit).collect() };
    let line = digits(rest);
    let column = rest[line.len()..].strip_prefix(':').map(digits).and_then(|c| c.parse().ok());
    Some((line.parse().ok()?, column))
}
