//! Carrying messages: each node emits through an [`Outlet`] that holds the node's own edges,
//! and every message a node takes in (along an edge, from another module, or from outside any
//! flow) passes the same checks ([`admit`]) before the node handles it.
//!
//! Expected flow of a delivery along an edge:
//! 1. the edge's mapping, if any, shapes the message (`$trigger` is the run's first message);
//! 2. the target is found: a node here, or a module that runs it (waited for a moment);
//! 3. the hop count grows by one; past [`HOP_LIMIT`] the run is refused (a loop), and the
//!    result is checked against the target port's schema (by the receiving module for a node
//!    of another module);
//! 4. the target handles it within the edge's timeout, in a child of the run's cancellation;
//! 5. a transient failure is retried with exponential backoff and jitter, up to the edge's
//!    attempts; any other failure returns at once. Once an edge has spent its retries on a
//!    failure, the edges above pass it on instead of retrying it again.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Weak},
    task::Poll,
    time::Duration,
};

use futures::{
    FutureExt as _,
    future::{BoxFuture, Either, join_all},
};
use serde_json::Value;
use tokio_util::{
    sync::{CancellationToken, WaitForCancellationFuture},
    task::AbortOnDropHandle,
};
use tracing::Instrument as _;
use weir_sdk::{AccountToken, Emitter, NodeError, NodeIdentity, Run, Trigger};

use crate::{
    edge::Edge,
    inspect::{self, Observed},
    instance::Instance,
    routing::Target,
    shared::Shared,
    spans::Recording,
};

/// How deep a run's call tree may go before it counts as a loop.
pub const HOP_LIMIT: u32 = 256;

/// How long a delivery waits for its target node to start (see [`Shared::target`]).
const TARGET_GRACE: Duration = Duration::from_secs(2);

/// Every this many hops a delivery continues on a task of its own: a call tree is nested
/// futures, and polling hundreds of them in one go would overflow a thread's stack.
const HOPS_PER_TASK: u32 = 32;

/// How long a mapping may evaluate on an async worker; one that takes longer is evaluated
/// again on a blocking thread, with its whole time budget, so it holds up no other delivery.
const INLINE_MAPPING_TIME: Duration = Duration::from_millis(5);

/// What one node's context emits through: it delivers along the node's own edges. It holds
/// the runtime and the node weakly, so that neither keeps the other alive.
pub(crate) struct Outlet {
    shared: Weak<Shared>,
    node: Weak<Instance>,
    edges: Vec<Edge>,
}

impl Outlet {
    pub(crate) fn new(shared: Weak<Shared>, node: Weak<Instance>, edges: Vec<Edge>) -> Self {
        Self { shared, node, edges }
    }

    fn parts(&self) -> Result<(Arc<Shared>, Arc<Instance>), NodeError> {
        let stopped = || NodeError::cancelled("the node has stopped");
        let shared = self.shared.upgrade().ok_or_else(stopped)?;
        let node = self.node.upgrade().ok_or_else(stopped)?;
        Ok((shared, node))
    }
}

impl Emitter for Outlet {
    fn emit<'a>(
        &'a self,
        _: &'a NodeIdentity,
        port: &'a str,
        message: Value,
        run: &'a Run,
    ) -> BoxFuture<'a, Result<Value, NodeError>> {
        Box::pin(async move {
            let (shared, source) = self.parts()?;
            let delivery = shared.emit(&source, &self.edges, port, message, run);
            // The source is needed only to count and show the message, not while it travels.
            drop(source);
            delivery.await
        })
    }

    fn log(&self, from: &NodeIdentity, run: &Run, line: &str) {
        tracing::debug!(node = %from, trace_id = %run.trace.trace_hex(), "{line}");
        if let Ok((shared, node)) = self.parts()
            && shared.watched()
        {
            shared.publish(&node, "", run.trace, Observed::Logged(inspect::kept_line(line)));
        }
    }

    fn account_token<'a>(
        &'a self,
        from: &'a NodeIdentity,
    ) -> BoxFuture<'a, Result<Option<AccountToken>, NodeError>> {
        Box::pin(async move {
            let (shared, _) = self.parts()?;
            shared.account_token(&from.namespace, &from.flow).await
        })
    }

    fn report(&self, _: &NodeIdentity, error: &NodeError) {
        if let Some(node) = self.node.upgrade() {
            node.count_error(error);
        }
    }
}

/// Refuses a message for `target`'s `port` at `hops` deep past the hop limit, or one that
/// does not fit the port's schema. Every message a node takes in passes here once.
pub(crate) fn admit(
    target: &Instance,
    port: &str,
    message: &Value,
    hops: u32,
) -> Result<(), NodeError> {
    if hops > HOP_LIMIT {
        return Err(NodeError::invalid(format!(
            "the run went {HOP_LIMIT} hops deep; the flow loops without end"
        )));
    }
    let Some((field, problem)) = target.input(port).and_then(|v| misfit(v, message)) else {
        return Ok(());
    };
    let field = if field.is_empty() { "the message".to_owned() } else { format!("field {field}") };
    Err(NodeError::invalid(format!(
        "the message does not fit {}.{port}: {field}: {problem}",
        target.identity.node
    )))
}

/// The first way `value` does not fit the schema of `validator`: the JSON pointer of the field
/// (empty for the value itself) and what is wrong. The value may be a secret and the message
/// goes to status and logs, so it names the value's type, never the value.
pub fn misfit(validator: &jsonschema::Validator, value: &Value) -> Option<(String, String)> {
    // Asking first is much cheaper than collecting errors, and nearly every message fits.
    if validator.is_valid(value) {
        return None;
    }
    let problem = validator.iter_errors(value).next()?;
    let shown = match problem.instance().as_ref() {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    Some((problem.instance_path().to_string(), problem.masked_with(shown).to_string()))
}

/// Evaluates an edge's mapping: in place when it is quick, as nearly all are, else on a
/// blocking thread.
async fn map(
    mapping: &Arc<weir_model::mapping::Mapping>,
    message: &Value,
    trigger: &Trigger,
) -> Result<Value, weir_model::mapping::MappingError> {
    // A trigger that came from another module is parsed only for a mapping that reads it.
    let briefly = mapping.evaluate_briefly(
        message,
        trigger.value_if(mapping.reads_trigger()),
        INLINE_MAPPING_TIME,
    );
    if let Some(evaluated) = briefly {
        return evaluated;
    }
    let (mapping, message, trigger) = (Arc::clone(mapping), message.clone(), trigger.clone());
    tokio::task::spawn_blocking(move || {
        mapping.evaluate(&message, trigger.value_if(mapping.reads_trigger()))
    })
    .await
    .unwrap_or_else(|err| {
        Err(weir_model::mapping::MappingError {
            path: String::new(),
            expression: None,
            message: format!("the evaluation failed: {err}"),
        })
    })
}

/// How a delivery bounded by a deadline and a cancellation ended.
enum Bounded<T> {
    Done(T),
    TimedOut,
    Cancelled,
}

/// `delivery`'s outcome, unless `deadline` passes or `cancel` is cancelled first.
fn bounded<F: Future>(
    delivery: F,
    deadline: tokio::time::Instant,
    cancel: &CancellationToken,
) -> BoundedDelivery<'_, F> {
    BoundedDelivery { delivery, deadline, cancel, timer: None, cancelled: None }
}

pin_project_lite::pin_project! {
    /// A delivery bounded by its edge's deadline and its run's cancellation. The delivery is
    /// polled first, and the timer and the cancellation's waiter are made only once it waits:
    /// nearly every in-process hop finishes in its first poll and needs neither. A struct
    /// rather than an `async fn` or a `select!`, which would hold the delivery twice or
    /// both waiters always, and every hop's future holds this one.
    struct BoundedDelivery<'a, F> {
        #[pin]
        delivery: F,
        deadline: tokio::time::Instant,
        cancel: &'a CancellationToken,
        // Boxed: each is large, and most deliveries never make them.
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        cancelled: Option<Pin<Box<WaitForCancellationFuture<'a>>>>,
    }
}

impl<F: Future> Future for BoundedDelivery<'_, F> {
    type Output = Bounded<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.delivery.poll(cx) {
            return Poll::Ready(Bounded::Done(output));
        }
        let deadline = *this.deadline;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Bounded::TimedOut);
        }
        let cancel = *this.cancel;
        let cancelled = this.cancelled.get_or_insert_with(|| Box::pin(cancel.cancelled()));
        cancelled.as_mut().poll(cx).map(|()| Bounded::Cancelled)
    }
}

/// One attempt at a delivery: which of its edge's attempts it is, and when it began, which its
/// deadline and its node's duration are counted from (one reading of the clock for both).
#[derive(Clone, Copy)]
pub(crate) struct Attempt {
    pub(crate) number: u32,
    pub(crate) began: tokio::time::Instant,
}

impl Attempt {
    /// Attempt `number`, beginning now.
    pub(crate) fn now(number: u32) -> Self {
        Self { number, began: tokio::time::Instant::now() }
    }
}

fn cancelled(edge: &Edge) -> NodeError {
    NodeError::cancelled(format!("edge {edge}: the run was cancelled"))
}

impl Shared {
    /// Delivers what `source` emitted on `port` along its `edges` from that port: the caller
    /// gets the first edge's answer, or the first failure in edge order once all finished.
    /// Not an `async fn`: every hop's future holds this one, and it would keep the message
    /// twice and the edges it goes through besides.
    fn emit<'a>(
        self: &'a Arc<Self>,
        source: &Instance,
        edges: &'a [Edge],
        port: &str,
        mut message: Value,
        run: &'a Run,
    ) -> impl Future<Output = Result<Value, NodeError>> + use<'a> {
        source.count_out();
        if port == weir_sdk::ERROR_PORT {
            source.conceal_failed_input(&mut message);
        }
        if self.watched() {
            let shown = inspect::kept(source.redacted(port, &message));
            self.publish(source, port, run.trace, Observed::Emitted(shown));
        }
        let mut on_port = edges.iter().filter(|e| e.port == port);
        let (first, second) = (on_port.next(), on_port.next());
        match (first, second) {
            // One edge: its answer is the answer.
            (Some(edge), None) => Either::Left(Either::Left(self.deliver(edge, message, run))),
            // No edge: the message goes nowhere.
            (None, _) => Either::Left(Either::Right(std::future::ready(Ok(Value::Null)))),
            (Some(first), Some(second)) => {
                let all: Vec<&Edge> = [first, second].into_iter().chain(on_port).collect();
                Either::Right(Box::pin(self.fan_out(all, message, run)))
            }
        }
    }

    /// Delivers `message` along each of `edges` at once: the first edge's answer, or the first
    /// failure in edge order once all finished.
    async fn fan_out(
        self: &Arc<Self>,
        edges: Vec<&Edge>,
        message: Value,
        run: &Run,
    ) -> Result<Value, NodeError> {
        let results =
            join_all(edges.into_iter().map(|edge| self.deliver(edge, message.clone(), run))).await;
        let mut answer = Value::Null;
        for (index, result) in results.into_iter().enumerate() {
            match result {
                Ok(value) if index == 0 => answer = value,
                Ok(_) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(answer)
    }

    /// Where an edge's target node runs: here, or in a peer module. A node that runs nowhere
    /// yet is waited for a moment, as the nodes of a flow applied at once start one by one and
    /// a trigger's first run can come before its targets; after that the failure is transient,
    /// since a node starting or a module restarting comes back.
    async fn target(&self, edge: &Edge, run: &Run) -> Result<Target, NodeError> {
        match self.routing.target(&edge.target) {
            Some(target) => Ok(target),
            // Boxed, as the wait is rare and its timers would swell every hop's future.
            None => Box::pin(self.wait_for_target(edge, run)).await,
        }
    }

    async fn wait_for_target(&self, edge: &Edge, run: &Run) -> Result<Target, NodeError> {
        let missing = || {
            NodeError::transient(format!("node {} is not running", edge.target))
                .context(format!("edge {edge}"))
        };
        let deadline = tokio::time::Instant::now() + TARGET_GRACE;
        loop {
            // Listening before looking again, so an arrival between the two is not missed.
            let arrival = self.routing.arrival();
            if let Some(target) = self.routing.target(&edge.target) {
                return Ok(target);
            }
            tokio::select! {
                () = arrival => {}
                () = tokio::time::sleep_until(deadline) => return Err(missing()),
                () = run.cancel.cancelled() => return Err(missing()),
            }
        }
    }

    /// Delivers `message` along `edge`, retrying transient failures as the edge says. Every
    /// hop's future holds this one, so it keeps one message (the one a retry sends again), not
    /// the several an `async fn`'s arguments and moved-from locals would take room for.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep its message twice in every hop's future"
    )]
    fn deliver<'a>(
        self: &'a Arc<Self>,
        edge: &'a Edge,
        mut message: Value,
        run: &'a Run,
    ) -> impl Future<Output = Result<Value, NodeError>> + 'a {
        async move {
            if let Some(mapping) = &edge.mapping {
                message = map(mapping, &message, &run.trigger)
                    .await
                    .map_err(|err| NodeError::invalid(format!("edge {edge}: mapping {err}")))?;
            }
            let target = self.target(edge, run).await?;
            let hops = run.hops + 1;
            if let Target::Local(local) = &target {
                // The receiving module admits a message for a node of its own.
                admit(local, &edge.target_port, &message, hops)
                    .map_err(|err| err.context(format!("edge {edge}")))?;
            }
            let mut attempt = 1;
            // The replica whose call just failed, for the next attempt to pass over.
            let mut failed_at: Option<String> = None;
            loop {
                let this_attempt = Attempt::now(attempt);
                let deadline = this_attempt.began + edge.timeout;
                let handled = {
                    // Keep the message only while another attempt may need it.
                    let sent = if attempt < edge.attempts {
                        message.clone()
                    } else {
                        std::mem::take(&mut message)
                    };
                    let child = Run {
                        trigger: run.trigger.clone(),
                        hops,
                        cancel: run.cancel.clone(),
                        trace: run.trace.child(),
                    };
                    match &target {
                        Target::Local(local) => Either::Left(self.handle_at_depth(
                            local,
                            &edge.target_port,
                            sent,
                            child,
                            this_attempt,
                        )),
                        // A call to another module is a large future: boxed, so that it does
                        // not swell every local hop's.
                        Target::Remote => Either::Right(Box::pin(self.deliver_to_peer(
                            edge,
                            sent,
                            child,
                            attempt,
                            &mut failed_at,
                        ))),
                    }
                };
                // Dropping the delivery on a timeout or a cancelled run cancels everything
                // under it.
                let result = match bounded(handled, deadline, &run.cancel).await {
                    Bounded::Done(result) => result,
                    Bounded::TimedOut => Err(NodeError::cancelled(format!(
                        "edge {edge}: no answer within {:?}",
                        edge.timeout
                    ))),
                    Bounded::Cancelled => return Err(cancelled(edge)),
                };
                match result {
                    Err(err) if err.is_retryable() && attempt < edge.attempts => {
                        // A server that said how long to wait (`Retry-After`) is waited for.
                        let wait = edge.backoff(attempt).max(err.retry_after().unwrap_or_default());
                        tracing::debug!(%edge, attempt, ?wait, error = %err, "retrying a transient failure");
                        tokio::select! {
                            () = Box::pin(tokio::time::sleep(wait)) => {}
                            () = run.cancel.cancelled() => return Err(cancelled(edge)),
                        }
                        attempt += 1;
                    }
                    // This edge owns the retries of what failed below it: the edges above pass
                    // the failure on rather than running this subtree again.
                    Err(err) if err.is_retryable() && edge.attempts > 1 => {
                        return Err(err.with_retries_spent());
                    }
                    other => return other,
                }
            }
        }
    }

    /// One attempt at delivering `message` along `edge` to a replica of the module that runs
    /// its target, passing over `failed_at` (the replica the last attempt failed at), which it
    /// sets when this one fails.
    async fn deliver_to_peer(
        &self,
        edge: &Edge,
        message: Value,
        run: Run,
        attempt: u32,
        failed_at: &mut Option<String>,
    ) -> Result<Value, NodeError> {
        let endpoint = self.routing.pick(&edge.target, failed_at.as_deref()).ok_or_else(|| {
            NodeError::transient(format!(
                "edge {edge}: no replica of the target's module serves now"
            ))
        })?;
        let delivered = self
            .peers
            .deliver(
                &endpoint,
                (&edge.source.name, &edge.port),
                &edge.target,
                &edge.target_port,
                &message,
                &run,
                attempt,
                edge.timeout,
            )
            .await;
        if delivered.is_err() {
            *failed_at = Some(endpoint);
        }
        delivered
    }

    /// Has a node handle one message in `attempt` of its edge's, counting it, timing it from
    /// the attempt's beginning and, where traces are exported, recording its span.
    /// What comes before the node's own work is done here, and the future keeps only what the
    /// rest needs: every hop's future holds this one, and an `async fn` would keep its
    /// arguments as well.
    pub(crate) fn handle<'a>(
        &'a self,
        instance: &'a Instance,
        port: &'a str,
        message: Value,
        run: Run,
        attempt: Attempt,
    ) -> impl Future<Output = Result<Value, NodeError>> + 'a {
        instance.count_in();
        // Boxed, as it is large and most runtimes export no traces.
        let recording = self.spans.get().map(|spans| {
            Box::new(Recording::start(
                Arc::clone(spans),
                &instance.identity,
                port,
                run.trace,
                attempt.number,
            ))
        });
        let watched = self.watched();
        if watched {
            let shown = inspect::kept(instance.redacted(port, &message));
            self.publish(instance, port, run.trace, Observed::Received(shown));
        }
        let span = tracing::debug_span!(
            "handle",
            node = %instance.identity,
            port,
            trace_id = %run.trace.trace_hex(),
        );
        let context = instance.context(run);
        async move {
            // A panic in the node fails this delivery, not the task that carries the run.
            let handled =
                std::panic::AssertUnwindSafe(instance.node.handle(&context, port, message));
            let result = handled.catch_unwind().instrument(span).await.unwrap_or_else(|panic| {
                Err(NodeError::internal(format!(
                    "node {} panicked: {}",
                    instance.identity,
                    panic_message(&*panic)
                )))
            });
            let elapsed = attempt.began.elapsed();
            instance.observe(elapsed);
            if let Err(err) = &result {
                instance.count_error(err);
            }
            if let Some(recording) = recording {
                recording.end(&result);
            }
            if watched {
                let what = match &result {
                    Ok(_) => Observed::Answered { elapsed },
                    Err(err) => {
                        Observed::Failed { kind: err.kind(), message: err.to_string(), elapsed }
                    }
                };
                self.publish(instance, port, context.run().trace, what);
            }
            result
        }
    }

    /// [`Shared::handle`], moved to a task of its own every [`HOPS_PER_TASK`] hops; the task
    /// is aborted if the delivery is dropped (a timeout, a cancelled caller). Not an `async
    /// fn`, as every hop's future holds this one: an `async fn` would keep its arguments twice.
    pub(crate) fn handle_at_depth<'a>(
        self: &'a Arc<Self>,
        target: &'a Arc<Instance>,
        port: &'a str,
        message: Value,
        run: Run,
        attempt: Attempt,
    ) -> impl Future<Output = Result<Value, NodeError>> + 'a {
        if run.hops.is_multiple_of(HOPS_PER_TASK) {
            Either::Right(self.handle_on_a_task(target, port, message, run, attempt))
        } else {
            Either::Left(self.handle(target, port, message, run, attempt))
        }
    }

    /// [`Shared::handle`] on a task of its own.
    fn handle_on_a_task(
        self: &Arc<Self>,
        target: &Arc<Instance>,
        port: &str,
        message: Value,
        run: Run,
        attempt: Attempt,
    ) -> impl Future<Output = Result<Value, NodeError>> + use<> {
        let (shared, target, port) = (Arc::clone(self), Arc::clone(target), port.to_owned());
        let task = AbortOnDropHandle::new(tokio::spawn(async move {
            shared.handle(&target, &port, message, run, attempt).await
        }));
        task.map(|joined| {
            joined.unwrap_or_else(|err| Err(NodeError::internal(format!("a node panicked: {err}"))))
        })
    }
}

/// What a panic said, when it said something.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use weir_model::mapping::Mapping;

    use super::*;

    #[tokio::test]
    async fn a_mapping_that_does_not_read_the_trigger_leaves_it_unparsed() {
        let trigger = Trigger::from_json(br#"{"name":"web"}"#.to_vec()).expect("JSON");
        let message = json!({ "image": "nginx" });
        let plain =
            Arc::new(Mapping::compile(&json!({ "image": "{{ .image }}" })).expect("a mapping"));
        assert_eq!(map(&plain, &message, &trigger).await.expect("mapped"), message);
        assert_eq!(format!("{trigger:?}"), "Trigger(14 bytes of JSON)", "not parsed");

        let reading =
            Arc::new(Mapping::compile(&json!({ "of": "{{ $trigger.name }}" })).expect("a mapping"));
        assert_eq!(
            map(&reading, &message, &trigger).await.expect("mapped"),
            json!({ "of": "web" })
        );
    }
}
