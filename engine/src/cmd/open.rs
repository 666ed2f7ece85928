//! Opening the store a command works on: the embedded store's data directory, or a cluster.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context as _, Result};
use weir_store::{Store, embedded::EmbeddedStore, kubernetes::KubeStore};

use crate::cli::StoreChoice;

/// An open store.
pub struct Opened {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Where it keeps things, for logs.
    pub place: String,
    /// The cluster's client, when the store is a cluster (for leader election).
    pub client: Option<kube::Client>,
    /// How the client was configured, when the store is a cluster: the address and CA that
    /// users' own tokens are used against.
    pub config: Option<kube::Config>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").field("place", &self.place).finish_non_exhaustive()
    }
}

/// The chosen store.
pub async fn open_store(choice: StoreChoice) -> Result<Opened> {
    match choice {
        StoreChoice::Embedded(data_dir) => {
            let dir = match data_dir {
                Some(dir) => dir,
                None => default_data_dir()
                    .context("cannot tell where to keep data: set --data-dir or HOME")?,
            };
            let store = EmbeddedStore::open(&dir)
                .with_context(|| format!("cannot open the store in {}", dir.display()))?;
            let place = dir.display().to_string();
            Ok(Opened { store: Arc::new(store), place, client: None, config: None })
        }
        StoreChoice::Cluster { kubeconfig, context } => {
            let config = weir_store::kubernetes::config(kubeconfig.as_deref(), context.as_deref())
                .await
                .context("cannot reach the Kubernetes cluster")?;
            // Counted as client-go counts its requests, for `/metrics`.
            let client = kube::client::ClientBuilder::try_from(config.clone())
                .context("cannot reach the Kubernetes cluster")?
                .with_layer(&crate::metrics::CountRequests::of(&config))
                .build();
            let store = KubeStore::new(client);
            let place = match (&kubeconfig, &context) {
                (Some(file), _) => format!("the cluster of {}", file.display()),
                (None, Some(context)) => format!("the cluster of context {context}"),
                (None, None) => "the current cluster".to_owned(),
            };
            let client = Some(store.client());
            Ok(Opened { store: Arc::new(store), place, client, config: Some(config) })
        }
    }
}

fn default_data_dir() -> Option<PathBuf> {
    let base =
        std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()).map(PathBuf::from).or_else(
            || std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")),
        )?;
    Some(base.join("weir"))
}
