fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("chainroute_descriptor.bin"))
        .type_attribute(".chainroute.v1", "#[derive(serde::Serialize)]")
        .compile_protos(&["proto/chainroute/v1/chainroute.proto"], &["proto"])?;
    Ok(())
}
