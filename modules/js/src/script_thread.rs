//! A loaded script on a thread of its own. JavaScript runs until it returns, and an engine's
//! runtime stays on the thread that made it, so each js node keeps one thread that loads the
//! script once and then calls it for each message, one at a time. A call that hit a limit
//! leaves the runtime in doubt, so the next message gets a freshly loaded one.

use std::sync::{Arc, mpsc};

use serde_json::Value;
use tokio::sync::oneshot;

use crate::engine::{Engine, Limits, Output, ScriptError, ScriptFailure};

type Reply = oneshot::Sender<Result<Output, ScriptError>>;

/// The handle to one script's thread; the thread ends when the handle drops.
#[derive(Debug)]
pub struct ScriptThread {
    requests: mpsc::Sender<(Value, Reply)>,
}

impl ScriptThread {
    /// Starts a thread and loads `source` on it; a script that does not load is the error.
    pub fn start(
        engine: Arc<dyn Engine>,
        source: String,
        limits: Limits,
    ) -> Result<Self, ScriptError> {
        let (requests, incoming) = mpsc::channel::<(Value, Reply)>();
        let (loaded_tx, loaded_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("weir-js".to_owned())
            .spawn(move || {
                let mut program = match engine.load(&source, limits) {
                    Ok(program) => {
                        let _ = loaded_tx.send(Ok(()));
                        Some(program)
                    }
                    Err(err) => {
                        let _ = loaded_tx.send(Err(err));
                        return;
                    }
                };
                for (input, reply) in incoming {
                    let loaded = match program.take() {
                        Some(loaded) => Ok(loaded),
                        None => engine.load(&source, limits),
                    };
                    let result = loaded.and_then(|mut loaded| {
                        let result = loaded.call(&input);
                        let spent = matches!(&result, Err(err) if matches!(err.kind, ScriptFailure::Timeout | ScriptFailure::Memory));
                        if !spent {
                            program = Some(loaded);
                        }
                        result
                    });
                    let _ = reply.send(result);
                }
            })
            .map_err(|err| bare_load(format!("cannot start the script's thread: {err}")))?;
        match loaded_rx.recv() {
            Ok(Ok(())) => Ok(Self { requests }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(bare_load("the script's thread ended while loading".to_owned())),
        }
    }

    /// Calls the script with `input`.
    pub async fn call(&self, input: Value) -> Result<Output, ScriptError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((input, reply))
            .map_err(|_| bare_load("the script's thread has ended".to_owned()))?;
        answer
            .await
            .map_err(|_| bare_load("the script's thread ended during the call".to_owned()))?
    }
}

fn bare_load(message: String) -> ScriptError {
    ScriptError {
        kind: ScriptFailure::Load,
        name: None,
        message,
        stack: None,
        line: None,
        column: None,
        logs: Vec::new(),
    }
}
