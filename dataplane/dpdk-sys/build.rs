//! Generates bindings against the system DPDK (pkg-config `libdpdk`), builds the C
//! shim for the static-inline functions, and links DPDK as shared libraries (the
//! PMDs then load from the system driver directory by themselves).

use std::env;
use std::path::PathBuf;

fn main() {
    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .cargo_metadata(false)
        .probe("libdpdk")
        .expect("DPDK 22.11 development files (Debian: libdpdk-dev); run scripts/setup.sh");

    // Every token of `pkg-config --cflags libdpdk` (it includes `-include rte_config.h`
    // and -march) goes to both clang (bindgen) and the C compiler.
    let cflags = pkg_config_output(&["--cflags", "libdpdk"]);

    let mut build = cc::Build::new();
    build.file("shim.c").opt_level(3).warnings(false);
    for f in &cflags {
        build.flag(f);
    }
    build.compile("chainroute_dpdk_shim");

    for path in &dpdk.link_paths {
        println!("cargo:rustc-link-search=native={}", path.display());
    }
    for lib in &dpdk.libs {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    // rte_vdev_init (hot-plugging virtual devices) lives in a driver library that
    // pkg-config does not list.
    println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(cflags.iter().filter(|f| !f.starts_with("-march")))
        .clang_arg("-I.")
        .allowlist_function("rte_(eal|lcore|eth|pktmbuf|mempool|fib6|lpm6|vdev|strerror|socket|get_|delay|exit|version|log_set).*")
        .allowlist_function("shim_.*")
        .allowlist_type("rte_(eth|fib6|lpm6|mbuf|mempool|ether).*")
        .allowlist_var("RTE_(ETH|MBUF|PKTMBUF|MAX_ETHPORTS|LCORE|FIB6|LPM6|MAX_LCORE|ETHER).*")
        .allowlist_var("RTE_FIB6_.*")
        .blocklist_function("rte_eth_rx_burst|rte_eth_tx_burst") // static inline: use shim_*
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .generate()
        .expect("bindgen could not read the DPDK headers (Debian: libclang-dev libclang-common-14-dev)");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    bindings.write_to_file(out.join("bindings.rs")).expect("write bindings");

    for f in ["wrapper.h", "shim.h", "shim.c"] {
        println!("cargo:rerun-if-changed={f}");
    }
}

fn pkg_config_output(args: &[&str]) -> Vec<String> {
    let out = std::process::Command::new("pkg-config").args(args).output().expect("pkg-config");
    assert!(out.status.success(), "pkg-config {args:?} failed");
    String::from_utf8(out.stdout).unwrap().split_whitespace().map(str::to_owned).collect()
}
