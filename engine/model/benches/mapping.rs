//! A mapping over a Pod, as a resource watch hands one on: the common shapes evaluated on the
//! message itself, beside the same values asked of jaq (written as `… as $v | $v`, outside
//! those shapes), which first converts the whole Pod into its own values. Run with
//! `cargo bench -p weir-model --bench mapping`; results are recorded in docs/benchmarks.md.

use std::time::Instant;

use serde_json::{Value, json};
use weir_model::mapping::Mapping;

const WARMUP: u32 = 2_000;
const ROUNDS: u32 = 50_000;

/// On a thread with the stack the `weir` binary gives its workers, where jq evaluates in place
/// (elsewhere each evaluation would first make itself a stack).
fn main() {
    std::thread::Builder::new()
        .stack_size(weir_model::mapping::THREAD_STACK)
        .spawn(measure)
        .expect("a thread")
        .join()
        .expect("the benchmark ran");
}

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
fn measure() {
    let pod = pod();
    println!("a Pod of {} bytes of JSON", pod.to_string().len());
    let direct = json!({
        "name": "{{ .metadata.name }}",
        "namespace": "{{ .metadata.namespace }}",
        "restarts": "{{ .status.containerStatuses[0].restartCount + 0 }}",
        "failed": "{{ .status.phase == \"Failed\" }}",
    });
    let through_jaq = json!({
        "name": "{{ .metadata.name as $v | $v }}",
        "namespace": "{{ .metadata.namespace as $v | $v }}",
        "restarts": "{{ .status.containerStatuses[0].restartCount as $v | $v + 0 }}",
        "failed": "{{ .status.phase as $v | $v == \"Failed\" }}",
    });
    let mut answers = Vec::new();
    for (label, document) in [("common shapes", direct), ("through jaq", through_jaq)] {
        let mapping = Mapping::compile(&document).expect("the mapping compiles");
        for _ in 0..WARMUP {
            mapping.evaluate(&pod, &Value::Null).expect("it evaluates");
        }
        let started = Instant::now();
        let mut answer = Value::Null;
        for _ in 0..ROUNDS {
            answer = mapping.evaluate(&pod, &Value::Null).expect("it evaluates");
        }
        let each = started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
        println!("{label}: {each:.2} µs a mapping ({ROUNDS} rounds; {answer})");
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1], "both ways give the same value");
}

/// A Pod as the apiserver returns it: managed fields, a container with its environment and
/// mounts, conditions and a container's status.
fn pod() -> Value {
    let env: Vec<Value> = (0..12)
        .map(|i| json!({ "name": format!("SETTING_{i}"), "value": format!("value-{i}") }))
        .collect();
    let conditions: Vec<Value> = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
        .iter()
        .map(|kind| json!({ "type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-12-07T09:00:00Z" }))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d9f8b6c5-x2x9q",
            "generateName": "web-7d9f8b6c5-",
            "namespace": "shop",
            "uid": "6f0c1e8a-2b1d-4c3e-9f5a-7b8c9d0e1f2a",
            "resourceVersion": "123456",
            "creationTimestamp": "2026-12-07T09:00:00Z",
            "labels": { "app": "web", "pod-template-hash": "7d9f8b6c5", "tier": "frontend" },
            "annotations": { "kubectl.kubernetes.io/restartedAt": "2026-12-07T08:59:00Z" },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8b6c5",
                "uid": "1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d", "controller": true,
                "blockOwnerDeletion": true,
            }],
            "managedFields": [{
                "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                "time": "2026-12-07T09:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": { "f:metadata": { "f:generateName": {}, "f:labels": { ".": {}, "f:app": {} } } },
            }],
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "docker.io/library/nginx:1.27",
                "ports": [{ "containerPort": 80, "protocol": "TCP" }],
                "env": env,
                "resources": { "requests": { "cpu": "100m", "memory": "128Mi" } },
                "volumeMounts": [{ "name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true }],
                "terminationMessagePath": "/dev/termination-log",
                "imagePullPolicy": "IfNotPresent",
            }],
            "restartPolicy": "Always",
            "serviceAccountName": "default",
            "nodeName": "node-1",
            "volumes": [{ "name": "kube-api-access-abcde", "projected": { "sources": [{ "serviceAccountToken": { "expirationSeconds": 3607, "path": "token" } }] } }],
        },
        "status": {
            "phase": "Running",
            "conditions": conditions,
            "hostIP": "10.0.0.4",
            "podIP": "10.244.1.17",
            "startTime": "2026-12-07T09:00:00Z",
            "containerStatuses": [{
                "name": "web", "ready": true, "restartCount": 3, "started": true,
                "image": "docker.io/library/nginx:1.27",
                "imageID": "docker.io/library/nginx@sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
                "containerID": "containerd://4b825dc642cb6eb9a060e54bf8d69288fbee4904",
                "state": { "running": { "startedAt": "2026-12-07T09:00:02Z" } },
            }],
        },
    })
}
