//! Helpers shared by the host tests: temporary trees, fixtures, the independent generator, and
//! a digest of a tree to prove that nothing was written.
#![allow(dead_code)]

pub mod records;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use virtpci::host::snapshot::HostSnapshot;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temporary directory removed on drop.
pub struct TempTree {
    pub path: PathBuf,
}

impl TempTree {
    pub fn new(name: &str) -> TempTree {
        let path = std::env::temp_dir().join(format!(
            "virtpci-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempTree { path }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hosts")
        .join(format!("{name}.json"))
}

/// Materialize a bundled fixture into a new temporary tree.
pub fn fixture_tree(name: &str) -> TempTree {
    let text = std::fs::read_to_string(fixture_path(name)).unwrap();
    let tree = TempTree::new(name);
    HostSnapshot::from_json(&text)
        .unwrap()
        .materialize(&tree.path)
        .unwrap();
    tree
}

/// Run the independent generator (tests/gen_sysfs.py); returns the tree and its expectations.
pub fn generated_tree() -> (TempTree, serde_json::Value) {
    let tree = TempTree::new("gen");
    let root = tree.join("sys");
    let expect = tree.join("expect.json");
    let status = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gen_sysfs.py"))
        .arg(&root)
        .arg("--expect")
        .arg(&expect)
        .status()
        .expect("python3 runs");
    assert!(status.success());
    let text = std::fs::read_to_string(&expect).unwrap();
    (tree, serde_json::from_str(&text).unwrap())
}

/// Every path under `dir` with its kind and content (file bytes, link target), to compare a
/// tree before and after.
pub fn digest(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                );
            } else if md.is_dir() {
                out.insert(rel, "dir".into());
                walk(base, &p, out);
            } else if md.is_file() {
                out.insert(rel, format!("{:?}", std::fs::read(&p).unwrap()));
            } else {
                out.insert(rel, "other".into());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

pub fn addr(text: &str) -> virtpci::PciAddress {
    virtpci::PciAddress::parse(text).unwrap()
}

pub fn virtpci_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_virtpci"))
}
