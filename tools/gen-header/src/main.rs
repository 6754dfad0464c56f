//! gen-header: regenerate `include/virtpci.h` from the crate's `src/ffi` with the pinned
//! cbindgen, or with `--check` fail when the committed header differs from what it would write.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("usage: gen-header [--check]   (unknown argument {other:?})");
            return ExitCode::from(2);
        }
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = match root.canonicalize() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gen-header: cannot find the crate root: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match cbindgen::Config::from_file(root.join("cbindgen.toml")) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gen-header: {e}");
            return ExitCode::from(2);
        }
    };
    let bindings = match cbindgen::Builder::new()
        .with_config(config)
        // Only the C ABI and the error codes: public items of the Rust core stay out.
        .with_src(root.join("src/ffi/mod.rs"))
        .with_src(root.join("src/error.rs"))
        .generate()
    {
        Ok(b) => b,
        Err(e) => {
            eprintln!("gen-header: cbindgen failed: {e}");
            return ExitCode::from(2);
        }
    };
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let header = root.join("include/virtpci.h");
    if check {
        let committed = std::fs::read(&header).unwrap_or_default();
        if committed != generated {
            eprintln!(
                "gen-header: {} is out of date; run `cargo run -p gen-header` and commit it",
                header.display()
            );
            return ExitCode::FAILURE;
        }
        println!("gen-header: {} is up to date", header.display());
    } else {
        if let Err(e) = std::fs::write(&header, &generated) {
            eprintln!("gen-header: cannot write {}: {e}", header.display());
            return ExitCode::from(2);
        }
        println!("gen-header: wrote {}", header.display());
    }
    ExitCode::SUCCESS
}
