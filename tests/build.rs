//! Builds the static helpers the tests place inside containers (the busybox
//! rootfs has no glibc, so they must be static): `udp_echo` and
//! `escape_probe`.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    for name in ["udp_echo", "escape_probe"] {
        let source = format!("helpers/{name}.c");
        println!("cargo:rerun-if-changed={source}");
        let status = Command::new(&compiler)
            .args(["-static", "-O2", "-Wall", "-o"])
            .arg(out.join(name))
            .arg(&source)
            .status()
            .unwrap_or_else(|e| panic!("run {compiler}: {e} (install gcc and libc6-dev)"));
        assert!(status.success(), "{compiler} -static failed for {source}");
    }
}
