//! Every exported function (`#[no_mangle]` in `src/ffi/`) runs its whole body inside the panic
//! boundary: `guard(NAME, || ...)` or `guard_free("name", || ...)` is the body's only
//! expression, and the name it reports is the function's own (the panic message and the
//! unsupported-flags message name it). The few functions that must not have a guard (they read
//! or clear the last error themselves, or only return a constant or free memory) are listed
//! with the reason, and their bodies must stay one line.
//!
//! The source is read as text: what matters is how the body is written, which the compiler does
//! not check.

use std::path::Path;

/// Exported functions without a guard, and why. A body here must be a single line.
const UNGUARDED: &[(&str, &str)] = &[
    ("virtpci_version", "returns a static string"),
    (
        "virtpci_last_error_code",
        "reads the last error; a guard would reset it",
    ),
    (
        "virtpci_last_error_message",
        "reads the last error; a guard would reset it",
    ),
    ("virtpci_reset_last_error", "clears the last error"),
    (
        "virtpci_string_free",
        "libc::free only; must leave the last error as it was",
    ),
    (
        "virtpci_set_log_callback",
        "swaps the callback under a lock that survives poisoning; logging it would re-enter",
    ),
];

/// One exported function: its name and the text between the braces of its body.
#[derive(Debug)]
struct Exported {
    name: String,
    body: String,
}

/// The `#[no_mangle]` functions of one source file.
fn exported_functions(source: &str) -> Vec<Exported> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("#[no_mangle]") {
        rest = &rest[at + "#[no_mangle]".len()..];
        let fn_at = rest.find("fn ").expect("a function after #[no_mangle]");
        let name: String = rest[fn_at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The body starts at the first `{` after the parameter list's closing parenthesis.
        let params = fn_at + rest[fn_at..].find('(').expect("a parameter list");
        let close = params + matching(&rest[params..], '(', ')');
        let open = close + rest[close..].find('{').expect("a body");
        let end = open + matching(&rest[open..], '{', '}');
        out.push(Exported {
            name,
            body: rest[open + 1..end].to_string(),
        });
        rest = &rest[end..];
    }
    out
}

/// The offset of the bracket that closes the one `text` starts with (string and character
/// literals and comments skipped).
fn matching(text: &str, open: char, close: char) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 2,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i + 1 < bytes.len() && bytes[i + 1] != b'\n' {
                    i += 1;
                }
            }
            b if b == open as u8 => depth += 1,
            b if b == close as u8 => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced {open}{close}")
}

/// Why `f`'s body is not wholly inside a guard naming `f`, if it is not.
fn unguarded_because(f: &Exported) -> Option<String> {
    // Comments and the `const NAME` line carry no code.
    let code: Vec<&str> = f
        .body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .collect();
    let mut code = code.join("\n");
    let mut reported = None;
    if let Some(rest) = code.strip_prefix("const NAME: &str = \"") {
        let (name, after) = rest.split_once("\";").unwrap_or(("", rest));
        reported = Some(name.to_string());
        code = after.trim_start().to_string();
    }
    if let Some(rest) = code.strip_prefix("guard_free(\"") {
        reported = rest.split_once('"').map(|(name, _)| name.to_string());
    } else if !code.starts_with("guard(NAME,") {
        return Some(format!(
            "the body does not start with guard(NAME, ...) or guard_free(\"{}\", ...)",
            f.name
        ));
    }
    match reported {
        Some(name) if name == f.name => {}
        other => return Some(format!("the guard reports the name {other:?}")),
    }
    // The guard call is the whole body: its closing parenthesis ends it.
    let open = code.find('(').expect("the guard's parenthesis");
    let close = open + matching(&code[open..], '(', ')');
    let after = code[close + 1..].trim();
    if !after.is_empty() {
        return Some(format!("code after the guard: {after:?}"));
    }
    None
}

#[test]
fn every_exported_function_runs_inside_the_panic_boundary() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    let mut seen = Vec::new();
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for f in exported_functions(&source) {
            let file = path.file_name().unwrap().to_string_lossy();
            if UNGUARDED.iter().any(|(name, _)| *name == f.name) {
                if f.body.trim().lines().count() > 1 + f.body.matches("// SAFETY").count() {
                    problems.push(format!("{file}: {} is listed unguarded but grew", f.name));
                }
            } else if let Some(why) = unguarded_because(&f) {
                problems.push(format!("{file}: {}: {why}", f.name));
            }
            seen.push(f.name);
        }
    }
    for (name, _) in UNGUARDED {
        assert!(
            seen.iter().any(|s| s == name),
            "{name} is no longer exported"
        );
    }
    // Every symbol the C tests know is found here (so no exported function escaped the scan).
    let symbols =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("c-tests/symbols.txt"))
            .unwrap();
    for symbol in symbols.lines().map(str::trim) {
        if symbol.starts_with("virtpci_") {
            assert!(
                seen.iter().any(|s| s == symbol),
                "{symbol} not found in src/ffi"
            );
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_catches_a_body_outside_the_guard() {
    let source = r#"
#[no_mangle]
pub unsafe extern "C" fn virtpci_good(a: *const c_char) -> c_int {
    const NAME: &str = "virtpci_good";
    // A comment with a } brace.
    guard(NAME, || {
        let s = "})";
        Ok(0)
    })
}
#[no_mangle]
pub unsafe extern "C" fn virtpci_free_it(p: *mut X) {
    guard_free("virtpci_free_it", || drop(p))
}
#[no_mangle]
pub unsafe extern "C" fn virtpci_bare(a: c_int) -> c_int {
    a.checked_add(1).unwrap()
}
#[no_mangle]
pub unsafe extern "C" fn virtpci_after(a: c_int) -> c_int {
    const NAME: &str = "virtpci_after";
    let r = guard(NAME, || Ok(a));
    r + 1
}
#[no_mangle]
pub unsafe extern "C" fn virtpci_tail(a: c_int) -> c_int {
    const NAME: &str = "virtpci_tail";
    guard(NAME, || Ok(a)) + 1
}
#[no_mangle]
pub unsafe extern "C" fn virtpci_copied(a: c_int) -> c_int {
    const NAME: &str = "virtpci_good";
    guard(NAME, || Ok(a))
}
"#;
    let found = exported_functions(source);
    let verdicts: Vec<(&str, bool)> = found
        .iter()
        .map(|f| (f.name.as_str(), unguarded_because(f).is_none()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("virtpci_good", true),
            ("virtpci_free_it", true),
            ("virtpci_bare", false),
            ("virtpci_after", false),
            ("virtpci_tail", false),
            ("virtpci_copied", false),
        ]
    );
}
