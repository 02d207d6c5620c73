//! Compiles the protocol's .proto files (in the repository's `proto/`) with protox, a pure-Rust
//! compiler, so that building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let service = proto_root.join("apache/rocketmq/v2/service.proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());
    let descriptors = protox::compile([&service], [&proto_root])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
