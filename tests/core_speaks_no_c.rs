//! The core modules speak Rust: no exported C function name and no C constant in the text they
//! produce (messages, warnings, JSON). Only `src/ffi/` converts flag words and names C
//! functions, and the CLI (`src/bin/`) names its own options.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The string literals of one line of code (comments and doc comments excluded).
fn literals(line: &str) -> Vec<&str> {
    let code = line.trim_start();
    if code.starts_with("//") {
        return Vec::new();
    }
    code.split('"').skip(1).step_by(2).collect()
}

#[test]
fn core_messages_name_no_c_function_or_flag() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let symbols = std::fs::read_to_string(root.join("c-tests/symbols.txt")).unwrap();
    let symbols: Vec<&str> = symbols.lines().filter(|s| !s.is_empty()).collect();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut found = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(root).unwrap();
        if rel.starts_with("src/ffi") || rel.starts_with("src/bin") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for lit in literals(line) {
                let c_word = lit.contains("VIRTPCI_")
                    || symbols.iter().any(|s| lit.contains(s))
                    || lit.contains("virtpci_hostdev_check ")
                    || lit.ends_with("virtpci_hostdev_check");
                if c_word {
                    found.push(format!("{}:{}: \"{lit}\"", rel.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "C names in core modules:\n{}",
        found.join("\n")
    );
}
