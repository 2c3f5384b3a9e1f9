//! Compiles `proto/replication.proto` with `protox` (pure Rust: no `protoc` needed) and
//! generates the tonic client and server. Record bytes map to `bytes::Bytes`, so batches move
//! between the log and the wire without another copy in between.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/replication.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["../../proto"])?;
    tonic_prost_build::configure()
        .bytes(".rivulet.replication")
        .compile_fds(descriptors)?;
    Ok(())
}
