//! Compiles `proto/controller.proto` with `protox` (a pure-Rust protobuf compiler, so the build
//! needs no `protoc` on the machine) and generates the tonic client and server.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/controller.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["../../proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
