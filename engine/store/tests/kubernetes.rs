//! The Kubernetes store against a real kube-apiserver and etcd: the shared contract, plus what
//! only a real server does (RBAC).

use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use weir_model::Kind;
use weir_store::{Selector, Store, StoreError, contract::Fixture, kubernetes::KubeStore};
use weir_testenv::{ControlPlane, client_for};

async fn fixture() -> Fixture {
    let plane = ControlPlane::shared();
    let client = plane.client().await.expect("admin client");
    Fixture {
        store: Arc::new(KubeStore::new(client)),
        namespace: plane.namespace("contract").await.expect("namespace"),
        other_namespace: plane.namespace("contract-other").await.expect("namespace"),
        guard: Box::new(()),
    }
}

weir_store::contract_tests!(fixture());

/// Without a grant every verb is forbidden, and the error says who may not do what where; with
/// a grant for reading only, writing is still forbidden and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_denials_name_the_user_verb_and_resource() -> Result<()> {
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("rbac").await?;
    let store = KubeStore::new(client_for(&plane.identity("mallory", &[])?).await?);
    let err = store
        .list(Kind::Flow, Some(&namespace), &Selector::everything())
        .await
        .err()
        .context("list allowed")?;
    ensure!(matches!(err, StoreError::Forbidden { .. }), "wrong error: {err}");
    ensure!(
        err.to_string()
            == format!(
                "forbidden: user \"mallory\" may not list flows.weir.dev in namespace {namespace}"
            ),
        "{err}"
    );

    let grant = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: read-flows, namespace: {namespace}}}\n\
         rules: [{{apiGroups: [weir.dev], resources: [flows], verbs: [get, list, watch]}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: mallory-reads, namespace: {namespace}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-flows}}\n\
         subjects: [{{kind: User, name: mallory, apiGroup: rbac.authorization.k8s.io}}]\n"
    );
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("grant.yaml"), grant)?;
    let applied =
        plane.kubectl().args(["apply", "-f"]).arg(dir.path().join("grant.yaml")).output()?;
    ensure!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));

    // RBAC caches refresh quickly but not instantly; read until the grant is in force.
    let mut listed = store.list(Kind::Flow, Some(&namespace), &Selector::everything()).await;
    for _ in 0..50 {
        if listed.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        listed = store.list(Kind::Flow, Some(&namespace), &Selector::everything()).await;
    }
    ensure!(listed?.is_empty(), "unexpected flows");
    let err = store
        .create(weir_store::contract::flow(&namespace, "mirror", &[]))
        .await
        .err()
        .context("create allowed with a read-only grant")?;
    ensure!(
        err.to_string()
            == format!(
                "forbidden: user \"mallory\" may not create flows.weir.dev \"mirror\" in namespace {namespace}"
            ),
        "{err}"
    );
    Ok(())
}

/// One candidate leads while it renews; when it stops it gives the lease up and the other
/// takes over without waiting out the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_candidate_leads_and_the_other_takes_over_when_it_stops() -> Result<()> {
    use k8s_openapi::api::coordination::v1::Lease;
    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;
    use weir_store::lease::Election;

    let plane = ControlPlane::shared();
    let namespace = plane.namespace("lease").await?;
    let election = |identity: &str| Election {
        namespace: namespace.clone(),
        lease: "weir-module-test".to_owned(),
        identity: identity.to_owned(),
        duration: std::time::Duration::from_secs(30),
        renew_deadline: std::time::Duration::from_secs(20),
        retry: std::time::Duration::from_millis(100),
    };
    let patience = std::time::Duration::from_secs(20);
    let (a_leads, mut a_watch) = watch::channel(false);
    let (b_leads, mut b_watch) = watch::channel(false);
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let a = tokio::spawn(election("a").run(plane.client().await?, a_leads, stop_a.clone()));
    tokio::time::timeout(patience, a_watch.wait_for(|leads| *leads)).await??;
    let b = tokio::spawn(election("b").run(plane.client().await?, b_leads, stop_b.clone()));

    // While `a` keeps renewing, `b` stands by: watch the lease being renewed a few times.
    let leases: kube::Api<Lease> = kube::Api::namespaced(plane.client().await?, &namespace);
    let renewed =
        |lease: &Lease| lease.spec.as_ref().and_then(|s| s.renew_time.clone()).map(|t| t.0);
    let mut last = renewed(&leases.get("weir-module-test").await?);
    for _ in 0..5 {
        tokio::time::timeout(patience, async {
            loop {
                let lease = leases.get("weir-module-test").await?;
                let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
                ensure!(
                    holder.as_deref() == Some("a"),
                    "the lease moved to {holder:?} while a renewed it"
                );
                if renewed(&lease) != last {
                    last = renewed(&lease);
                    return anyhow::Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await??;
    }
    ensure!(!*b_watch.borrow(), "b claims to lead while a holds the lease");

    stop_a.cancel();
    a.await?;
    ensure!(!*a_watch.borrow(), "a still claims to lead after stopping");
    // The lease lasts 30 s; b takes over long before that because a gave it up.
    tokio::time::timeout(std::time::Duration::from_secs(10), b_watch.wait_for(|leads| *leads))
        .await??;
    let spec = leases.get("weir-module-test").await?.spec.context("lease spec")?;
    ensure!(
        spec.holder_identity.as_deref() == Some("b") && spec.lease_transitions == Some(1),
        "{spec:?}"
    );
    stop_b.cancel();
    b.await?;
    Ok(())
}

/// A holder that died without giving the lease up loses it once its record has not changed for
/// the lease duration, measured on the candidate's own clock, whatever time the record says
/// (even an hour ahead); one that still renews keeps it, even when its clock is an hour behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_and_a_live_one_is_not_whatever_the_clocks_say() -> Result<()>
{
    use k8s_openapi::{
        api::coordination::v1::{Lease, LeaseSpec},
        apimachinery::pkg::apis::meta::v1::MicroTime,
        jiff::{SignedDuration, Timestamp},
    };
    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;
    use weir_store::lease::Election;

    let plane = ControlPlane::shared();
    let namespace = plane.namespace("expiry").await?;
    let leases: kube::Api<Lease> = kube::Api::namespaced(plane.client().await?, &namespace);
    let held = |name: &str, renewed: Timestamp| Lease {
        metadata: kube::api::ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
        spec: Some(LeaseSpec {
            holder_identity: Some("ghost".to_owned()),
            lease_duration_seconds: Some(2),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(4),
            ..LeaseSpec::default()
        }),
    };
    let now = Timestamp::now();
    // A dead holder whose clock ran an hour ahead: its renewal looks fresh for an hour.
    leases
        .create(&Default::default(), &held("expired", now + SignedDuration::from_secs(3600)))
        .await?;
    // A live holder whose clock runs an hour behind: its renewals look an hour old.
    let behind = || Timestamp::now() - SignedDuration::from_secs(3600);
    leases.create(&Default::default(), &held("fresh", behind())).await?;
    let renewing = {
        let leases = leases.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                let mut lease = leases.get("fresh").await?;
                if let Some(spec) = lease.spec.as_mut() {
                    spec.renew_time = Some(MicroTime(behind()));
                }
                leases.replace("fresh", &Default::default(), &lease).await?;
            }
            #[allow(unreachable_code)]
            anyhow::Ok(())
        })
    };
    let compete = |lease: &str| {
        let election = Election {
            namespace: namespace.clone(),
            lease: lease.to_owned(),
            identity: "c".to_owned(),
            duration: std::time::Duration::from_secs(15),
            renew_deadline: std::time::Duration::from_secs(10),
            retry: std::time::Duration::from_millis(100),
        };
        let (leads, watch) = watch::channel(false);
        let stop = CancellationToken::new();
        (election, leads, watch, stop)
    };
    let (expired, leads, mut expired_watch, stop_expired) = compete("expired");
    let expired_task =
        tokio::spawn(expired.run(plane.client().await?, leads, stop_expired.clone()));
    tokio::time::timeout(std::time::Duration::from_secs(20), expired_watch.wait_for(|l| *l))
        .await??;
    let spec = leases.get("expired").await?.spec.context("spec")?;
    ensure!(
        spec.holder_identity.as_deref() == Some("c") && spec.lease_transitions == Some(5),
        "{spec:?}"
    );

    let (fresh, leads, fresh_watch, stop_fresh) = compete("fresh");
    let fresh_task = tokio::spawn(fresh.run(plane.client().await?, leads, stop_fresh.clone()));
    // Many rounds pass (the retry is 100 ms), well past the ghost's 2 s.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    ensure!(!*fresh_watch.borrow(), "took a lease that is still renewed");
    renewing.abort();
    let spec = leases.get("fresh").await?.spec.context("spec")?;
    ensure!(spec.holder_identity.as_deref() == Some("ghost"), "{spec:?}");
    stop_expired.cancel();
    stop_fresh.cancel();
    expired_task.await?;
    fresh_task.await?;
    Ok(())
}

/// A watch of a cluster that cannot be reached waits longer after each failure instead of
/// trying again at once: against an "apiserver" that takes each connection and hangs up, a
/// watch followed for ten seconds makes a handful of attempts (it made thousands before the
/// backoff; docs/benchmarks.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_of_an_unreachable_cluster_backs_off() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", listener.local_addr()?);
    let attempts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counting = Arc::clone(&attempts);
    let dead = tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            counting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(connection);
        }
    });
    let config = kube::Config::new(url.parse()?);
    let store: Arc<dyn Store> = Arc::new(KubeStore::with_config(config)?);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut events = weir_store::follow(store, Kind::FlowNode, None, stop.clone());
    let window = std::time::Duration::from_secs(10);
    let followed = tokio::time::timeout(window, futures::StreamExt::next(&mut events)).await;
    ensure!(followed.is_err(), "an unreachable cluster gave an event: {followed:?}");
    stop.cancel();
    dead.abort();
    let made = attempts.load(std::sync::atomic::Ordering::Relaxed);
    println!("connections in {window:?} to an apiserver that hangs up: {made}");
    ensure!((1..=30).contains(&made), "{made} connections in {window:?}");
    Ok(())
}

/// Copies `from` to `to` until either ends, passing nothing on while `stalled` is set.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    stalled: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buffer = vec![0; 16 * 1024];
    while let Ok(read) = from.read(&mut buffer).await {
        while read > 0 && stalled.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if read == 0 || to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
}

/// A leader whose connection to the apiserver stalls (a proxy of the test's own stops passing
/// anything on) stops leading within its renew deadline, before another candidate may take the
/// lease over: never two leaders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_stops_leading_before_another_takes_over() -> Result<()> {
    use std::{
        sync::atomic::{AtomicBool, Ordering},
        time::{Duration, Instant},
    };

    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;
    use weir_store::lease::Election;

    let plane = ControlPlane::shared();
    let namespace = plane.namespace("stall").await?;
    let upstream = plane.server().trim_start_matches("https://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let proxy_url = format!("https://{}", listener.local_addr()?);
    let stalled = Arc::new(AtomicBool::new(false));
    let proxy = {
        let stalled = Arc::clone(&stalled);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                let (client_in, client_out) = client.into_split();
                let (server_in, server_out) = server.into_split();
                tokio::spawn(pump(client_in, server_out, Arc::clone(&stalled)));
                tokio::spawn(pump(server_in, client_out, Arc::clone(&stalled)));
            }
        })
    };
    let mut through_proxy = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(plane.kubeconfig())?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    through_proxy.cluster_url = proxy_url.parse()?;
    let election = |identity: &str| Election {
        namespace: namespace.clone(),
        lease: "weir-module-stall".to_owned(),
        identity: identity.to_owned(),
        duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(2),
        retry: Duration::from_millis(300),
    };
    let patience = Duration::from_secs(20);
    let (a_leads, mut a_watch) = watch::channel(false);
    let (b_leads, mut b_watch) = watch::channel(false);
    let stop = CancellationToken::new();
    let a_client = kube::Client::try_from(through_proxy)?;
    let a = tokio::spawn(election("a").run(a_client, a_leads, stop.clone()));
    tokio::time::timeout(patience, a_watch.wait_for(|leads| *leads)).await??;
    let b = tokio::spawn(election("b").run(plane.client().await?, b_leads, stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(!*b_watch.borrow(), "b leads while a renews");

    stalled.store(true, Ordering::Relaxed);
    let cut = Instant::now();
    tokio::time::timeout(patience, a_watch.wait_for(|leads| !*leads)).await??;
    let a_stopped = cut.elapsed();
    ensure!(!*b_watch.borrow(), "b took over before a stopped leading");
    tokio::time::timeout(patience, b_watch.wait_for(|leads| *leads)).await??;
    let b_started = cut.elapsed();
    ensure!(
        a_stopped < b_started,
        "a stopped {a_stopped:?}, b started {b_started:?} after the cut"
    );
    println!("after the cut: a stopped leading at {a_stopped:?}, b took over at {b_started:?}");
    stop.cancel();
    b.await?;
    // a's last calls hang on the stalled proxy until their timeouts.
    tokio::time::timeout(patience, a).await??;
    proxy.abort();
    Ok(())
}

/// One FlowNode whose settings nest deeper than a JSON reader follows (written with kubectl,
/// past Weir's own checks) is skipped, naming it, and every other one is listed and watched as
/// ever; its deletion is still heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_too_deep_to_read_is_skipped_and_the_others_are_read() -> Result<()> {
    use futures::StreamExt as _;
    use serde_json::json;
    use weir_store::{DynamicObject, WatchEvent};

    let plane = ControlPlane::shared();
    let namespace = plane.namespace("poison").await?;
    let store = KubeStore::new(plane.client().await?);
    let node = |name: &str, settings: serde_json::Value| {
        json!({
            "apiVersion": "weir.dev/v1alpha1", "kind": "FlowNode",
            "metadata": { "name": name, "namespace": namespace },
            "spec": { "flow": "f", "module": "common", "component": "debug", "settings": settings },
        })
    };
    store.create(serde_json::from_value::<DynamicObject>(node("fine", json!({})))?).await?;
    let mut deep = json!("bottom");
    for _ in 0..300 {
        deep = json!({ "a": deep });
    }
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("deep.json");
    std::fs::write(&file, node("deep", json!({ "nested": deep })).to_string())?;
    let applied = plane.kubectl().args(["create", "-f"]).arg(&file).output()?;
    ensure!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));

    let names = |objects: &[DynamicObject]| -> Vec<String> {
        objects.iter().filter_map(|o| o.metadata.name.clone()).collect()
    };
    let listed = store.list(Kind::FlowNode, Some(&namespace), &Selector::everything()).await?;
    ensure!(names(&listed) == ["fine"], "{:?}", names(&listed));

    let mut events = store.watch(Kind::FlowNode, Some(&namespace), &Selector::everything());
    let mut next = async || {
        tokio::time::timeout(std::time::Duration::from_secs(20), events.next())
            .await?
            .context("the watch ended")?
            .map_err(anyhow::Error::from)
    };
    match next().await? {
        WatchEvent::Synced(objects) => {
            ensure!(names(&objects) == ["fine"], "{:?}", names(&objects));
        }
        other => anyhow::bail!("first {other:?}"),
    }
    store.create(serde_json::from_value::<DynamicObject>(node("later", json!({})))?).await?;
    match next().await? {
        WatchEvent::Applied(object) => {
            ensure!(object.metadata.name.as_deref() == Some("later"), "{object:?}");
        }
        other => anyhow::bail!("then {other:?}"),
    }
    let deleted = plane
        .kubectl()
        .args(["delete", "flownodes.weir.dev", "deep", "-n", &namespace])
        .output()?;
    ensure!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    match next().await? {
        WatchEvent::Deleted(object) => {
            ensure!(object.metadata.name.as_deref() == Some("deep"), "{object:?}");
        }
        other => anyhow::bail!("then {other:?}"),
    }
    Ok(())
}
