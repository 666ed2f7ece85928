//! Leader election on a Kubernetes Lease, so that one replica of a module runs its triggers
//! while every replica handles deliveries.
//!
//! Each candidate reads the Lease every retry period: the holder renews it; another candidate
//! takes it over only once the holder has not renewed it for the lease duration. Every write
//! carries the resourceVersion it read, so two candidates can never both win. A candidate that
//! stops gives the lease up at once, so a rolling update does not wait out the duration.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How a candidate competes for a lease.
#[derive(Debug, Clone)]
pub struct Election {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name, such as `weir-module-common`.
    pub lease: String,
    /// Who this candidate is (the pod name).
    pub identity: String,
    /// How long a holder's renewal keeps others away.
    pub duration: Duration,
    /// How often the lease is read and renewed.
    pub retry: Duration,
}

impl Election {
    /// Competes until `stop` is cancelled, telling `leader` whether this candidate holds the
    /// lease; gives the lease up on the way out.
    pub async fn run(self, client: Client, leader: watch::Sender<bool>, stop: CancellationToken) {
        let leases: Api<Lease> = Api::namespaced(client, &self.namespace);
        loop {
            let holds = match self.round(&leases).await {
                Ok(holds) => holds,
                Err(err) => {
                    tracing::warn!(lease = %self.lease, error = %err, "leader election round failed");
                    false
                }
            };
            leader.send_if_modified(|current| std::mem::replace(current, holds) != holds);
            tokio::select! {
                () = tokio::time::sleep(self.retry) => {}
                () = stop.cancelled() => break,
            }
        }
        leader.send_replace(false);
        if let Err(err) = self.release(&leases).await {
            tracing::warn!(lease = %self.lease, error = %err, "cannot give up the lease");
        }
    }

    /// One read-and-write: renew, take over an expired lease, or stand by.
    async fn round(&self, leases: &Api<Lease>) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = leases.get_opt(&self.lease).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.lease.clone()), ..ObjectMeta::default() },
                spec: Some(self.spec(now, now, 0)),
            };
            return match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(err) => Err(err),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let held_until = spec.renew_time.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0)
            + SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
        let vacant = spec.holder_identity.as_deref().is_none_or(str::is_empty) || held_until < now;
        if !mine && !vacant {
            return Ok(false);
        }
        let (acquired, transitions) = if mine {
            (spec.acquire_time.map_or(now, |t| t.0), spec.lease_transitions.unwrap_or(0))
        } else {
            (now, spec.lease_transitions.unwrap_or(0) + 1)
        };
        lease.spec = Some(self.spec(acquired, now, transitions));
        // The resourceVersion read above makes this a compare-and-swap.
        match leases.replace(&self.lease, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn release(&self, leases: &Api<Lease>) -> Result<(), kube::Error> {
        let Some(mut lease) = leases.get_opt(&self.lease).await? else { return Ok(()) };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        match leases.replace(&self.lease, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            // Someone else wrote meanwhile: the lease is no longer ours to give up.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(err) => Err(err),
        }
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX).max(1),
            ),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}
