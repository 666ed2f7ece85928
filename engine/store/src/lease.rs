//! Leader election on a Kubernetes Lease, so that one replica of a module runs its triggers
//! while every replica handles deliveries. It works as client-go's leader election does:
//!
//! - Each candidate reads the Lease every retry period. The holder renews it; another candidate
//!   takes it over only once the record (holder and renewal) has not changed for the lease
//!   duration, measured on its own clock from when it saw the record change: another
//!   machine's `renewTime` is never compared with this one's clock, so a skewed clock neither
//!   steals a live lease nor keeps a dead one.
//! - Every call has a timeout. A holder that has not renewed within the renew deadline (shorter
//!   than the duration) stops leading before anyone may take over, so a hung connection never
//!   leaves two leaders.
//! - Every write carries the resourceVersion it read, so two candidates can never both win. A
//!   candidate that stops gives the lease up at once, so a rolling update does not wait out the
//!   duration.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::{sync::watch, time::Instant};
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
    /// How long a holder's renewal keeps others away (client-go's default: 15 s).
    pub duration: Duration,
    /// How long a holder goes on leading without renewing (10 s); shorter than `duration`.
    pub renew_deadline: Duration,
    /// How often the lease is read and renewed (2 s); also each call's timeout.
    pub retry: Duration,
}

/// The lease record as last seen, and when it was seen to change, on this machine's clock.
#[derive(Debug, Default)]
struct Observed {
    record: Option<(Option<String>, Option<Timestamp>)>,
    changed_at: Option<Instant>,
}

impl Observed {
    /// Takes in the record as read (or written) now.
    fn saw(&mut self, holder: Option<String>, renewed: Option<Timestamp>) {
        let record = Some((holder, renewed));
        if self.record != record {
            self.record = record;
            self.changed_at = Some(Instant::now());
        }
    }
}

impl Election {
    /// Competes until `stop` is cancelled, telling `leader` whether this candidate holds the
    /// lease; gives the lease up on the way out.
    pub async fn run(self, client: Client, leader: watch::Sender<bool>, stop: CancellationToken) {
        let leases: Api<Lease> = Api::namespaced(client, &self.namespace);
        let mut observed = Observed::default();
        // When this candidate last renewed the lease, while it holds it.
        let mut renewed: Option<Instant> = None;
        loop {
            let round = tokio::time::timeout(self.retry, self.round(&leases, &mut observed));
            let holds = match round.await {
                Ok(Ok(true)) => {
                    renewed = Some(Instant::now());
                    true
                }
                Ok(Ok(false)) => false,
                Ok(Err(err)) => {
                    tracing::warn!(lease = %self.lease, error = %err, "leader election round failed");
                    self.within_deadline(renewed)
                }
                Err(_) => {
                    tracing::warn!(lease = %self.lease, timeout = ?self.retry, "leader election round timed out");
                    self.within_deadline(renewed)
                }
            };
            if !holds && renewed.take().is_some() {
                tracing::warn!(lease = %self.lease, "stopped leading: not renewed within the deadline, or another holds the lease");
            }
            leader.send_if_modified(|current| std::mem::replace(current, holds) != holds);
            tokio::select! {
                () = tokio::time::sleep(self.retry) => {}
                () = stop.cancelled() => break,
            }
        }
        leader.send_replace(false);
        match tokio::time::timeout(self.retry, self.release(&leases)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(lease = %self.lease, error = %err, "cannot give up the lease");
            }
            Err(_) => tracing::warn!(lease = %self.lease, "giving up the lease timed out"),
        }
    }

    /// Whether a holder that last renewed at `renewed` may go on leading without renewing.
    fn within_deadline(&self, renewed: Option<Instant>) -> bool {
        renewed.is_some_and(|at| at.elapsed() < self.renew_deadline)
    }

    /// One read-and-write: renew, take over an expired lease, or stand by.
    async fn round(
        &self,
        leases: &Api<Lease>,
        observed: &mut Observed,
    ) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = leases.get_opt(&self.lease).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.lease.clone()), ..ObjectMeta::default() },
                spec: Some(self.spec(now, now, 0)),
            };
            return match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    observed.saw(Some(self.identity.clone()), Some(now));
                    Ok(true)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(err) => Err(err),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        observed.saw(spec.holder_identity.clone(), spec.renew_time.as_ref().map(|t| t.0));
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        // The holder says how long its renewal holds; the time is measured here.
        let duration = spec
            .lease_duration_seconds
            .and_then(|secs| u64::try_from(secs).ok())
            .map_or(self.duration, Duration::from_secs);
        let expired = observed.changed_at.is_some_and(|at| at.elapsed() >= duration);
        let vacant = spec.holder_identity.as_deref().is_none_or(str::is_empty) || expired;
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
            Ok(_) => {
                observed.saw(Some(self.identity.clone()), Some(now));
                Ok(true)
            }
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
