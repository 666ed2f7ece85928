//! The distribution module: a thin OCI distribution client of our own, for copying images
//! between registries byte-exact, and (next) the `registry_copy` node built on it. So far:
//! references read exactly as the Docker and containerd tooling reads them, and a copy between
//! registries that need no credentials, whole indexes included.

pub mod client;
pub mod copy;
pub mod reference;
