//! The distribution module: a thin OCI distribution client of our own, for copying images
//! between registries byte-exact, and (next) the `registry_copy` node built on it. This first
//! part reads image references exactly as the Docker and containerd tooling does.

pub mod reference;
