//! The Weir engine and the `weir` command line: reading manifests, printing resources, and
//! `weir up`, which runs the engine on the embedded store.

pub mod cli;
pub mod cmd;
pub mod controller;
pub mod manifests;
pub mod printer;
pub mod server;
