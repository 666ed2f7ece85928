//! Weir's copier and skopeo side by side in one run, between local registries (Debian's
//! docker-registry on loopback): a ~1 GiB, 8-layer image over plain HTTP, in three rounds taken
//! in turns with the destination's upload ceiling, then again unchanged; the same image with
//! TLS and Bearer tokens on both sides; and 50 small images sharing a base layer. Run with
//! `bench/copy.sh`, which installs skopeo and the registry first; results are recorded in
//! docs/benchmarks.md.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use sha2::{Digest as _, Sha256};
use weir_distribution::{
    auth::Credentials,
    client::{Manifest, Options, Registry, sha256},
    copy::{Copier, CopyReport, Side},
};
use weir_testregistry::LocalRegistry;

/// The `weir` binary's allocator (engine/src/main.rs), which the copier runs with in a module
/// process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LAYERS: usize = 8;
const LAYER_BYTES: usize = 128 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;
/// How many small images the many-images run copies.
const SMALL_IMAGES: usize = 50;
/// How many of them Weir copies at once, as the image mirror sends them.
const SMALL_AT_ONCE: usize = 4;

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
    let (user, system) = cpu_times();
    user + system
}

/// The bench process's CPU seconds in user space and in the kernel, so far.
fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |at: usize| fields.get(at).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime, fields 14 and 15 of the whole line; clock ticks are 100 per second on
    // Linux.
    (ticks(11) / 100.0, ticks(12) / 100.0)
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

/// The middle of three or more figures.
fn median(mut figures: Vec<f64>) -> f64 {
    figures.sort_by(f64::total_cmp);
    figures[figures.len() / 2]
}

/// What one skopeo run took, as `/usr/bin/time` saw it.
struct Skopeo {
    took: Duration,
    cpu: f64,
    peak_mib: f64,
}

/// Runs `skopeo` with `args` and waits for it; it must succeed.
async fn skopeo(args: &[String]) -> Skopeo {
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%U %S %M", "skopeo"])
        .args(args)
        .output()
        .expect("skopeo (apt install skopeo)");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let figures: Vec<f64> = stderr
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .map(|figure| figure.parse().unwrap_or(0.0))
        .collect();
    let [user, system, peak_kib] = figures[..] else { panic!("no times from skopeo: {stderr}") };
    // The registries write their log as they answer; give the last lines a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Skopeo { took, cpu: user + system, peak_mib: peak_kib / 1024.0 }
}

/// Each HTTP method and how many requests with it `registries` answered, from their logs.
fn by_method(registries: &[&LocalRegistry]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for registry in registries {
        for (method, count) in registry.requests_by_method() {
            *counts.entry(method).or_insert(0) += count;
        }
    }
    counts
}

/// The requests answered between two [`by_method`] counts, as `GET 3, HEAD 5`, with the total.
fn answered_since(
    before: &std::collections::BTreeMap<String, usize>,
    after: &std::collections::BTreeMap<String, usize>,
) -> String {
    let mut total = 0;
    let mut parts = Vec::new();
    for (method, count) in after {
        let count = count - before.get(method).copied().unwrap_or(0);
        if count > 0 {
            total += count;
            parts.push(format!("{method} {count}"));
        }
    }
    format!("{total} ({})", parts.join(", "))
}

// Printing the numbers is what a benchmark is for.
#[allow(clippy::print_stdout)]
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let source_registry = weir_testregistry::start_registry().await.expect("a source registry");
    let source = Registry::new(&source_registry.host, true).expect("a client");
    let started = Instant::now();
    let image = push_big_image(&source).await;
    println!(
        "pushed a {} MiB image in {:.1?}; peak RSS so far {:.0} MiB",
        LAYERS * LAYER_BYTES / 1024 / 1024,
        started.elapsed(),
        peak_rss_mib()
    );
    big_image(&source_registry, &source, &image).await;
    tls_with_tokens(&source, &image).await;
    many_small_images(&source_registry, &source).await;
}

/// The 1 GiB image over plain HTTP: Weir in three rounds against the destination's upload
/// ceiling, then skopeo, then each again unchanged.
#[allow(clippy::print_stdout)]
async fn big_image(source_registry: &LocalRegistry, source: &Registry, image: &Manifest) {
    let copier = Copier::default();
    let total = (LAYERS * LAYER_BYTES) as u64;
    // The destination's upload ceiling: the same layers pushed from memory, all at once, into
    // a registry of their own. It is taken in turns with Weir's copy, three rounds, each on
    // fresh registries after the disk caught up (`sync`), as the ceiling varies from round to
    // round with the disk's writeback.
    let digests: Vec<String> = (0..LAYERS).map(layer_digest).collect();
    let (mut shares, mut rates, mut cpus) = (Vec::new(), Vec::new(), Vec::new());
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
        let from = Side { registry: source, repository: "bench/big" };
        let to = Side { registry: &target, repository: "bench/big" };
        reset_peak_rss();
        let (started, (user_before, system_before)) = (Instant::now(), cpu_times());
        let report = copier.copy(from, "1", to, "1").await.expect("the copy");
        let took = started.elapsed();
        let (user, system) = cpu_times();
        let (user, system) = (user - user_before, system - system_before);
        let cpu = user + system;
        assert_eq!(report.digest, image.digest);
        let rate = mib_per_second(report.bytes_moved, took);
        shares.push(rate / ceiling_rate);
        rates.push(rate);
        cpus.push(cpu);
        println!(
            "round {round}: upload ceiling {ceiling_rate:.0} MiB/s; weir copy {took:.2?}, {rate:.0} MiB/s ({:.0} % of the ceiling), {} blobs uploaded, {cpu:.2} s of CPU ({user:.2} in user space, {system:.2} in the kernel), peak RSS during the copy {:.0} MiB",
            100.0 * rate / ceiling_rate,
            report.blobs_uploaded,
            peak_rss_mib()
        );
        last = Some((weir_target, target));
    }
    println!(
        "weir copy, median of the 3 rounds: {:.0} % of the upload ceiling, {:.0} MiB/s, {:.2} s of CPU",
        100.0 * median(shares),
        median(rates),
        median(cpus)
    );
    let (weir_target, target) = last.expect("three rounds");
    let from = Side { registry: source, repository: "bench/big" };
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

    let skopeo_target =
        weir_testregistry::start_registry().await.expect("a target registry for skopeo");
    for round in ["skopeo copy", "skopeo copy again, unchanged"] {
        sync();
        let answered = || source_registry.requests_answered() + skopeo_target.requests_answered();
        let answered_before = answered();
        let run = skopeo(&[
            "copy".to_owned(),
            "--src-tls-verify=false".to_owned(),
            "--dest-tls-verify=false".to_owned(),
            format!("docker://{}/bench/big:1", source_registry.host),
            format!("docker://{}/bench/big:1", skopeo_target.host),
        ])
        .await;
        println!(
            "{round}: {:.2?}, {:.0} MiB/s, {:.2} s of CPU, peak RSS {:.0} MiB, {} requests answered by the registries",
            run.took,
            mib_per_second(total, run.took),
            run.cpu,
            run.peak_mib,
            answered() - answered_before
        );
    }
}

/// The 1 GiB image between two registries that serve HTTPS with a certificate of a test CA and
/// take Bearer tokens from a token service of their own (the distribution token flow, with
/// `tester` / `s3cret`), Weir and then skopeo.
#[allow(clippy::print_stdout)]
async fn tls_with_tokens(plain: &Registry, image: &Manifest) {
    let tokens = weir_testregistry::start_token_service().await.expect("a token service");
    let (ca, certificate, key) = weir_testregistry::tls_files().expect("a test CA");
    let start = || weir_testregistry::start_tls_registry_with_tokens(&tokens, &certificate, &key);
    let tls_source = start().await.expect("a TLS source registry");
    let weir_target = start().await.expect("a TLS target registry for weir");
    let skopeo_target = start().await.expect("a TLS target registry for skopeo");
    let options = Options { ca_pem: Some(ca.clone()), ..Options::default() };
    let login = Credentials { username: "tester".to_owned(), password: "s3cret".to_owned() };
    let client = |registry: &LocalRegistry| {
        Registry::with_options(&registry.host, &options)
            .expect("a client")
            .with_credentials(Some(login.clone()))
    };
    let (source, target) = (client(&tls_source), client(&weir_target));
    let copier = Copier::default();
    copier
        .copy(
            Side { registry: plain, repository: "bench/big" },
            "1",
            Side { registry: &source, repository: "bench/big" },
            "1",
        )
        .await
        .expect("the image onto the TLS source");

    sync();
    let registries = [&tls_source, &weir_target];
    let (answered_before, issued_before) =
        (by_method(&registries), tokens.issued.load(std::sync::atomic::Ordering::Relaxed));
    let requests_before = source.requests() + target.requests();
    reset_peak_rss();
    let (started, cpu_before) = (Instant::now(), cpu_seconds());
    let from = Side { registry: &source, repository: "bench/big" };
    let report = copier
        .copy(from, "1", Side { registry: &target, repository: "bench/big" }, "1")
        .await
        .expect("the copy over TLS");
    let (took, cpu) = (started.elapsed(), cpu_seconds() - cpu_before);
    assert_eq!(report.digest, image.digest);
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!(
        "TLS and tokens on both sides: weir copy {took:.2?}, {:.0} MiB/s, {cpu:.2} s of CPU, peak RSS during the copy {:.0} MiB, {} requests sent ({} tokens fetched), {} answered by the registries",
        mib_per_second(report.bytes_moved, took),
        peak_rss_mib(),
        source.requests() + target.requests() - requests_before,
        tokens.issued.load(std::sync::atomic::Ordering::Relaxed) - issued_before,
        answered_since(&answered_before, &by_method(&registries)),
    );

    sync();
    let certificates = tempfile::tempdir().expect("a directory for the CA");
    std::fs::write(certificates.path().join("ca.crt"), &ca).expect("the CA written");
    let certificates = certificates.path().display().to_string();
    let registries = [&tls_source, &skopeo_target];
    let (answered_before, issued_before) =
        (by_method(&registries), tokens.issued.load(std::sync::atomic::Ordering::Relaxed));
    let run = skopeo(&[
        "copy".to_owned(),
        format!("--src-cert-dir={certificates}"),
        format!("--dest-cert-dir={certificates}"),
        "--src-creds=tester:s3cret".to_owned(),
        "--dest-creds=tester:s3cret".to_owned(),
        format!("docker://{}/bench/big:1", tls_source.host),
        format!("docker://{}/bench/big:1", skopeo_target.host),
    ])
    .await;
    println!(
        "TLS and tokens on both sides: skopeo copy {:.2?}, {:.0} MiB/s, {:.2} s of CPU, peak RSS {:.0} MiB, {} tokens fetched, {} requests answered by the registries",
        run.took,
        mib_per_second(report.bytes_moved, run.took),
        run.cpu,
        run.peak_mib,
        tokens.issued.load(std::sync::atomic::Ordering::Relaxed) - issued_before,
        answered_since(&answered_before, &by_method(&registries)),
    );
}

/// [`SMALL_IMAGES`] images of three layers, the first one shared by all, each in a repository of
/// its own: Weir copies them [`SMALL_AT_ONCE`] at a time with one copier, skopeo with one
/// `skopeo sync`.
#[allow(clippy::print_stdout)]
async fn many_small_images(source_registry: &LocalRegistry, source: &Registry) {
    let base = weir_testregistry::random_bytes(2 << 20);
    let repositories: Vec<String> =
        (0..SMALL_IMAGES).map(|index| format!("bench/small-{index:02}")).collect();
    for repository in &repositories {
        let layers = [
            base.clone(),
            weir_testregistry::random_bytes(256 << 10),
            weir_testregistry::random_bytes(64 << 10),
        ];
        let manifest = weir_testregistry::push_image(source, repository, &layers, false, "amd64")
            .await
            .expect("a small image");
        source.put_manifest(repository, "1", &manifest).await.expect("its tag");
    }

    sync();
    let weir_target = weir_testregistry::start_registry().await.expect("a target for weir");
    let target = Registry::new(&weir_target.host, true).expect("a client");
    let registries = [source_registry, &weir_target];
    let answered_before = by_method(&registries);
    let requests_before = source.requests() + target.requests();
    let copier = Copier::default();
    let (started, cpu_before) = (Instant::now(), cpu_seconds());
    let reports: Vec<CopyReport> = stream::iter(&repositories)
        .map(|repository| {
            let from = Side { registry: source, repository };
            copier.copy(from, "1", Side { registry: &target, repository }, "1")
        })
        .buffer_unordered(SMALL_AT_ONCE)
        .try_collect()
        .await
        .expect("the small copies");
    let (took, cpu) = (started.elapsed(), cpu_seconds() - cpu_before);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sum = |count: fn(&CopyReport) -> usize| reports.iter().map(count).sum::<usize>();
    println!(
        "{SMALL_IMAGES} small images, {SMALL_AT_ONCE} at a time: weir {took:.2?}, {cpu:.2} s of CPU, {} requests sent, {} answered by the registries; {} blobs uploaded, {} mounted, {} MiB moved",
        source.requests() + target.requests() - requests_before,
        answered_since(&answered_before, &by_method(&registries)),
        sum(|report| report.blobs_uploaded),
        sum(|report| report.blobs_mounted),
        reports.iter().map(|report| report.bytes_moved).sum::<u64>() / 1024 / 1024,
    );

    sync();
    let skopeo_target = weir_testregistry::start_registry().await.expect("a target for skopeo");
    let listed = tempfile::NamedTempFile::new().expect("a file for skopeo's list");
    let images: String =
        repositories.iter().map(|repository| format!("    {repository}: [\"1\"]\n")).collect();
    let list = format!("{}:\n  tls-verify: false\n  images:\n{images}", source_registry.host);
    std::fs::write(listed.path(), list).expect("skopeo's list written");
    let registries = [source_registry, &skopeo_target];
    let answered_before = by_method(&registries);
    let run = skopeo(&[
        "sync".to_owned(),
        "--src=yaml".to_owned(),
        "--dest=docker".to_owned(),
        "--dest-tls-verify=false".to_owned(),
        listed.path().display().to_string(),
        format!("{}/bench", skopeo_target.host),
    ])
    .await;
    let answered = answered_since(&answered_before, &by_method(&registries));
    let copied = Registry::new(&skopeo_target.host, true).expect("a client");
    for repository in &repositories {
        let found = copied.manifest_digest(repository, "1").await.expect("a HEAD");
        assert!(found.is_some(), "skopeo sync did not copy {repository}");
    }
    println!(
        "{SMALL_IMAGES} small images: skopeo sync {:.2?}, {:.2} s of CPU, peak RSS {:.0} MiB, {answered} requests answered by the registries",
        run.took, run.cpu, run.peak_mib,
    );
}
