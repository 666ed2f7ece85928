//! How each message reaches a node's loaded script. JavaScript runs until it returns, so a call
//! holds whichever thread makes it. A script that has answered every message within
//! [`INLINE_BUDGET`] runs on the calling task, with the budget as its time limit: no hand-over
//! to another thread and back, and an async worker held for no longer than that. A call that
//! runs past the budget is stopped there, and the same message is called again on a blocking
//! thread with the whole limit, on a freshly loaded runtime (the stopped call may have changed
//! the script's globals half-way); the script's messages go that way from then on.
//!
//! A node has one runtime, called one message at a time in the order they came. A call that
//! hit a limit leaves the runtime in doubt, so the next message gets a freshly loaded one; the
//! script's globals last as long as its runtime.

use std::{sync::Arc, time::Duration};

use serde_json::Value;
use tokio::sync::Mutex;

use crate::engine::{Engine, Limits, Output, Program, ScriptError, ScriptFailure};

/// The longest a message runs on the calling task. Past about ten times the cost of the hand-over
/// to a thread and back (about 50 µs), running in place saves under a tenth of the call, while
/// the async worker it holds serves nothing else meanwhile.
pub const INLINE_BUDGET: Duration = Duration::from_micros(500);

/// A node's script, loaded.
pub struct Script {
    engine: Arc<dyn Engine>,
    source: Arc<str>,
    limits: Limits,
    state: Mutex<State>,
}

struct State {
    /// The loaded runtime, unless a limit spent it (or a cancelled call still holds it).
    program: Option<Box<dyn Program>>,
    /// Whether the script has run past the inline budget.
    long: bool,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Script {
    /// Loads `source` on the calling thread; a script that does not load is the error.
    pub fn load(
        engine: Arc<dyn Engine>,
        source: String,
        limits: Limits,
    ) -> Result<Self, ScriptError> {
        let program = engine.load(&source, limits)?;
        let state = State { program: Some(program), long: false };
        Ok(Self { engine, source: source.into(), limits, state: Mutex::new(state) })
    }

    /// Calls the script with `input`.
    pub async fn call(&self, input: Value) -> Result<Output, ScriptError> {
        let mut state = self.state.lock().await;
        if !state.long
            && self.limits.time > INLINE_BUDGET
            && let Some(mut program) = state.program.take()
        {
            match program.call(&input, INLINE_BUDGET) {
                // Over the budget, not the limit: what it logged is dropped with the runtime,
                // and the call below logs again.
                Err(err) if err.kind == ScriptFailure::Timeout => state.long = true,
                result => {
                    if !spent(&result) {
                        state.program = Some(program);
                    }
                    return result;
                }
            }
        }
        let (engine, source, limits) =
            (Arc::clone(&self.engine), Arc::clone(&self.source), self.limits);
        let program = state.program.take();
        let (program, result) = tokio::task::spawn_blocking(move || {
            let mut program = match program {
                Some(program) => program,
                None => match engine.load(&source, limits) {
                    Ok(program) => program,
                    Err(err) => return (None, Err(err)),
                },
            };
            let result = program.call(&input, limits.time);
            (if spent(&result) { None } else { Some(program) }, result)
        })
        .await
        .map_err(|err| {
            ScriptError::bare(ScriptFailure::Load, format!("the script's thread failed: {err}"))
        })?;
        state.program = program;
        result
    }
}

/// Whether a call hit a limit, which leaves its runtime in doubt.
fn spent(result: &Result<Output, ScriptError>) -> bool {
    matches!(result, Err(err) if matches!(err.kind, ScriptFailure::Timeout | ScriptFailure::Memory))
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Mutex as Shared, PoisonError,
            atomic::{AtomicUsize, Ordering},
        },
        thread::ThreadId,
    };

    use serde_json::json;

    use super::*;

    /// The calls a fake script got: on which thread, with how long to run.
    type Calls = Arc<Shared<Vec<(ThreadId, Duration)>>>;

    /// An engine whose scripts need `needs` to answer (their input, unchanged).
    #[derive(Default)]
    struct Fake {
        needs: Duration,
        loads: AtomicUsize,
        calls: Calls,
    }

    struct FakeProgram {
        needs: Duration,
        calls: Calls,
    }

    impl Engine for Fake {
        fn load(&self, _: &str, _: Limits) -> Result<Box<dyn Program>, ScriptError> {
            self.loads.fetch_add(1, Ordering::Relaxed);
            Ok(Box::new(FakeProgram { needs: self.needs, calls: Arc::clone(&self.calls) }))
        }
    }

    impl Program for FakeProgram {
        fn call(&mut self, input: &Value, time: Duration) -> Result<Output, ScriptError> {
            let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
            calls.push((std::thread::current().id(), time));
            if time < self.needs {
                return Err(ScriptError::bare(
                    ScriptFailure::Timeout,
                    "ran past its time".to_owned(),
                ));
            }
            Ok(Output { value: input.clone(), logs: Vec::new() })
        }
    }

    const LIMITS: Limits =
        Limits { time: Duration::from_secs(1), memory_bytes: 1 << 20, output_bytes: 1 << 20 };

    fn calls(engine: &Fake) -> Vec<(ThreadId, Duration)> {
        engine.calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    #[tokio::test]
    async fn a_short_script_answers_on_the_calling_task_under_the_budget() {
        let engine = Arc::new(Fake::default());
        let script = Script::load(engine.clone(), String::new(), LIMITS).unwrap();
        for n in 0..3 {
            assert_eq!(script.call(json!(n)).await.unwrap().value, json!(n));
        }
        let here = std::thread::current().id();
        assert_eq!(calls(&engine), vec![(here, INLINE_BUDGET); 3]);
        assert_eq!(engine.loads.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_script_past_the_budget_runs_again_on_a_fresh_runtime_off_the_task_and_stays_there() {
        let engine = Arc::new(Fake { needs: Duration::from_millis(20), ..Fake::default() });
        let script = Script::load(engine.clone(), String::new(), LIMITS).unwrap();
        assert_eq!(script.call(json!(1)).await.unwrap().value, json!(1));
        assert_eq!(script.call(json!(2)).await.unwrap().value, json!(2));
        let here = std::thread::current().id();
        let calls = calls(&engine);
        assert_eq!(calls[0], (here, INLINE_BUDGET));
        assert_eq!(calls.len(), 3);
        for (thread, time) in &calls[1..] {
            assert_ne!(*thread, here);
            assert_eq!(*time, LIMITS.time);
        }
        // Built, then loaded afresh after the stopped call; kept from then on.
        assert_eq!(engine.loads.load(Ordering::Relaxed), 2);
    }
}
