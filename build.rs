//! Links the `tracker` binary (and the benchmark's floor programs) as a position-dependent
//! executable on Linux. A PIE gets about 10,000 relative relocations applied by the dynamic
//! loader at every start, each one dirtying a page of its own data; every command is a short
//! process, so that was paid on every call (see README, Performance). The code itself is still
//! compiled position-independent; only the final link changes, so every dependency is unaffected.
//! Set TRACKER_PIE=1 to link a PIE anyway (ASLR for the executable's own image).

fn main() {
    println!("cargo:rerun-if-env-changed=TRACKER_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let pie_asked = std::env::var_os("TRACKER_PIE").is_some_and(|v| !v.is_empty() && v != "0");
    if linux && !pie_asked {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        println!("cargo:rustc-link-arg-examples=-no-pie");
    }
}
