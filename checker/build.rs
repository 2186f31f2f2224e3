//! Build the probe: `probe/probe.c`, compiled with `cc -static -O2` into
//! `$OUT_DIR/probe`. The checker embeds it (`include_bytes!`) and writes it
//! into every rootfs it makes, so a probe always matches its checker and
//! needs nothing from the rootfs.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = PathBuf::from("probe/probe.c");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-env-changed=CC");
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        fail("cargo did not set OUT_DIR");
    };
    let probe = out_dir.join("probe");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args(["-static", "-O2", "-Wall", "-Wextra", "-o"])
        .arg(&probe)
        .arg(&source)
        .status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => fail(&format!(
            "`{cc} -static -O2 {}` failed ({status}): the probe needs a C compiler and a static libc (apt-get install build-essential)",
            source.display()
        )),
        Err(err) => fail(&format!(
            "cannot run `{cc}` ({err}): the probe needs a C compiler (apt-get install build-essential)"
        )),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}
