//! `lpm-bench lookup` answers like the naive reference, for every accepted text
//! form, and the realistic table built from the RouteViews file (when the data
//! directory is there) looks up like the reference; `lpm-bench bench --json`
//! prints the document the lpm issue specifies.

use chainroute_lpm::{Lpm, NaiveLpm};
use chainroute_perf::{prefixes, table};
use std::process::Command;

/// Runs `lpm-bench` with `args`.
fn lpm_bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lpm-bench"))
        .args(args)
        .output()
        .expect("run lpm-bench")
}

/// `lpm-bench lookup` of the key file `keys` on the prefix file `prefixes`.
fn lookup(prefixes: &std::path::Path, keys: &std::path::Path) -> std::process::Output {
    lpm_bench(&[
        "lookup",
        "--prefixes",
        prefixes.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
    ])
}

fn tmp(name: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("lpm-bench-test-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn lookup_command_matches_the_reference() {
    let prefix_text = "\
# a comment line
::/0 1
2001:db8::/32 2
2001:db8:1::/48            # no value: the line number (4)
2001:db8:1::5/256 5
10.0.0.0/8 6
2001:500:30ff::20/124 7
0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed 8
2001:db8:0:0:0:0:1::/112 9
";
    let key_text = "\
2001:db8::1
# comments and blank lines print nothing

2001:db8:1::5
2001:db8:1::6
10.1.2.3
2001:500:30ff:0:0:0:0:2f
2001:500:30ff::2f
0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed
2001:db8:0:0:0:0:1::9
3000::
";
    let pf = tmp("prefixes", prefix_text);
    let kf = tmp("keys", key_text);
    let out = lookup(&pf, &kf);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let ps = prefixes::parse_prefixes(prefix_text).unwrap();
    let mut n = NaiveLpm::new();
    for (p, v) in &ps {
        n.insert(*p, *v);
    }
    let want: Vec<String> = prefixes::parse_keys(key_text)
        .unwrap()
        .iter()
        .map(|k| n.lookup(k).map_or("-".into(), |v| v.to_string()))
        .collect();
    assert_eq!(got, want);
    // An IPv6 key needs its eight groups: a `::` form reads as W3IP (wire crate rule).
    assert_eq!(got, ["2", "5", "4", "6", "7", "1", "8", "9", "1"]);
    // Without the default route a miss prints "-".
    let pf2 = tmp("prefixes2", "2001:db8::/32 2\n");
    let out = lookup(&pf2, &kf);
    assert_eq!(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        ["2", "2", "2", "-", "-", "-", "-", "2", "-"]
    );
    // Bad input is an error with its line number.
    let bad = tmp("bad", "2001:db8::/32 2\n2001:db8::1/16 3\n");
    let out = lookup(&bad, &kf);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    // A count of zero is refused by name before any work (it once divided by zero).
    for flag in ["--updates", "--nkeys", "--rounds"] {
        let out = lpm_bench(&["bench", "--prefixes", pf.to_str().unwrap(), flag, "0"]);
        assert_eq!(out.status.code(), Some(2), "{flag} 0");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{flag}: must be at least 1")),
            "{err}"
        );
    }
    for f in [pf, kf, pf2, bad] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn realistic_table_from_routeviews_matches_the_reference() {
    let path = std::path::Path::new(table::ROUTEVIEWS_V6);
    let Ok(real) = prefixes::read_prefixes(path) else {
        eprintln!("{} not found: skipped", path.display());
        return;
    };
    // A slice of the real list keeps the test quick in debug builds.
    let real: Vec<_> = real.into_iter().step_by(8).collect();
    let t = table::realistic(&real, 3);
    assert!(t.len() > real.len() * 3);
    let lpm = Lpm::from_prefixes(t.iter().copied());
    let mut n = NaiveLpm::new();
    for (p, v) in &t {
        n.insert(*p, *v);
    }
    let keys = table::key_mix(&t, 20_000, 5);
    let mut bulk = vec![None; keys.len()];
    lpm.lookup_bulk(&keys, &mut bulk);
    for (k, b) in keys.iter().zip(&bulk) {
        assert_eq!(*b, n.lookup(k), "{k}");
    }
    // The 128-bit view the baselines get.
    let small = Lpm::from_prefixes(table::le128(&t));
    let k128 = table::top128(&keys[..2000]);
    let mut n128 = NaiveLpm::new();
    for (p, v) in table::le128(&t) {
        n128.insert(p, v);
    }
    for k in &k128 {
        assert_eq!(small.lookup(k), n128.lookup(k));
    }
}

/// `lpm-bench bench --json` prints the document the issue specifies (tables with
/// their engines, update and under-update rates), the engines agree on every key,
/// and each update rate is the fastest of its listed passes.
#[test]
fn bench_json_has_the_specified_shape() {
    let mut text = String::from("::/0 1\n");
    for i in 0..1500u32 {
        text += &format!("2001:db8:{:x}::/48 {}\n", i, i + 2);
        if i % 3 == 0 {
            text += &format!("2001:db8:{:x}:{:x}::/64 {}\n", i, i % 7, i + 5000);
        }
    }
    text += "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed 9\n";
    let pf = tmp("bench-prefixes", &text);
    let out = lpm_bench(&[
        "bench",
        "--prefixes",
        pf.to_str().unwrap(),
        "--no-dpdk",
        "--json",
        "--nkeys",
        "4096",
        "--updates",
        "1000",
        "--rounds",
        "2",
    ]);
    let _ = std::fs::remove_file(&pf);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let tables = doc["tables"].as_array().expect("tables");
    let names: Vec<&str> = tables.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["le128", "full"]);
    for t in tables {
        assert!(t["prefixes"].as_u64().unwrap() > 1500);
        let engines = t["engines"].as_array().unwrap();
        assert_eq!(engines[0]["name"], "chainroute");
        for e in engines {
            for k in [
                "lookups_per_sec",
                "bulk_lookups_per_sec",
                "bytes_per_prefix",
            ] {
                assert!(e[k].as_f64().unwrap() > 0.0, "{k} of {e}");
            }
            if e["name"] != "chainroute" {
                assert_eq!(e["mismatches_vs_chainroute"], 0, "{e}");
            }
        }
    }
    assert!(tables[0]["engines"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "prefix-trie"));
    for (rate, passes) in [
        ("updates_per_sec", "updates_per_sec_passes"),
        ("batched_updates_per_sec", "batched_updates_per_sec_passes"),
    ] {
        let passes: Vec<f64> = doc[passes]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        assert_eq!(passes.len(), 2);
        assert!(passes.iter().all(|&p| p > 0.0));
        assert_eq!(
            doc[rate].as_f64().unwrap(),
            passes.iter().copied().fold(0.0, f64::max)
        );
    }
    assert!(doc["lookups_per_sec_under_updates"].as_f64().unwrap() > 0.0);
    // The full table's memory ceiling: the latency profile ends at the
    // snapshot's size with the latency reported for it.
    let c = &tables[1]["memory_ceiling"];
    let by_size = c["dependent_line_ns_by_size"].as_array().expect("profile");
    let far = by_size.last().expect("one size at least");
    assert_eq!(far["bytes"], c["bytes"]);
    assert_eq!(far["ns"], c["dependent_line_ns"]);
    assert!(c.get("cache_reach_bytes").is_some());
}
