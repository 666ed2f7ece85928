//! Compiles the protocol with protox (pure Rust), so no `protoc` needs installing.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=weir");
    let descriptors = protox::compile(["weir/v1/module.proto"], ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
