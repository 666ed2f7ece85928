//! The process's own numbers on `/metrics`, beside the runtime's, named as the Kubernetes
//! ecosystem names them so existing dashboards and alerts apply: the flow controller's
//! reconciles as controller-runtime counts them (`controller_runtime_reconcile_*`), and the
//! requests of the process's Kubernetes client as client-go counts them (`rest_client_*`,
//! through a tower layer on the client).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    future::Future,
    pin::Pin,
    sync::{
        Arc, LazyLock, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use weir_runtime::{histogram::Histogram, metrics::escape};

/// The controller's name in the `controller` label.
const CONTROLLER: &str = "flow";

/// Every number of this file, for the whole process: controllers and clients are made in
/// several places, and Prometheus counts a process.
static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// Requests by status code (0 when none came back), method and host.
type Requests = BTreeMap<(u16, String, Arc<str>), u64>;

/// Request latency by method and host.
type Latencies = BTreeMap<(String, Arc<str>), Arc<Histogram>>;

#[derive(Default)]
struct Metrics {
    /// Whether this process runs the flow controller, so only such a process shows its series.
    controller: AtomicBool,
    reconciled: AtomicU64,
    failed: AtomicU64,
    reconcile_time: Histogram,
    requests: Mutex<Requests>,
    request_time: Mutex<Latencies>,
}

/// Says this process runs the flow controller.
pub fn controller_started() {
    METRICS.controller.store(true, Ordering::Relaxed);
}

/// Counts one reconcile of one flow: whether it succeeded, and how long it took.
pub fn reconciled(succeeded: bool, elapsed: Duration) {
    let counter = if succeeded { &METRICS.reconciled } else { &METRICS.failed };
    counter.fetch_add(1, Ordering::Relaxed);
    METRICS.reconcile_time.observe(elapsed);
}

/// Renders this file's metrics in the Prometheus text format.
pub fn render(out: &mut String) {
    if METRICS.controller.load(Ordering::Relaxed) {
        let (reconciled, failed) =
            (METRICS.reconciled.load(Ordering::Relaxed), METRICS.failed.load(Ordering::Relaxed));
        out.push_str(
            "# HELP controller_runtime_reconcile_total Total number of reconciliations per \
             controller.\n# TYPE controller_runtime_reconcile_total counter\n",
        );
        for (result, count) in [("success", reconciled), ("error", failed)] {
            let _ = writeln!(
                out,
                "controller_runtime_reconcile_total{{controller=\"{CONTROLLER}\",result=\"{result}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP controller_runtime_reconcile_errors_total Total number of reconciliation \
             errors per controller.\n# TYPE controller_runtime_reconcile_errors_total counter\n",
        );
        let _ = writeln!(
            out,
            "controller_runtime_reconcile_errors_total{{controller=\"{CONTROLLER}\"}} {failed}"
        );
        out.push_str(
            "# HELP controller_runtime_reconcile_time_seconds Length of time per reconciliation \
             per controller.\n# TYPE controller_runtime_reconcile_time_seconds histogram\n",
        );
        METRICS.reconcile_time.render(
            "controller_runtime_reconcile_time_seconds",
            &format!("controller=\"{CONTROLLER}\""),
            out,
        );
    }
    let requests = METRICS.requests.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if requests.is_empty() {
        return;
    }
    out.push_str(
        "# HELP rest_client_requests_total Number of HTTP requests to the Kubernetes API, \
         partitioned by status code, method, and host.\n\
         # TYPE rest_client_requests_total counter\n",
    );
    for ((code, method, host), count) in &requests {
        let code = if *code == 0 { "<error>".to_owned() } else { code.to_string() };
        let _ = writeln!(
            out,
            "rest_client_requests_total{{code=\"{code}\",method=\"{method}\",host=\"{}\"}} {count}",
            escape(host)
        );
    }
    out.push_str(
        "# HELP rest_client_request_duration_seconds Request latency to the Kubernetes API in \
         seconds, by verb and host.\n# TYPE rest_client_request_duration_seconds histogram\n",
    );
    let times = METRICS.request_time.lock().unwrap_or_else(PoisonError::into_inner).clone();
    for ((verb, host), histogram) in &times {
        let labels = format!("verb=\"{verb}\",host=\"{}\"", escape(host));
        histogram.render("rest_client_request_duration_seconds", &labels, out);
    }
}

fn requested(code: u16, method: &http::Method, host: &Arc<str>, elapsed: Duration) {
    let method = method.as_str().to_owned();
    *METRICS
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry((code, method.clone(), Arc::clone(host)))
        .or_default() += 1;
    let histogram = Arc::clone(
        METRICS
            .request_time
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((method, Arc::clone(host)))
            .or_default(),
    );
    histogram.observe(elapsed);
}

/// A tower layer for a Kubernetes client that counts and times its requests to `host` (the
/// apiserver's `host:port`).
#[derive(Debug, Clone)]
pub struct CountRequests {
    host: Arc<str>,
}

impl CountRequests {
    /// Counts the requests of a client of the cluster `config` names.
    pub fn of(config: &kube::Config) -> Self {
        let host = config.cluster_url.authority().map_or("", |a| a.as_str());
        Self { host: host.into() }
    }
}

impl<S> tower::Layer<S> for CountRequests {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted { inner, host: Arc::clone(&self.host) }
    }
}

/// A Kubernetes client's service whose requests are counted and timed.
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    host: Arc<str>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (method, host) = (request.method().clone(), Arc::clone(&self.host));
        let started = Instant::now();
        let answered = self.inner.call(request);
        Box::pin(async move {
            let answered = answered.await;
            let code = answered.as_ref().map_or(0, |response| response.status().as_u16());
            requested(code, &method, &host, started.elapsed());
            answered
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_and_requests_render_as_controller_runtime_and_client_go_name_them() {
        controller_started();
        reconciled(true, Duration::from_millis(3));
        reconciled(false, Duration::from_millis(30));
        let host: Arc<str> = "10.0.0.1:6443".into();
        requested(200, &http::Method::GET, &host, Duration::from_millis(2));
        requested(0, &http::Method::PATCH, &host, Duration::from_millis(2));
        let mut out = String::new();
        render(&mut out);
        // The controller's tests of this binary reconcile too: their series are there, with
        // whatever counts.
        for line in [
            "\ncontroller_runtime_reconcile_total{controller=\"flow\",result=\"success\"} ",
            "\ncontroller_runtime_reconcile_total{controller=\"flow\",result=\"error\"} ",
            "\ncontroller_runtime_reconcile_errors_total{controller=\"flow\"} ",
            "\ncontroller_runtime_reconcile_time_seconds_count{controller=\"flow\"} ",
            "rest_client_requests_total{code=\"200\",method=\"GET\",host=\"10.0.0.1:6443\"} 1\n",
            "rest_client_requests_total{code=\"<error>\",method=\"PATCH\",host=\"10.0.0.1:6443\"} 1\n",
            "rest_client_request_duration_seconds_count{verb=\"GET\",host=\"10.0.0.1:6443\"} 1\n",
        ] {
            assert!(out.contains(line), "{line} in\n{out}");
        }
    }
}
