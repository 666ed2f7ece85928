//! Copies between two real registries (Debian's docker-registry 2.8) on loopback: single
//! manifests and multi-platform indexes in both the OCI and the Docker media types arrive
//! byte-exact under the same digests, shared blobs are skipped, and copying again changes
//! nothing.

use anyhow::{Result, ensure};
use serde_json::json;
use weir_distribution::{
    client::{Manifest, Registry},
    copy::{Copier, Side},
};
use weir_testregistry::{
    push_image, push_index, random_bytes, start_registry, start_registry_with_password,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_indexes_arrive_byte_exact_and_copying_again_changes_nothing() -> Result<()> {
    let copier = Copier::default();
    let (source_registry, target_registry) = (start_registry().await?, start_registry().await?);
    let source = Registry::new(&source_registry.host, true)?;
    let target = Registry::new(&target_registry.host, true)?;
    let shared = random_bytes(300_000);

    // A single OCI manifest with two layers.
    let single =
        push_image(&source, "acme/app", &[shared.clone(), random_bytes(200_000)], false, "amd64")
            .await?;
    source.put_manifest("acme/app", "1.0", &single).await?;
    let from = Side { registry: &source, repository: "acme/app" };
    let to = Side { registry: &target, repository: "mirror/acme/app" };
    let report = copier.copy(from, "1.0", to, "1.0").await?;
    ensure!(report.digest == single.digest && report.changed, "{report:?}");
    ensure!(
        (report.blobs_uploaded, report.blobs_skipped, report.manifests_written) == (3, 0, 1),
        "{report:?}"
    );
    ensure!(report.bytes_moved >= 500_000, "{report:?}");
    let copied = target.manifest("mirror/acme/app", "1.0").await?;
    ensure!(copied.bytes == single.bytes && copied.digest == single.digest, "byte-exact");

    let again = copier.copy(from, "1.0", to, "1.0").await?;
    ensure!(
        !again.changed && again.manifests_written == 0 && again.digest == single.digest,
        "{again:?}"
    );

    // Multi-platform indexes in both media type families, children copied by digest.
    for (docker, index_type, repository) in [
        (false, "application/vnd.oci.image.index.v1+json", "acme/multi-oci"),
        (true, "application/vnd.docker.distribution.manifest.list.v2+json", "acme/multi-docker"),
    ] {
        let amd = push_image(
            &source,
            repository,
            &[shared.clone(), random_bytes(100_000)],
            docker,
            "amd64",
        )
        .await?;
        let arm =
            push_image(&source, repository, &[random_bytes(100_000)], docker, "arm64").await?;
        let index =
            push_index(&source, repository, "2.0", &[(&amd, "amd64"), (&arm, "arm64")], docker)
                .await?;

        let to = Side { registry: &target, repository };
        let report = copier.copy(Side { registry: &source, repository }, "2.0", to, "2.0").await?;
        ensure!(
            report.digest == index.digest && report.manifests_written == 3,
            "{repository}: {report:?}"
        );
        let copied = target.manifest(repository, "2.0").await?;
        ensure!(
            copied.bytes == index.bytes && copied.media_type == index_type,
            "{repository}: the index is byte-exact"
        );
        for child in [&amd, &arm] {
            let copied = target.manifest(repository, &child.digest).await?;
            ensure!(
                copied.bytes == child.bytes && copied.media_type == child.media_type,
                "{repository}: every platform arrives"
            );
        }
    }

    // In another repository of the target, blobs it holds elsewhere (the shared layer, and the
    // arm64 config the index copies brought) are mounted, not uploaded again.
    let other =
        push_image(&source, "acme/app", &[shared.clone(), random_bytes(40_000)], false, "arm64")
            .await?;
    source.put_manifest("acme/app", "0.9", &other).await?;
    let before = target.requests();
    let report = copier
        .copy(from, "0.9", Side { registry: &target, repository: "mirror/elsewhere" }, "0.9")
        .await?;
    ensure!(report.blobs_mounted == 2 && report.blobs_uploaded == 1, "{report:?}");
    ensure!(target.requests() > before, "the target was asked");
    ensure!(
        target.manifest("mirror/elsewhere", "0.9").await?.bytes == other.bytes,
        "complete after the mount"
    );

    // Within one repository, blobs the target has already (the same config, the shared layer)
    // are skipped.
    let next =
        push_image(&source, "acme/app", &[shared.clone(), random_bytes(50_000)], false, "amd64")
            .await?;
    source.put_manifest("acme/app", "1.1", &next).await?;
    let report = copier
        .copy(from, "1.1", Side { registry: &target, repository: "mirror/acme/app" }, "1.1")
        .await?;
    ensure!(report.blobs_skipped == 2 && report.blobs_uploaded == 1, "{report:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_a_permanent_error_naming_it() -> Result<()> {
    let copier = Copier::default();
    let registry = start_registry().await?;
    let client = Registry::new(&registry.host, true)?;
    let side = Side { registry: &client, repository: "acme/none" };
    let err = copier
        .copy(side, "1.0", Side { registry: &client, repository: "mirror/none" }, "1.0")
        .await
        .expect_err("nothing to copy");
    ensure!(!err.is_transient(), "{err}");
    ensure!(
        err.to_string().starts_with(&format!(
            "GET manifest acme/none:1.0 from {}: the registry answered 404 Not Found",
            registry.host
        )),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_copies_with_basic_credentials_and_pins_the_target_by_digest() -> Result<()> {
    use weir_distribution::registry_copy::RegistryCopy;
    use weir_sdk::{ErrorKind, testing::Harness};

    let (source_registry, target_registry) =
        (start_registry().await?, start_registry_with_password().await?);
    let source = Registry::new(&source_registry.host, true)?;
    let image = push_image(&source, "acme/app", &[random_bytes(100_000)], true, "amd64").await?;
    source.put_manifest("acme/app", "1.0", &image).await?;

    let node = Harness::build::<RegistryCopy>(&json!({}))?;
    node.answer_with(|_, copied| Ok(copied.clone()));
    let request = |password: &str| {
        json!({
            "source": format!("{}/acme/app:1.0", source_registry.host),
            "target": format!("{}/mirror/acme/app:1.0", target_registry.host),
            "targetCredentials": { "username": "tester", "password": password },
            "sourcePlainHttp": true,
            "targetPlainHttp": true,
        })
    };
    let copied = node.send("in", request("s3cret")).await?;
    ensure!(
        copied["target"]
            == format!("{}/mirror/acme/app:1.0@{}", target_registry.host, image.digest),
        "{copied}"
    );
    ensure!(copied["changed"] == true && copied["blobsUploaded"] == 2, "{copied}");
    let again = node.send("in", request("s3cret")).await?;
    ensure!(again["changed"] == false && again["digest"] == image.digest.as_str(), "{again}");
    // What `/metrics` shows of it: the bytes the first copy moved to the mirror, and the
    // answers each registry gave.
    let gauges = node.gauges();
    let series = |name: &str, registry: &str, code: Option<&str>| {
        gauges
            .iter()
            .filter(|(gauge, _)| gauge.name == name)
            .flat_map(|(_, series)| series)
            .find(|(labels, _)| {
                labels.contains(&("registry", registry.to_owned()))
                    && code.is_none_or(|code| labels.contains(&("code", code.to_owned())))
            })
            .map(|(_, value)| *value)
    };
    let moved = series("weir_registry_bytes_moved", &target_registry.host, None);
    ensure!(moved.is_some_and(|bytes| bytes >= 100_000.0), "{gauges:?}");
    ensure!(
        series("weir_registry_requests", &source_registry.host, Some("200"))
            .is_some_and(|n| n >= 1.0),
        "{gauges:?}"
    );
    ensure!(
        series("weir_registry_requests", &target_registry.host, Some("201"))
            .is_some_and(|n| n >= 1.0),
        "{gauges:?}"
    );
    ensure!(
        series("weir_registry_throttled", &target_registry.host, None) == Some(0.0),
        "{gauges:?}"
    );

    // Wrong credentials are permanent: no retry will make them right.
    let err = node.send("in", request("wrong")).await.expect_err("refused");
    ensure!(err.kind() == ErrorKind::Invalid, "{err}");
    ensure!(
        err.message().contains("the registry refused access (the credentials were refused)"),
        "{err}"
    );
    ensure!(!err.message().contains("wrong"), "the password is never quoted: {err}");

    let mut bad = request("s3cret");
    bad["target"] = json!(format!("{}/mirror/acme/app@{}", target_registry.host, image.digest));
    let err = node.send("in", bad.clone()).await.expect_err("a digest target");
    ensure!(err.message().ends_with("must name a tag to copy to, not a digest"), "{err}");
    bad["source"] = json!("Acme/App:1.0");
    let err = node.send("in", bad).await.expect_err("a bad reference");
    ensure!(
        err.message()
            == "in.source: image reference \"Acme/App:1.0\": repository name must be lowercase",
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_fetched_per_scope_kept_and_refused_without_rights() -> Result<()> {
    use std::sync::atomic::Ordering;

    use weir_distribution::{auth::Credentials, client::RegistryError};

    let copier = Copier::default();
    let tokens = weir_testregistry::start_token_service().await?;
    let (source_registry, target_registry) =
        (start_registry().await?, weir_testregistry::start_registry_with_tokens(&tokens).await?);
    let source = Registry::new(&source_registry.host, true)?;
    let image = push_image(
        &source,
        "acme/app",
        &[random_bytes(100_000), random_bytes(50_000)],
        false,
        "amd64",
    )
    .await?;
    source.put_manifest("acme/app", "1.0", &image).await?;

    let tester = Credentials { username: "tester".to_owned(), password: "s3cret".to_owned() };
    let target = Registry::new(&target_registry.host, true)?.with_credentials(Some(tester));
    let from = Side { registry: &source, repository: "acme/app" };
    let to = Side { registry: &target, repository: "mirror/acme/app" };
    let report = copier.copy(from, "1.0", to, "1.0").await?;
    ensure!(report.digest == image.digest && report.blobs_uploaded == 3, "{report:?}");
    let issued = tokens.issued.load(Ordering::Relaxed);
    ensure!(issued == 2, "one token for pull, one for pull and push, each kept: {issued}");
    let copied = target.manifest("mirror/acme/app", "1.0").await?;
    ensure!(copied.bytes == image.bytes, "byte-exact through tokens");

    // Into another repository the blobs are mounted, which needs a token that may also pull
    // from the repository they come from.
    let report = copier
        .copy(from, "1.0", Side { registry: &target, repository: "mirror/again" }, "1.0")
        .await?;
    ensure!(report.blobs_mounted == 3 && report.blobs_uploaded == 0, "{report:?}");

    // Anonymous callers get pull rights only: reading works, writing is refused for good.
    let anonymous = Registry::new(&target_registry.host, true)?;
    ensure!(
        anonymous.manifest_digest("mirror/acme/app", "1.0").await? == Some(image.digest.clone()),
        "anonymous pull"
    );
    let err = copier
        .copy(from, "1.0", Side { registry: &anonymous, repository: "mirror/other" }, "1.0")
        .await
        .expect_err("an anonymous push");
    ensure!(matches!(err, RegistryError::Denied { .. }) && !err.is_transient(), "{err}");

    // Wrong credentials are refused by the token service, once: no retry can make them right.
    let wrong = Credentials { username: "tester".to_owned(), password: "wrong".to_owned() };
    let refused = Registry::new(&target_registry.host, true)?.with_credentials(Some(wrong));
    let err = refused.manifest_digest("mirror/acme/app", "1.0").await.expect_err("wrong");
    ensure!(
        err.to_string()
            .ends_with("the registry refused access (the token service refused the credentials)"),
        "{err}"
    );
    ensure!(refused.requests() == 2, "the request and one token fetch: {}", refused.requests());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_registries_are_trusted_through_their_ca_or_when_told_to_accept_any() -> Result<()> {
    use weir_distribution::registry_copy::RegistryCopy;
    use weir_sdk::testing::Harness;

    let (ca, certificate, key) = weir_testregistry::tls_files()?;
    let (source_registry, tls_registry) =
        (start_registry().await?, weir_testregistry::start_tls_registry(&certificate, &key).await?);
    let source = Registry::new(&source_registry.host, true)?;
    let image = push_image(&source, "acme/app", &[random_bytes(60_000)], false, "amd64").await?;
    source.put_manifest("acme/app", "1.0", &image).await?;
    let node = Harness::build::<RegistryCopy>(&json!({}))?;
    node.answer_with(|_, copied| Ok(copied.clone()));
    let request = |trust: serde_json::Value| {
        let mut request = json!({
            "source": format!("{}/acme/app:1.0", source_registry.host),
            "target": format!("{}/mirror/acme/app:1.0", tls_registry.host),
            "sourcePlainHttp": true,
            "targetCredentials": { "username": "tester", "password": "s3cret" },
        });
        if let (Some(request), Some(trust)) = (request.as_object_mut(), trust.as_object()) {
            request.extend(trust.clone());
        }
        request
    };
    let copied = node.send("in", request(json!({ "targetCa": ca }))).await?;
    ensure!(copied["digest"] == image.digest.as_str() && copied["changed"] == true, "{copied}");
    let err = node.send("in", request(json!({}))).await.expect_err("an unknown CA");
    ensure!(err.message().contains("certificate"), "the failure names the certificate: {err}");
    let copied = node.send("in", request(json!({ "targetInsecure": true }))).await?;
    ensure!(copied["changed"] == false, "{copied}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_copy_byte_exact_between_registries_with_tls_and_tokens() -> Result<()> {
    use weir_distribution::{auth::Credentials, client::Options};

    let tokens = weir_testregistry::start_token_service().await?;
    let (ca, certificate, key) = weir_testregistry::tls_files()?;
    let start = || weir_testregistry::start_tls_registry_with_tokens(&tokens, &certificate, &key);
    let (source_registry, target_registry) = (start().await?, start().await?);
    let options = Options { ca_pem: Some(ca), ..Options::default() };
    let tester = Credentials { username: "tester".to_owned(), password: "s3cret".to_owned() };
    let client = |host: &str| -> Result<Registry> {
        Ok(Registry::with_options(host, &options)?.with_credentials(Some(tester.clone())))
    };
    let (source, target) = (client(&source_registry.host)?, client(&target_registry.host)?);
    let layers = [random_bytes(300_000), random_bytes(100_000)];
    let image = push_image(&source, "acme/app", &layers, false, "amd64").await?;
    source.put_manifest("acme/app", "1.0", &image).await?;
    let from = Side { registry: &source, repository: "acme/app" };
    let to = Side { registry: &target, repository: "mirror/acme/app" };
    let report = Copier::default().copy(from, "1.0", to, "1.0").await?;
    ensure!(report.digest == image.digest && report.blobs_uploaded == 3, "{report:?}");
    let copied = target.manifest("mirror/acme/app", "1.0").await?;
    ensure!(copied.bytes == image.bytes, "byte-exact through TLS and tokens");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_subset_is_a_new_index_reported_with_its_own_digest() -> Result<()> {
    use weir_distribution::{
        client::RegistryError,
        copy::Copier,
        platform::{Platform, Platforms},
        registry_copy::RegistryCopy,
    };
    use weir_sdk::testing::Harness;

    let copier = Copier::default();
    let (source_registry, target_registry) = (start_registry().await?, start_registry().await?);
    let source = Registry::new(&source_registry.host, true)?;
    let target = Registry::new(&target_registry.host, true)?;
    let repository = "acme/multi";
    let mut children = Vec::new();
    for arch in ["amd64", "arm64", "s390x"] {
        children.push(push_image(&source, repository, &[random_bytes(30_000)], true, arch).await?);
    }
    let index = push_index(
        &source,
        repository,
        "3.0",
        &[(&children[0], "amd64"), (&children[1], "arm64"), (&children[2], "s390x")],
        true,
    )
    .await?;
    let only = |names: &[&str]| -> Result<Platforms> {
        Ok(Platforms::Only(names.iter().map(|n| n.parse::<Platform>()).collect::<Result<_, _>>()?))
    };
    let from = Side { registry: &source, repository };
    let to = Side { registry: &target, repository: "mirror/acme/multi" };
    let report = copier
        .copy_platforms(from, "3.0", to, "3.0", &only(&["linux/arm64", "linux/amd64"])?)
        .await?;
    ensure!(report.source_digest == index.digest && report.digest != index.digest, "{report:?}");
    ensure!(
        report.platforms == Some(vec!["linux/amd64".to_owned(), "linux/arm64".to_owned()]),
        "in the index's order: {report:?}"
    );
    ensure!(report.manifests_written == 3, "two platforms and the new index: {report:?}");

    // The new index: the source's entries for those platforms, byte for byte the same JSON,
    // under the media type of the source and the digest reported.
    let copied = target.manifest("mirror/acme/multi", "3.0").await?;
    ensure!(copied.digest == report.digest && copied.media_type == index.media_type, "{copied:?}");
    let entries = |m: &Manifest| -> Result<Vec<serde_json::Value>> {
        let document: serde_json::Value = serde_json::from_slice(&m.bytes)?;
        Ok(document["manifests"].as_array().cloned().unwrap_or_default())
    };
    ensure!(entries(&copied)? == entries(&index)?[..2], "entries kept as they were");
    ensure!(
        target.manifest_digest("mirror/acme/multi", &children[2].digest).await?.is_none(),
        "the platform not chosen stays behind"
    );

    // Again: a HEAD on each side, as the cut-down digest is remembered, then the index read
    // from the target and a HEAD for each of its two platforms, to confirm it.
    let before = source.requests() + target.requests();
    let again = copier
        .copy_platforms(from, "3.0", to, "3.0", &only(&["linux/arm64", "linux/amd64"])?)
        .await?;
    ensure!(!again.changed && again.digest == report.digest, "{again:?}");
    ensure!(again.manifests_verified == 3, "{again:?}");
    ensure!(source.requests() + target.requests() - before == 5, "five requests");

    // Choosing every platform the index serves keeps it whole, under its own digest.
    let whole = copier
        .copy_platforms(
            from,
            "3.0",
            Side { registry: &target, repository: "mirror/whole" },
            "3.0",
            &only(&["linux/amd64", "linux/arm64", "linux/s390x"])?,
        )
        .await?;
    ensure!(whole.digest == index.digest, "{whole:?}");

    // A platform the image does not serve is a permanent error naming what it serves.
    let err = copier
        .copy_platforms(from, "3.0", to, "3.0", &only(&["linux/riscv64"])?)
        .await
        .expect_err("no such platform");
    ensure!(matches!(err, RegistryError::NoPlatform { .. }) && !err.is_transient(), "{err}");
    ensure!(
        err.to_string().ends_with(
            "the image serves none of linux/riscv64 (it serves linux/amd64, linux/arm64, linux/s390x)"
        ),
        "{err}"
    );

    // A single image is checked against its config.
    source.put_manifest(repository, "amd64-only", &children[0]).await?;
    let single = copier
        .copy_platforms(from, "amd64-only", to, "amd64-only", &only(&["linux/amd64"])?)
        .await?;
    ensure!(single.digest == children[0].digest, "{single:?}");
    ensure!(single.platforms == Some(vec!["linux/amd64".to_owned()]), "{single:?}");
    let err = copier
        .copy_platforms(from, "amd64-only", to, "amd64-only", &only(&["linux/arm64"])?)
        .await
        .expect_err("an amd64 image");
    ensure!(err.to_string().ends_with("(it serves linux/amd64)"), "{err}");

    // Through the node: the choice, its report, and a platform that cannot be read.
    let node = Harness::build::<RegistryCopy>(&json!({}))?;
    node.answer_with(|_, copied| Ok(copied.clone()));
    let mut request = json!({
        "source": format!("{}/{repository}:3.0", source_registry.host),
        "target": format!("{}/mirror/node/multi:3.0", target_registry.host),
        "sourcePlainHttp": true,
        "targetPlainHttp": true,
        "platforms": ["linux/s390x"],
    });
    let copied = node.send("in", request.clone()).await?;
    ensure!(
        copied["sourceDigest"] == index.digest.as_str()
            && copied["digest"] != index.digest.as_str()
            && copied["platforms"] == json!(["linux/s390x"]),
        "{copied}"
    );
    request["platforms"] = json!(["linux/s390x", "linux"]);
    let err = node.send("in", request).await.expect_err("a bad platform");
    ensure!(
        err.message()
            == "in.platforms[1]: \"linux\" is not a platform: write os/architecture[/variant], such as linux/arm64",
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_picks_credentials_from_a_pull_secret_as_the_kubelet_would() -> Result<()> {
    use base64::Engine as _;
    use weir_distribution::registry_copy::RegistryCopy;
    use weir_sdk::testing::Harness;

    let (source_registry, target_registry) =
        (start_registry().await?, start_registry_with_password().await?);
    let source = Registry::new(&source_registry.host, true)?;
    let image = push_image(&source, "acme/app", &[random_bytes(20_000)], false, "amd64").await?;
    source.put_manifest("acme/app", "1.0", &image).await?;
    let node = Harness::build::<RegistryCopy>(&json!({}))?;
    node.answer_with(|_, copied| Ok(copied.clone()));
    let host = &target_registry.host;
    let request = |repository: &str, credentials: serde_json::Value| {
        json!({
            "source": format!("{}/acme/app:1.0", source_registry.host),
            "target": format!("{host}/{repository}:1.0"),
            "targetCredentials": credentials,
            "sourcePlainHttp": true,
            "targetPlainHttp": true,
        })
    };
    // As secret_get gives them: the login for the host's `mirror` path is more specific than
    // the one for the whole host, whose password is wrong.
    let registries = json!({ "registries": [
        { "registry": "ghcr.io", "username": "other", "password": "other" },
        { "registry": host, "username": "tester", "password": "wrong" },
        { "registry": format!("{host}/mirror"), "username": "tester", "password": "s3cret" },
    ]});
    let copied = node.send("in", request("mirror/acme/app", registries.clone())).await?;
    ensure!(copied["digest"] == image.digest.as_str(), "{copied}");
    let err = node.send("in", request("elsewhere/app", registries)).await.expect_err("wrong one");
    ensure!(err.message().contains("the credentials were refused"), "{err}");

    // The text of a dockerconfigjson, with `auth` as docker login writes it.
    let auth = base64::engine::general_purpose::STANDARD.encode("tester:s3cret");
    let config = json!({ "auths": { format!("http://{host}/"): { "auth": auth } } }).to_string();
    let copied = node
        .send("in", request("mirror/from-config", json!({ "dockerconfigjson": config })))
        .await?;
    ensure!(copied["changed"] == true, "{copied}");

    // No login for the registry: anonymous, which this one refuses.
    let config = json!({ "auths": { "ghcr.io": { "auth": auth } } }).to_string();
    let err = node
        .send("in", request("mirror/none", json!({ "dockerconfigjson": config })))
        .await
        .expect_err("anonymous");
    ensure!(err.message().contains("the registry refused access (it needs credentials)"), "{err}");

    // Bad credentials name the field and never quote a secret.
    let bad = [
        (
            json!({ "username": "tester", "password": "s3cret", "dockerconfigjson": "{}" }),
            "in.targetCredentials: give a username and password, registries or a dockerconfigjson, not several",
        ),
        (
            json!({ "password": "s3cret" }),
            "in.targetCredentials: a username needs a password, and a password a username",
        ),
        (
            json!({ "dockerconfigjson": "s3cret" }),
            "in.targetCredentials: dockerconfigjson is not a docker config (line 1, column 1)",
        ),
    ];
    for (credentials, expected) in bad {
        let err = node.send("in", request("mirror/bad", credentials)).await.expect_err(expected);
        ensure!(err.message() == expected, "{err}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_copies_to_one_mirror_pull_a_shared_layer_once() -> Result<()> {
    use weir_distribution::{client::sha256, registry_copy::RegistryCopy};
    use weir_sdk::testing::Harness;

    let (source_registry, target_registry) = (start_registry().await?, start_registry().await?);
    let source = Registry::new(&source_registry.host, true)?;
    let shared = random_bytes(2_000_000);
    let mut images = Vec::new();
    for name in ["a", "b", "c"] {
        let repository = format!("acme/{name}");
        let layers = [shared.clone(), random_bytes(50_000)];
        let image = push_image(&source, &repository, &layers, false, "amd64").await?;
        source.put_manifest(&repository, "1.0", &image).await?;
        images.push((name, image));
    }
    let node = Harness::build::<RegistryCopy>(&json!({}))?;
    node.answer_with(|_, copied| Ok(copied.clone()));
    let pulled_before = source_registry.requests().len();
    // Image a twice: into the same repository, its second copy waits and then finds the blobs.
    let copies = images.iter().chain(images.first()).map(|(name, _)| {
        node.send(
            "in",
            json!({
                "source": format!("{}/acme/{name}:1.0", source_registry.host),
                "target": format!("{}/mirror/{name}:1.0", target_registry.host),
                "sourcePlainHttp": true,
                "targetPlainHttp": true,
            }),
        )
    });
    let answers = futures::future::try_join_all(copies).await?;

    // The source's own log: every blob GET of this tick, by digest.
    let shared_digest = sha256(&shared);
    let blob_gets: Vec<String> = source_registry.requests()[pulled_before..]
        .iter()
        .filter(|(method, uri)| method == "GET" && uri.contains("/blobs/"))
        .map(|(_, uri)| uri.clone())
        .collect();
    let shared_gets = blob_gets.iter().filter(|uri| uri.contains(&shared_digest)).count();
    ensure!(shared_gets == 1, "the shared layer was pulled {shared_gets} times: {blob_gets:?}");
    // The config is shared too (the same platform); each image's own layer is pulled once.
    ensure!(blob_gets.len() == 2 + 3, "{blob_gets:?}");
    // Whichever copy moved a blob, the mirror received each one once; the others mounted it.
    let uploaded: u64 = answers.iter().filter_map(|a| a["blobsUploaded"].as_u64()).sum();
    ensure!(uploaded == 2 + 3, "{answers:?}");

    let target = Registry::new(&target_registry.host, true)?;
    for (name, image) in &images {
        let copied = target.manifest(&format!("mirror/{name}"), "1.0").await?;
        ensure!(copied.bytes == image.bytes, "mirror/{name} is byte-exact");
        let layers: serde_json::Value = serde_json::from_slice(&image.bytes)?;
        for layer in layers["layers"].as_array().into_iter().flatten() {
            let digest = layer["digest"].as_str().unwrap_or_default();
            let bytes = target.blob_bytes(&format!("mirror/{name}"), digest).await?;
            ensure!(sha256(&bytes) == digest, "mirror/{name} holds {digest}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_pins_what_the_mirror_just_confirmed() -> Result<()> {
    use weir_distribution::registry_copy::RegistryCopy;
    use weir_sdk::testing::Harness;

    let (source_registry, target_registry) = (start_registry().await?, start_registry().await?);
    let source = Registry::new(&source_registry.host, true)?;
    let repository = "acme/multi";
    let amd = push_image(&source, repository, &[random_bytes(20_000)], false, "amd64").await?;
    let arm = push_image(&source, repository, &[random_bytes(20_000)], false, "arm64").await?;
    let index =
        push_index(&source, repository, "2.0", &[(&amd, "amd64"), (&arm, "arm64")], false).await?;
    let single = push_image(&source, "acme/app", &[random_bytes(20_000)], false, "amd64").await?;
    source.put_manifest("acme/app", "1.0", &single).await?;
    let node = Harness::build::<RegistryCopy>(&json!({}))?;
    node.answer_with(|_, copied| Ok(copied.clone()));
    let request = |from: &str, to: &str| {
        json!({
            "source": format!("{}/{from}", source_registry.host),
            "target": format!("{}/{to}", target_registry.host),
            "sourcePlainHttp": true,
            "targetPlainHttp": true,
        })
    };
    // The mirror's own log, from `from` on: what was asked after the last write.
    let after_last_write = |from: usize| {
        let requests = target_registry.requests();
        let last_put = requests.iter().rposition(|(method, _)| method == "PUT").unwrap_or(0);
        requests[from.max(last_put + 1)..].to_vec()
    };
    let heads_of = |requests: &[(String, String)], digest: &str| {
        requests
            .iter()
            .filter(|(m, uri)| m == "HEAD" && uri.ends_with(&format!("/manifests/{digest}")))
            .count()
    };

    // A new index: after the writes, the index and each platform's manifest by digest.
    let copied = node.send("in", request("acme/multi:2.0", "mirror/multi:2.0")).await?;
    ensure!(copied["verified"] == true && copied["changed"] == true, "{copied}");
    let asked = after_last_write(0);
    for digest in [&index.digest, &amd.digest, &arm.digest] {
        ensure!(heads_of(&asked, digest) == 1, "{digest} confirmed after the writes: {asked:?}");
    }

    // Unchanged: the index read from the mirror by digest, each platform's manifest confirmed.
    let before = target_registry.requests().len();
    let again = node.send("in", request("acme/multi:2.0", "mirror/multi:2.0")).await?;
    ensure!(again["verified"] == true && again["changed"] == false, "{again}");
    let asked = target_registry.requests()[before..].to_vec();
    ensure!(
        asked.iter().any(|(m, uri)| m == "GET" && uri.ends_with(&index.digest))
            && heads_of(&asked, &amd.digest) == 1
            && heads_of(&asked, &arm.digest) == 1,
        "{asked:?}"
    );
    // An unchanged single image stays at a HEAD on each side: the mirror's answer to the HEAD
    // of the tag is its confirmation of the digest.
    node.send("in", request("acme/app:1.0", "mirror/app:1.0")).await?;
    let before = (source_registry.requests().len(), target_registry.requests().len());
    let again = node.send("in", request("acme/app:1.0", "mirror/app:1.0")).await?;
    ensure!(again["verified"] == true && again["changed"] == false, "{again}");
    let asked =
        (source_registry.requests().len() - before.0, target_registry.requests().len() - before.1);
    ensure!(asked == (1, 1), "a HEAD on each side: {asked:?}");

    // A platform's manifest gone from the mirror (deleted, or collected as untagged) is found
    // missing and copied again before the answer.
    let deleted = reqwest::Client::new()
        .delete(format!("http://{}/v2/mirror/multi/manifests/{}", target_registry.host, arm.digest))
        .send()
        .await?;
    ensure!(deleted.status().is_success(), "{}", deleted.status());
    let target = Registry::new(&target_registry.host, true)?;
    ensure!(target.manifest_digest("mirror/multi", &arm.digest).await?.is_none(), "deleted");
    let repaired = node.send("in", request("acme/multi:2.0", "mirror/multi:2.0")).await?;
    ensure!(repaired["verified"] == true && repaired["changed"] == true, "{repaired}");
    ensure!(
        target.manifest("mirror/multi", &arm.digest).await?.bytes == arm.bytes,
        "the platform is back, byte-exact"
    );
    Ok(())
}
