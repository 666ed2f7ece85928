//! `pod_logs` against a real kube-apiserver, which fetches logs from the kubelet of the pod's
//! node: here a real HTTPS server on loopback that a Node object points to, answering
//! `/containerLogs/…` as a kubelet does (tail lines, byte limit), and recording what it was
//! asked, so the test sees the node's settings reach the kubelet through the apiserver.

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::ring::default_provider,
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};
use weir_kubernetes::pod_logs::PodLogs;
use weir_sdk::{ErrorKind, testing::Harness};
use weir_testenv::ControlPlane;

/// What the container "wrote": 50 numbered lines.
fn written() -> String {
    (1..=50).map(|n| format!("line {n:02} of the container's output\n")).collect()
}

/// A kubelet's log endpoint on loopback: answers each request with the lines it asks for
/// (`tailLines`, `limitBytes`) and records the request's path and query.
async fn kubelet(asked: Arc<Mutex<Vec<String>>>) -> Result<u16> {
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])?.self_signed(&key)?;
    let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, asked) = (acceptor.clone(), Arc::clone(&asked));
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                let mut request = Vec::new();
                let mut buffer = [0_u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request).into_owned();
                let target = request.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let query = |name: &str| {
                    target
                        .split_once('?')
                        .and_then(|(_, q)| {
                            q.split('&').find_map(|pair| pair.strip_prefix(&format!("{name}=")))
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                };
                let lines: Vec<String> = written().lines().map(|l| format!("{l}\n")).collect();
                let tail = query("tailLines").unwrap_or(lines.len()).min(lines.len());
                let mut body = lines[lines.len() - tail..].concat();
                body.truncate(query("limitBytes").unwrap_or(usize::MAX).min(body.len()));
                asked.lock().unwrap_or_else(PoisonError::into_inner).push(target);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_last_lines_a_container_wrote_through_its_kubelet() -> Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let namespace = plane.namespace("logs").await?;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let port = kubelet(Arc::clone(&asked)).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node =
        serde_json::from_value(json!({ "metadata": { "name": format!("{namespace}-node") } }))?;
    nodes.create(&PostParams::default(), &node).await?;
    let status = json!({ "status": {
        "addresses": [{ "type": "InternalIP", "address": "127.0.0.1" }],
        "daemonEndpoints": { "kubeletEndpoint": { "Port": port } } } });
    nodes
        .patch_status(&format!("{namespace}-node"), &PatchParams::default(), &Patch::Merge(status))
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod: Pod = serde_json::from_value(json!({ "metadata": { "name": "web" }, "spec": {
        "nodeName": format!("{namespace}-node"),
        "containers": [{ "name": "main", "image": "nginx" }, { "name": "sidecar", "image": "envoy" }] } }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let settings = |extra: Value| {
        let mut settings = json!({ "namespace": namespace, "kubeconfig": plane.kubeconfig().display().to_string() });
        for (key, value) in extra.as_object().into_iter().flatten() {
            settings[key] = value.clone();
        }
        settings
    };
    let send = |settings: Value, message: Value| async move {
        let node = Harness::build::<PodLogs>(&settings)?;
        node.send("in", message).await?;
        Ok::<Value, weir_sdk::NodeError>(
            node.emitted().pop().map(|e| e.message).unwrap_or_default(),
        )
    };

    let logs = send(
        settings(json!({ "tailLines": 3, "since": "10m" })),
        json!({ "name": "web", "container": "main" }),
    )
    .await?;
    let last: String = written().lines().skip(47).map(|l| format!("{l}\n")).collect();
    ensure!(
        logs == json!({ "namespace": namespace, "pod": "web", "container": "main", "text": last, "truncated": false }),
        "{logs}"
    );
    let first =
        asked.lock().unwrap_or_else(PoisonError::into_inner).first().cloned().unwrap_or_default();
    let (path, query) = first.split_once('?').unwrap_or((&first, ""));
    ensure!(path == format!("/containerLogs/{namespace}/web/main"), "{first}");
    let mut query: Vec<&str> = query.split('&').collect();
    query.sort_unstable();
    ensure!(query == ["limitBytes=65536", "sinceSeconds=600", "tailLines=3"], "{first}");

    // All of it, cut at the byte limit; the container from the settings.
    let logs = send(
        settings(json!({ "tailLines": 0, "limitBytes": 1024, "container": "sidecar" })),
        json!({ "name": "web" }),
    )
    .await?;
    ensure!(
        logs["text"].as_str().map(str::len) == Some(1024) && logs["truncated"] == true,
        "{logs}"
    );
    ensure!(logs["container"] == "sidecar", "{logs}");

    // A pod of two containers needs one named; the apiserver says so.
    let err =
        send(settings(json!({})), json!({ "name": "web" })).await.expect_err("which container");
    ensure!(
        err.kind() == ErrorKind::Invalid
            && err.message().contains("a container name must be specified"),
        "{err}"
    );
    Ok(())
}
