//! Copying a ~1 GiB, 8-layer image between two local registries (Debian's docker-registry),
//! Weir's copier and skopeo side by side in one run, then copying it again unchanged. Run with
//! `cargo bench -p weir-distribution --bench copy`; results are recorded in
//! docs/benchmarks.md.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::stream;
use sha2::{Digest as _, Sha256};
use weir_distribution::{
    client::{Manifest, Registry, sha256},
    copy::{Copier, Side},
};

const LAYERS: usize = 8;
const LAYER_BYTES: usize = 128 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

/// The chunks of layer `index`: the same pseudo-random bytes every time they are made, so a
/// layer can be hashed and then uploaded without ever being held whole.
fn chunks(index: usize) -> impl Iterator<Item = Bytes> {
    let mut rng = fastrand::Rng::with_seed(index as u64 + 1);
    (0..LAYER_BYTES / CHUNK).map(move |_| {
        let mut chunk = vec![0_u8; CHUNK];
        rng.fill(&mut chunk);
        Bytes::from(chunk)
    })
}

fn layer_digest(index: usize) -> String {
    let mut hasher = Sha256::new();
    for chunk in chunks(index) {
        hasher.update(&chunk);
    }
    format!("sha256:{}", hasher.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

async fn push_big_image(registry: &Registry) -> Manifest {
    let mut layers = Vec::new();
    for index in 0..LAYERS {
        let digest = layer_digest(index);
        let body = stream::iter(chunks(index).map(Ok));
        registry
            .put_blob("bench/big", &digest, Some(LAYER_BYTES as u64), body)
            .await
            .expect("push a layer");
        layers.push(serde_json::json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": LAYER_BYTES }));
    }
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let config_digest = sha256(&config);
    let size = config.len() as u64;
    registry
        .put_blob("bench/big", &config_digest, Some(size), stream::iter([Ok(config)]))
        .await
        .expect("push the config");
    let bytes = Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": size },
            "layers": layers,
        }))
        .expect("json"),
    );
    let manifest = Manifest {
        digest: sha256(&bytes),
        bytes,
        media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
    };
    registry.put_manifest("bench/big", "1", &manifest).await.expect("push the manifest");
    manifest
}

/// The most memory this process has held, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// The CPU time this process has used, user and system.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |at: usize| fields.get(at).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime, fields 14 and 15 of the whole line; clock ticks are 100 per second on
    // Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// Waits until the disk has written what earlier steps left in the page cache, so one step's
/// writeback does not slow the next.
fn sync() {
    let _ = Command::new("sync").status();
}

/// Starts the peak over from the current RSS (Linux 4.0 and later), so the next
/// [`peak_rss_mib`] covers only what follows.
// A benchmark reports on the terminal.
#[allow(clippy::print_stderr)]
fn reset_peak_rss() {
    if let Err(err) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset the peak RSS, so it covers the whole run: {err}");
    }
}

fn mib_per_second(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1024.0 / 1024.0 / took.as_secs_f64()
}

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let copier = Copier::default();
    let source_registry = weir_testregistry::start_registry().await.expect("a source registry");
    let skopeo_target =
        weir_testregistry::start_registry().await.expect("a target registry for skopeo");
    let source = Registry::new(&source_registry.host, true).expect("a client");
    let started = Instant::now();
    let image = push_big_image(&source).await;
    let total = (LAYERS * LAYER_BYTES) as u64;
    println!(
        "pushed a {} MiB image in {:.1?}; peak RSS so far {:.0} MiB",
        total / 1024 / 1024,
        started.elapsed(),
        peak_rss_mib()
    );

    // The destination's upload ceiling: the same layers pushed from memory, all at once, into
    // a registry of their own. It is taken in turns with Weir's copy, three rounds, each on
    // fresh registries after the disk caught up (`sync`), as the ceiling varies from round to
    // round with the disk's writeback.
    let digests: Vec<String> = (0..LAYERS).map(layer_digest).collect();
    let mut shares = Vec::new();
    let mut last = None;
    for round in 1..=3 {
        sync();
        let ceiling_registry =
            weir_testregistry::start_registry().await.expect("a registry for the ceiling");
        let ceiling = Registry::new(&ceiling_registry.host, true).expect("a client");
        let started = Instant::now();
        futures::future::try_join_all((0..LAYERS).map(|index| {
            let (ceiling, digest) = (ceiling.clone(), digests[index].clone());
            async move {
                let body = stream::iter(chunks(index).map(Ok));
                ceiling.put_blob("bench/ceiling", &digest, Some(LAYER_BYTES as u64), body).await
            }
        }))
        .await
        .expect("the ceiling upload");
        let ceiling_rate = mib_per_second(total, started.elapsed());
        drop(ceiling_registry);

        sync();
        let weir_target =
            weir_testregistry::start_registry().await.expect("a target registry for weir");
        let target = Registry::new(&weir_target.host, true).expect("a client");
        let from = Side { registry: &source, repository: "bench/big" };
        let to = Side { registry: &target, repository: "bench/big" };
        reset_peak_rss();
        let (started, cpu_before) = (Instant::now(), cpu_seconds());
        let report = copier.copy(from, "1", to, "1").await.expect("the copy");
        let (took, cpu) = (started.elapsed(), cpu_seconds() - cpu_before);
        assert_eq!(report.digest, image.digest);
        let rate = mib_per_second(report.bytes_moved, took);
        shares.push(rate / ceiling_rate);
        println!(
            "round {round}: upload ceiling {ceiling_rate:.0} MiB/s; weir copy {took:.2?}, {rate:.0} MiB/s ({:.0} % of the ceiling), {} blobs uploaded, {cpu:.2} s of CPU, peak RSS during the copy {:.0} MiB",
            100.0 * rate / ceiling_rate,
            report.blobs_uploaded,
            peak_rss_mib()
        );
        last = Some((weir_target, target));
    }
    shares.sort_by(f64::total_cmp);
    println!("weir copy: median share of the upload ceiling {:.0} %", 100.0 * shares[1]);
    let (weir_target, target) = last.expect("three rounds");
    let from = Side { registry: &source, repository: "bench/big" };
    let to = Side { registry: &target, repository: "bench/big" };

    let answered = || source_registry.requests_answered() + weir_target.requests_answered();
    let (requests_before, answered_before) = (source.requests() + target.requests(), answered());
    let started = Instant::now();
    let again = copier.copy(from, "1", to, "1").await.expect("the copy again");
    assert!(!again.changed);
    println!(
        "weir copy again, unchanged: {:.1?}, {} requests sent, {} answered by the registries",
        started.elapsed(),
        source.requests() + target.requests() - requests_before,
        answered() - answered_before,
    );

    for round in ["skopeo copy", "skopeo copy again, unchanged"] {
        sync();
        let answered = || source_registry.requests_answered() + skopeo_target.requests_answered();
        let answered_before = answered();
        let started = Instant::now();
        let output = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .args(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .arg(format!("docker://{}/bench/big:1", source_registry.host))
            .arg(format!("docker://{}/bench/big:1", skopeo_target.host))
            .output()
            .expect("skopeo (apt install skopeo)");
        let took = started.elapsed();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let peak_kib: f64 =
            stderr.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0.0);
        // The registries write their log as they answer; give the last lines a moment.
        tokio::time::sleep(Duration::from_millis(200)).await;
        println!(
            "{round}: {took:.2?}, {:.0} MiB/s, peak RSS {:.0} MiB, {} requests answered by the registries",
            mib_per_second(total, took),
            peak_kib / 1024.0,
            answered() - answered_before
        );
    }
}
