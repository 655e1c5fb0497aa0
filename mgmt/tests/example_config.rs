//! The example configuration shipped in docs/ stays valid: `chainrouted --check`
//! accepts it (with its two referenced files made up in a temp dir).

use std::process::Command;

#[test]
fn shipped_example_config_validates() {
    let dir = std::env::temp_dir().join(format!("chainroute-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("device.key");
    std::fs::write(&key, "0101010101010101010101010101010101010101010101010101010101010101\n").unwrap();
    let deployment = dir.join("deployment.json");
    std::fs::write(
        &deployment,
        r#"{"chainId":31337,"deploymentBlock":1,"contracts":{"SegmentLicense":{"address":"0x5FbDB2315678afecb367f032d93F642f64180aa3"},"EthereumDIDRegistry":{"address":"0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"},"ENSRegistry":{"address":"0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"}}}"#,
    )
    .unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/chainroute.example.toml"))
        .unwrap()
        .replace("/etc/chainroute/device.key", key.to_str().unwrap())
        .replace("/etc/chainroute/deployment.json", deployment.to_str().unwrap());
    let config = dir.join("chainroute.toml");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chainrouted")).arg("--check").arg("--config").arg(&config).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&dir).ok();
}
