//! A watch outlives the apiserver: killed and restarted mid-stream, it re-lists and the consumer
//! ends up with every change, none lost. In a binary of its own because the restart would
//! disturb the other tests' control plane.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::{Context as _, Result, ensure};
use futures::StreamExt;
use weir_model::Kind;
use weir_store::{Selector, Store, WatchEvent, contract::flow, kubernetes::KubeStore};
use weir_testenv::ControlPlane;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_reconverges_after_the_apiserver_restarts() -> Result<()> {
    let plane = ControlPlane::shared();
    let namespace = plane.namespace("restart").await?;
    let store: Arc<dyn Store> = Arc::new(KubeStore::new(plane.client().await?));
    store.create(flow(&namespace, "before", &[])).await?;

    // The consumer's view, kept the way the engine keeps it: replaced on Synced, patched on
    // Applied and Deleted.
    let mut view: BTreeMap<String, String> = BTreeMap::new();
    let mut events = store.watch(Kind::Flow, Some(&namespace), &Selector::everything());
    let apply = |event: WatchEvent, view: &mut BTreeMap<String, String>| match event {
        WatchEvent::Synced(objects) => {
            *view = objects
                .into_iter()
                .map(|o| {
                    (
                        o.metadata.name.unwrap_or_default(),
                        o.metadata.resource_version.unwrap_or_default(),
                    )
                })
                .collect();
        }
        WatchEvent::Applied(o) => {
            view.insert(
                o.metadata.name.unwrap_or_default(),
                o.metadata.resource_version.unwrap_or_default(),
            );
        }
        WatchEvent::Deleted(o) => {
            view.remove(&o.metadata.name.unwrap_or_default());
        }
    };
    let first = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await?
        .context("watch ended")??;
    apply(first, &mut view);
    ensure!(view.keys().eq(["before"]), "initial view {view:?}");

    plane.restart_apiserver().await?;
    // Written through a fresh client: the old one's connections died with the apiserver.
    let writer = KubeStore::new(plane.client().await?);
    writer.create(flow(&namespace, "after", &[])).await?;
    writer.delete(Kind::Flow, &namespace, "before").await?;
    let truth: BTreeMap<String, String> = writer
        .list(Kind::Flow, Some(&namespace), &Selector::everything())
        .await?
        .into_iter()
        .map(|o| {
            (o.metadata.name.unwrap_or_default(), o.metadata.resource_version.unwrap_or_default())
        })
        .collect();

    // The watcher backs off while the apiserver is down; give it a generous bound, never a hang.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while view != truth {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .with_context(|| {
                format!("the watch did not reconverge: view {view:?}, truth {truth:?}")
            })?
            .context("watch ended")??;
        apply(event, &mut view);
    }
    Ok(())
}
