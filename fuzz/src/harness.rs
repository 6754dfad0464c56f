//! The bodies of the fuzz targets, shared by the libFuzzer binaries (`fuzz/fuzz_targets/`) and
//! by the regression replay (`tests/fuzz_regressions.rs`, which includes this file with
//! `#[path]`). Each function takes arbitrary bytes and panics when an invariant is broken;
//! returning normally means the input was handled correctly (accepted or refused).
//!
//! Only `virtpci`, `libc` and `std` are used, so the file compiles in both crates.

#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::path::{Path, PathBuf};
use virtpci::ffi::address::VirtpciPciAddress;
use virtpci::ffi::{
    address as f_addr, assign as f_assign, general as f_gen, guest_address as f_guest,
    host as f_host, slot_plan as f_plan,
};
use virtpci::host::snapshot::HostSnapshot;
use virtpci::{ErrorCode, PciAddress};

/// Error codes a call may legitimately fail with (everything in `ErrorCode` but `Ok`).
fn check_error(err: &virtpci::Error, context: &str) {
    assert_ne!(err.code, ErrorCode::Ok, "{context}: error with code Ok");
    assert!(
        err.message.starts_with(err.code.prefix()),
        "{context}: message {:?} lacks the prefix of {:?}",
        err.message,
        err.code
    );
    assert!(
        err.message.len() > err.code.prefix().len(),
        "{context}: empty message for {:?}",
        err.code
    );
    assert!(
        !err.message.contains("unexpected panic"),
        "{context}: a panic was caught: {}",
        err.message
    );
}

// ---------------------------------------------------------------------------------------------
// pci_address: the one address parser, the XML number parser, and their C entry point.

/// What `PciAddress::parse` accepted must be in range, read back from its formatting, and be
/// written with hexadecimal digits, ':' and '.' only, meaning the same address.
pub fn check_parse_consistency(text: &str, addr: PciAddress) {
    addr.check_ranges().expect("parsed address out of range");
    let shown = addr.to_string();
    assert_eq!(PciAddress::parse(&shown).ok(), Some(addr), "{text:?}");
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
        "accepted {text:?}"
    );
    // Each part of the text, read as hexadecimal, is the part of the address.
    let parts: Vec<u32> = text
        .split([':', '.'])
        .map(|p| u32::from_str_radix(p, 16).expect("hex part"))
        .collect();
    let want: Vec<u32> = match parts.len() {
        4 => vec![addr.domain, addr.bus, addr.slot, addr.function],
        _ => vec![addr.bus, addr.slot, addr.function],
    };
    assert_eq!(parts, want, "{text:?} parsed as {shown}");
}

pub fn pci_address(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PciAddress::parse(text) {
        Ok(addr) => check_parse_consistency(text, addr),
        Err(e) => {
            check_error(&e, "PciAddress::parse");
            assert_eq!(e.code, ErrorCode::InvalidArg);
        }
    }
    if let Some(n) = virtpci::pci::parse_xml_uint(text) {
        let again = [format!("{n}"), format!("0x{n:x}"), format!("0{n:o}")];
        for t in again {
            assert_eq!(virtpci::pci::parse_xml_uint(&t), Some(n), "{t}");
        }
    }
    // The C entry point agrees with the Rust parser, up to the first NUL.
    let c = nul_terminated(data);
    let mut out = SENTINEL_ADDR;
    // SAFETY: c is NUL-terminated; out is a local.
    let rc = unsafe { f_addr::virtpci_pci_address_parse(c.as_ptr() as *const c_char, &mut out) };
    let head = &data[..data.iter().position(|&b| b == 0).unwrap_or(data.len())];
    match std::str::from_utf8(head).ok().map(PciAddress::parse) {
        Some(Ok(addr)) => {
            assert_eq!(rc, 0);
            assert_eq!(PciAddress::from(&out), addr);
            expect_ok("virtpci_pci_address_parse");
        }
        _ => {
            assert_eq!(rc, -1);
            assert_eq!(out, SENTINEL_ADDR, "out changed on failure");
            expect_failed("virtpci_pci_address_parse", &[ErrorCode::InvalidArg]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// assign_xml: domain XML assignment, its idempotence, and the hotplug set of the result.

pub fn assign_xml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match virtpci::assign_domain_xml(text) {
        Ok(out) => {
            // A defined domain keeps its addresses: assigning again changes nothing.
            let again = match virtpci::assign_domain_xml(&out.xml) {
                Ok(again) => again,
                Err(e) if libvirt_refuses_its_own_output(&e) => return,
                Err(e) => panic!("output refused: {}\n{}", e.message, out.xml),
            };
            assert_eq!(again.xml, out.xml, "second assignment changed the XML");
            // The running guest's address set can be built from it.
            if let Err(e) = virtpci::assign::HotplugAddressSet::from_domain_xml(&out.xml) {
                panic!("hotplug set refused the output: {}", e.message);
            }
        }
        Err(e) => check_error(&e, "assign_domain_xml"),
    }
}

/// The one case where libvirt 9.0 refuses a definition it wrote itself (checked with the
/// oracle): a `<controller type='usb' model='none'>` at an index above 0 leaves USB controller
/// 0 missing, so libvirt adds the default one beside it, and defining that output again is
/// refused because USB is disabled. virtpci gives the same answers, so the output cannot be
/// assigned again either.
fn libvirt_refuses_its_own_output(e: &virtpci::Error) -> bool {
    e.message
        .contains("Can't add another USB controller: USB is disabled for this domain")
}

// ---------------------------------------------------------------------------------------------
// abi_diff: the ABI comparison of two definitions (the bytes before the first NUL and those
// from there to the next; without a NUL, a definition against itself), in both modes, and its
// C entry point.

pub fn abi_diff(data: &[u8]) {
    use virtpci::abi::{check_abi_stability, AbiOptions, LayoutMode};
    let (old, new) = match data.iter().position(|&b| b == 0) {
        // The second definition also ends at its first NUL, as C would see it.
        Some(i) => {
            let rest = &data[i + 1..];
            (
                &data[..i],
                &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())],
            )
        }
        None => (data, data),
    };
    let (Ok(old), Ok(new)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return;
    };
    for mode in [LayoutMode::Effective, LayoutMode::AsGiven] {
        let options = AbiOptions { mode };
        match check_abi_stability(old, new, options) {
            Ok(report) => {
                assert_eq!(report.is_stable(), report.strict_error().is_none());
                let text = report.to_text();
                assert!(text.contains("layouts compared"), "{text}");
                assert!(report.to_json().starts_with('{'));
                // A definition compared with itself has no change at all.
                let same = check_abi_stability(old, old, options)
                    .unwrap_or_else(|e| panic!("old against itself: {}", e.message));
                assert!(same.changes.is_empty(), "{}", same.to_text());
            }
            Err(e) => check_error(&e, "check_abi_stability"),
        }
    }
    // What the assignment adds is what the guest gets anyway: no guest-visible change.
    if let Ok(out) = virtpci::assign_domain_xml(old) {
        let report = match check_abi_stability(old, &out.xml, AbiOptions::default()) {
            Ok(report) => report,
            Err(e) if libvirt_refuses_its_own_output(&e) => return,
            Err(e) => panic!("old against its assignment: {}", e.message),
        };
        assert!(
            report.is_stable(),
            "assignment changed the ABI: {}",
            report.to_text()
        );
    }
    // The C entry point agrees, and leaves the report unchanged when it fails for another
    // reason than strictness.
    let (c_old, c_new) = (
        nul_terminated(old.as_bytes()),
        nul_terminated(new.as_bytes()),
    );
    let rust = check_abi_stability(old, new, AbiOptions::default());
    for flags in [0, 1, 2, 3] {
        let mut report: *mut c_char = sentinel_ptr();
        // SAFETY: NUL-terminated buffers and a local.
        let rc = unsafe {
            virtpci::ffi::abi::virtpci_domain_check_abi_stability(
                c_old.as_ptr() as *const c_char,
                c_new.as_ptr() as *const c_char,
                flags,
                &mut report,
            )
        };
        let strict = flags & 1 != 0;
        match &rust {
            Ok(r) if r.is_stable() || !strict => {
                assert_eq!(rc, 0, "flags {flags}: {:?}", last_error());
                expect_ok("check_abi_stability");
            }
            Ok(_) => {
                assert_eq!(rc, -1, "flags {flags}: {:?}", last_error());
                expect_failed("check_abi_stability", &[ErrorCode::ConfigUnsupported]);
            }
            Err(e) => {
                assert_eq!(rc, -1, "flags {flags}: {}", e.message);
                assert_eq!(last_error().0, e.code as c_int);
                assert_eq!(report, sentinel_ptr(), "report changed on failure");
                continue;
            }
        }
        assert!(!report.is_null() && report != sentinel_ptr());
        // SAFETY: a string returned by virtpci, released once.
        unsafe {
            CStr::from_ptr(report).to_str().expect("UTF-8 report");
            f_gen::virtpci_string_free(report);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// host_snapshot: the JSON host format, materialized into a scratch directory and read back.

/// A fresh, empty scratch directory for this process (on tmpfs when there is one).
fn scratch_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "virtpci-fuzz-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Remove scratch directories left by fuzzing processes that are gone (libFuzzer exits without
/// running destructors).
fn remove_stale_scratch() {
    let base = scratch_dir("x");
    let Some(parent) = base.parent() else { return };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("virtpci-fuzz-") else {
            continue;
        };
        let pid = rest.split('-').rev().nth(1).unwrap_or_default();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Removes its directory when dropped, also when an assertion fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn host_snapshot(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let snap = match HostSnapshot::from_json(text) {
        Ok(s) => s,
        Err(e) => return check_error(&e, "HostSnapshot::from_json"),
    };
    // Keep each run cheap: a fuzzer's snapshot has a handful of devices.
    if snap.devices.len() > 64 {
        return;
    }
    let dir = Scratch(scratch_dir("snap"));
    if let Err(e) = snap.materialize(&dir.0) {
        return check_error(&e, "HostSnapshot::materialize");
    }
    // What was materialized reads back: every device, its group, and a capture.
    let host = virtpci::Host::open(Some(&dir.0)).expect("open the materialized tree");
    let addrs = host.device_addresses().expect("list devices");
    assert_eq!(addrs.len(), snap.devices.len(), "device count");
    for a in &addrs {
        if let Err(e) = host.iommu_group(a) {
            check_error(&e, "iommu_group");
        }
    }
    match HostSnapshot::capture(&host) {
        Ok(again) => {
            assert_eq!(again.devices.len(), snap.devices.len());
            HostSnapshot::from_json(&again.to_json()).expect("a capture reads back");
        }
        Err(e) => check_error(&e, "capture"),
    }
}

// ---------------------------------------------------------------------------------------------
// ffi: the C entry points called as C would, driven by a small byte program.

const SENTINEL_ADDR: VirtpciPciAddress = VirtpciPciAddress {
    domain: 0xdead,
    bus: 0xbeef,
    slot: 0xcafe,
    function: 0xf00d,
};

fn sentinel_ptr<T>() -> *mut T {
    0x5a5a_5a5a_usize as *mut T
}

/// `data` up to its first NUL (or whole), with a NUL appended: what a C caller would pass.
fn nul_terminated(data: &[u8]) -> Vec<u8> {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let mut v = data[..end].to_vec();
    v.push(0);
    v
}

fn last_error() -> (c_int, String) {
    let code = f_gen::virtpci_last_error_code();
    let msg = f_gen::virtpci_last_error_message();
    assert!(!msg.is_null(), "virtpci_last_error_message returned NULL");
    // SAFETY: never NULL, NUL-terminated, valid until the next call on this thread.
    let text = unsafe { CStr::from_ptr(msg) }
        .to_str()
        .expect("last error message is UTF-8")
        .to_string();
    (code, text)
}

fn expect_ok(func: &str) {
    let (code, msg) = last_error();
    assert_eq!(code, 0, "{func} succeeded but left error {code}: {msg}");
    assert_eq!(msg, "no error", "{func} succeeded with a message");
}

/// A `_free` leaves the last error as it was.
fn expect_unchanged(func: &str, before: (c_int, String)) {
    assert_eq!(last_error(), before, "{func} changed the last error");
}

fn expect_failed(func: &str, allowed: &[ErrorCode]) {
    let (code, msg) = last_error();
    assert_ne!(code, 0, "{func} failed without setting the last error");
    assert_ne!(msg, "no error", "{func} failed without a message");
    assert!(
        !msg.contains("unexpected panic"),
        "{func}: a panic was caught: {msg}"
    );
    if !allowed.is_empty() {
        assert!(
            allowed.iter().any(|c| *c as c_int == code),
            "{func} failed with code {code} ({msg}), expected one of {allowed:?}"
        );
    }
    // Reading the error does not change it.
    assert_eq!(last_error(), (code, msg));
}

/// A cursor over the fuzzer's bytes; reads past the end give zeros.
struct Program<'a> {
    data: &'a [u8],
}

impl<'a> Program<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn done(&self) -> bool {
        self.data.is_empty()
    }

    /// A string argument: NULL, one of the well-formed samples, or inline bytes (a 16-bit
    /// little-endian length, then that many bytes, cut at the first NUL as C would).
    fn string(&mut self) -> Option<Vec<u8>> {
        let sel = self.byte();
        match sel {
            0 => None,
            1..=8 => Some(nul_terminated(SAMPLES[(sel - 1) as usize].as_bytes())),
            _ => {
                let len = u16::from_le_bytes([self.byte(), self.byte()]) as usize;
                let len = len.min(self.data.len());
                let (s, rest) = self.data.split_at(len);
                self.data = rest;
                Some(nul_terminated(s))
            }
        }
    }

    /// An address argument: NULL, or any four 32-bit values (in range or not).
    fn address(&mut self) -> Option<VirtpciPciAddress> {
        match self.byte() % 4 {
            0 => None,
            1 => Some(VirtpciPciAddress {
                domain: 0,
                bus: (self.byte() % 4) as c_uint,
                slot: (self.byte() % 32) as c_uint,
                function: (self.byte() % 8) as c_uint,
            }),
            _ => Some(VirtpciPciAddress {
                domain: self.u32(),
                bus: self.u32(),
                slot: self.u32(),
                function: self.u32(),
            }),
        }
    }
}

/// Well-formed arguments the program may pick by number.
const SAMPLES: [&str; 8] = [
    "<domain type='kvm'><name>f</name><os><type arch='x86_64' machine='q35'>hvm</type></os>\
     <devices><interface type='network'><source network='default'/><model type='virtio'/>\
     </interface><controller type='pci' index='1' model='pcie-root-port'/></devices></domain>",
    "<domain type='kvm'><name>f</name><os><type arch='x86_64' machine='pc'>hvm</type></os>\
     <devices><disk type='file' device='disk'><target dev='vda' bus='virtio'/></disk>\
     <controller type='pci' index='1' model='pci-bridge'/></devices></domain>",
    "<interface type='network'><source network='default'/><model type='virtio'/></interface>",
    "<disk type='file' device='disk'><target dev='vdb' bus='virtio'/>\
     <address type='pci' domain='0' bus='0' slot='5' function='0'/></disk>",
    "<input type='mouse' bus='ps2'/>",
    "0000:00:02.0",
    "driver_override",
    "",
];

/// Fixed sysfs trees the host calls read: an empty directory, and one made from the bundled
/// quad-NIC snapshot when the caller gives it. With [`FfiHosts::with_simulated`], also
/// simulated hosts the hostdev calls write to (see [`SimTrees`]).
pub struct FfiHosts {
    trees: Vec<Vec<u8>>,
    sim: Option<SimTrees>,
}

impl FfiHosts {
    /// `snapshot_json`: a host snapshot to materialize once (tests/fixtures/hosts/*.json).
    pub fn new(snapshot_json: Option<&str>) -> FfiHosts {
        remove_stale_scratch();
        let mut trees = Vec::new();
        let empty = scratch_dir("ffi-empty");
        std::fs::create_dir_all(&empty).expect("scratch directory");
        trees.push(empty);
        if let Some(json) = snapshot_json {
            let dir = scratch_dir("ffi-host");
            HostSnapshot::from_json(json)
                .and_then(|s| s.materialize(&dir))
                .expect("materialize the fixture host");
            trees.push(dir);
        }
        FfiHosts {
            trees: trees
                .into_iter()
                .map(|p| nul_terminated(p.to_str().expect("UTF-8 path").as_bytes()))
                .collect(),
            sim: None,
        }
    }

    /// Add simulated hosts, one per snapshot (at most 4), each with fake mount and route
    /// tables (`mounts`, `route`: the contents of `.virtpci-sim/proc/self/mounts` and
    /// `.../net/route`), for the hostdev opcodes.
    pub fn with_simulated(mut self, hosts: &[(&str, &str, &str)]) -> FfiHosts {
        self.sim = Some(SimTrees::new(hosts));
        self
    }
}

impl Drop for FfiHosts {
    fn drop(&mut self) {
        for t in &self.trees {
            let path = std::str::from_utf8(&t[..t.len() - 1]).unwrap_or_default();
            let _ = std::fs::remove_dir_all(path);
        }
        if let Some(sim) = &self.sim {
            let _ = std::fs::remove_dir_all(&sim.base);
        }
    }
}

/// The simulated hosts of the `ffi` target (snapshot, mount table, IPv4 route table): the
/// quad-NIC server, whose root filesystem is on the SATA disk and default route on eno1, and
/// the SR-IOV server (root on the NVMe, default route on the first X710 port).
pub const SIMULATED_HOSTS: [(&str, &str, &str); 2] = [
    (
        include_str!("../../tests/fixtures/hosts/quad-nic.json"),
        "/dev/sda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         eno1\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
    ),
    (
        include_str!("../../tests/fixtures/hosts/sriov-server.json"),
        "/dev/nvme0n1p1 / xfs rw,relatime 0 0\n",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         ens1f0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
    ),
];

/// One simulated host: its snapshot, working tree and proc tables.
struct SimTree {
    dir: PathBuf,
    c_dir: Vec<u8>,
    pristine: Manifest,
    devices: Vec<VirtpciPciAddress>,
}

/// One entry of a tree as it was built; a file with its modification time.
enum Entry {
    Dir,
    File(Vec<u8>, std::time::SystemTime),
    Link(PathBuf),
}

/// A whole tree as it was built, by path relative to its root (parents before children), to
/// put it back after a program: rebuilding it from its snapshot takes some 60 ms under ASan,
/// finding and repairing the few entries a program changed a fraction of that.
/// Hashed, not ordered: `restore` looks up every entry of the tree after every program, and
/// ordered path keys spent most of that time comparing path components.
struct Manifest(std::collections::HashMap<PathBuf, Entry>);

impl Manifest {
    fn record(root: &Path) -> Manifest {
        fn walk(root: &Path, rel: &Path, out: &mut std::collections::HashMap<PathBuf, Entry>) {
            for e in std::fs::read_dir(root.join(rel)).expect("read the tree") {
                let e = e.expect("directory entry");
                let rel = rel.join(e.file_name());
                let path = root.join(&rel);
                let kind = e.file_type().expect("file type");
                if kind.is_symlink() {
                    out.insert(rel, Entry::Link(std::fs::read_link(&path).expect("link")));
                } else if kind.is_dir() {
                    out.insert(rel.clone(), Entry::Dir);
                    walk(root, &rel, out);
                } else {
                    let data = std::fs::read(&path).expect("file");
                    let mtime = e.metadata().and_then(|m| m.modified()).expect("mtime");
                    out.insert(rel, Entry::File(data, mtime));
                }
            }
        }
        let mut map = std::collections::HashMap::new();
        walk(root, Path::new(""), &mut map);
        Manifest(map)
    }

    fn create(&self, root: &Path, rel: &Path, entry: &Entry) {
        let path = root.join(rel);
        match entry {
            Entry::Dir => std::fs::create_dir(&path),
            Entry::File(data, _) => std::fs::write(&path, data),
            Entry::Link(target) => std::os::unix::fs::symlink(target, &path),
        }
        .unwrap_or_else(|e| panic!("restore {}: {e}", path.display()));
    }

    /// Make the tree at `root` what was recorded: remove what was added, put back what was
    /// changed or removed. Entries are compared by kind, link target and content.
    fn restore(&self, root: &Path) {
        fn walk(m: &Manifest, root: &Path, rel: &Path, seen: &mut usize) {
            let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
                return;
            };
            for e in entries.flatten() {
                let rel = rel.join(e.file_name());
                let path = root.join(&rel);
                let Ok(kind) = e.file_type() else { continue };
                let same = match m.0.get(&rel) {
                    None => false,
                    Some(Entry::Dir) => kind.is_dir() && !kind.is_symlink(),
                    Some(Entry::Link(t)) => {
                        kind.is_symlink() && std::fs::read_link(&path).is_ok_and(|l| &l == t)
                    }
                    // A file not written since the tree was built still has its time (a write
                    // comes at least a clock tick later); else compare its bytes.
                    Some(Entry::File(d, mtime)) => {
                        kind.is_file()
                            && (e.metadata().is_ok_and(|m| {
                                m.len() == d.len() as u64 && m.modified().ok() == Some(*mtime)
                            }) || std::fs::read(&path).is_ok_and(|c| &c == d))
                    }
                };
                if same {
                    *seen += 1;
                    if kind.is_dir() {
                        walk(m, root, &rel, seen);
                    }
                    continue;
                }
                if kind.is_dir() {
                    let _ = std::fs::remove_dir_all(&path);
                } else {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let mut seen = 0;
        walk(self, root, Path::new(""), &mut seen);
        if seen != self.0.len() {
            // Parents before children: sorted paths put a directory before its entries.
            let mut missing: Vec<_> = self
                .0
                .iter()
                .filter(|(rel, _)| std::fs::symlink_metadata(root.join(rel)).is_err())
                .collect();
            missing.sort_by(|a, b| a.0.cmp(b.0));
            for (rel, entry) in missing {
                if std::fs::symlink_metadata(root.join(rel)).is_err() {
                    self.create(root, rel, entry);
                }
            }
        }
    }
}

/// The simulated hosts and the state directories of the hostdev managers, all under one
/// scratch directory (never /sys, never a real state directory):
///
/// - `BASE/tree-N`: the working sysfs tree of snapshot N, which the simulated kernel writes;
/// - `BASE/state/a`, `BASE/state/b`: the two state directories a program may name, and
///   `BASE/state/x-NAME` for a name of its own (no '/' in it, so it stays there);
/// - `BASE/not-a-dir`: a regular file, as a state directory or sysfs root that cannot be one.
///
/// After a program, the trees it opened are put back as they were built and the state
/// directories emptied when it made a manager (`reset`), so every program starts from the same
/// hosts.
pub struct SimTrees {
    base: PathBuf,
    trees: Vec<SimTree>,
    state_root: PathBuf,
    state_dirs: [Vec<u8>; 2],
    not_a_dir: Vec<u8>,
    /// A path under BASE that does not exist, to put the program's own root names under.
    missing: Vec<u8>,
}

fn c_path(p: &Path) -> Vec<u8> {
    nul_terminated(p.to_str().expect("UTF-8 path").as_bytes())
}

impl SimTrees {
    fn new(hosts: &[(&str, &str, &str)]) -> SimTrees {
        let base = scratch_dir("ffi-sim");
        std::fs::create_dir_all(&base).expect("scratch directory");
        let trees: Vec<SimTree> = hosts
            .iter()
            .take(4)
            .enumerate()
            .map(|(i, (json, mounts, route))| {
                let snap = HostSnapshot::from_json(json).expect("fixture host snapshot");
                let devices = snap
                    .devices
                    .iter()
                    .map(|d| {
                        VirtpciPciAddress::from(
                            PciAddress::parse(&d.address).expect("fixture address"),
                        )
                    })
                    .collect();
                let dir = base.join(format!("tree-{i}"));
                snap.materialize(&dir)
                    .expect("materialize a simulated host");
                let proc_dir = dir.join(".virtpci-sim/proc");
                std::fs::create_dir_all(proc_dir.join("self")).expect("proc directory");
                std::fs::create_dir_all(proc_dir.join("net")).expect("proc directory");
                std::fs::write(proc_dir.join("self/mounts"), mounts).expect("mounts");
                std::fs::write(proc_dir.join("net/route"), route).expect("route");
                SimTree {
                    c_dir: c_path(&dir),
                    pristine: Manifest::record(&dir),
                    dir,
                    devices,
                }
            })
            .collect();
        let state_root = base.join("state");
        let not_a_dir = base.join("not-a-dir");
        std::fs::write(&not_a_dir, "not a directory\n").expect("scratch file");
        std::fs::create_dir_all(&state_root).expect("state root");
        let sim = SimTrees {
            state_dirs: [c_path(&state_root.join("a")), c_path(&state_root.join("b"))],
            state_root,
            not_a_dir: c_path(&not_a_dir),
            missing: nul_terminated(base.join("no-such-dir").to_str().unwrap().as_bytes()),
            trees,
            base,
        };
        sim
    }

    /// Put back every tree whose bit is set in `trees` as it was built, and empty the state
    /// directories when `state` is set.
    fn reset(&self, trees: u32, state: bool) {
        for (i, t) in self.trees.iter().enumerate() {
            if trees & (1 << i) != 0 {
                t.pristine.restore(&t.dir);
            }
        }
        if state {
            let _ = std::fs::remove_dir_all(&self.state_root);
            std::fs::create_dir_all(&self.state_root).expect("state root");
        }
    }

    /// A path under BASE made of the program's bytes with '/' replaced, after `prefix` (a
    /// C string without its NUL); other bytes (non-UTF-8 ones too) are kept.
    fn own_name(prefix: &[u8], name: &[u8]) -> Vec<u8> {
        let mut v = prefix[..prefix.len() - 1].to_vec();
        v.extend_from_slice(b"/x-");
        v.extend(name.iter().map(|&b| if b == b'/' { b'_' } else { b }));
        nul_terminated(&v)
    }
}

fn cstr_ptr(s: &Option<Vec<u8>>) -> *const c_char {
    s.as_ref()
        .map_or(std::ptr::null(), |v| v.as_ptr() as *const c_char)
}

fn addr_ptr(a: &Option<VirtpciPciAddress>) -> *const VirtpciPciAddress {
    a.as_ref().map_or(std::ptr::null(), |a| a as *const _)
}

fn in_range(a: &Option<VirtpciPciAddress>) -> bool {
    a.is_some_and(|a| PciAddress::from(&a).check_ranges().is_ok())
}

unsafe extern "C" fn count_cb(_addr: *const VirtpciPciAddress, opaque: *mut c_void) -> c_int {
    // SAFETY: opaque is the &mut u32 given by the caller below.
    let n = unsafe { &mut *(opaque as *mut u32) };
    *n += 1;
    if *n >= 3 {
        7
    } else {
        0
    }
}

const LOG_OPAQUE: usize = 0x10c0;

/// The log callback the program may install: the level is one of libvirt's, the message a
/// UTF-8 C string, the opaque pointer the one given. (A panic here aborts: a finding.)
unsafe extern "C" fn check_log(level: c_int, message: *const c_char, opaque: *mut c_void) {
    assert!((1..=4).contains(&level), "log level {level}");
    assert_eq!(opaque as usize, LOG_OPAQUE, "log opaque pointer");
    assert!(!message.is_null(), "NULL log message");
    // SAFETY: valid during the call, by the callback contract.
    let text = unsafe { CStr::from_ptr(message) };
    assert!(text.to_str().is_ok(), "log message is not UTF-8");
}

/// The number of opcodes: `op = byte % OPCODES`.
const OPCODES: u8 = 26;

/// Run the byte program in `data` against the C entry points. Handles made by the program are
/// all released at the end; strings returned are released as they come.
pub fn ffi(data: &[u8], hosts: &FfiHosts) {
    let mut p = Program { data };
    let mut sets: Vec<*mut f_assign::VirtpciAddressSet> = Vec::new();
    let mut host_handles: Vec<*mut f_host::VirtpciHost> = Vec::new();
    let mut plans: Vec<*mut f_plan::VirtpciSlotPlan> = Vec::new();
    let mut hd = Hostdev::new(hosts.sim.as_ref());
    let mut steps = 0;
    let mut log_installed = false;
    while !p.done() && steps < 64 {
        steps += 1;
        // Opcodes 0 to 12 are those of the first version (same bytes, same meaning); 13 and
        // up drive the hostdev manager on simulated hosts and the calls with option structs.
        let op = p.byte() % OPCODES;
        // SAFETY (whole match): every pointer passed is NULL, a local, a NUL-terminated
        // buffer that outlives the call, or a live handle made by this program.
        unsafe {
            match op {
                0 => {
                    let s = p.string();
                    let use_out = p.byte() & 1 == 0;
                    let mut out = SENTINEL_ADDR;
                    let outp = if use_out {
                        &mut out as *mut _
                    } else {
                        std::ptr::null_mut()
                    };
                    let rc = f_addr::virtpci_pci_address_parse(cstr_ptr(&s), outp);
                    assert!(rc == 0 || rc == -1, "parse returned {rc}");
                    if rc == 0 {
                        expect_ok("parse");
                        assert!(s.is_some() && use_out);
                        assert!(PciAddress::from(&out).check_ranges().is_ok());
                    } else {
                        expect_failed("parse", &[ErrorCode::InvalidArg]);
                        assert_eq!(out, SENTINEL_ADDR);
                    }
                }
                1 => {
                    let a = p.address();
                    let s = f_addr::virtpci_pci_address_format(addr_ptr(&a));
                    if s.is_null() {
                        expect_failed("format", &[ErrorCode::InvalidArg]);
                        assert!(!in_range(&a));
                    } else {
                        expect_ok("format");
                        let text = CStr::from_ptr(s).to_str().expect("UTF-8").to_string();
                        f_gen::virtpci_string_free(s);
                        assert_eq!(
                            PciAddress::parse(&text).ok(),
                            a.map(|a| PciAddress::from(&a))
                        );
                    }
                }
                2 => {
                    let xml = p.string();
                    let flags = if p.byte() & 7 == 0 { p.u32() } else { 0 };
                    let use_out = p.byte() & 7 != 0;
                    let mut out: *mut c_char = sentinel_ptr();
                    let outp = if use_out {
                        &mut out as *mut _
                    } else {
                        std::ptr::null_mut()
                    };
                    let rc =
                        f_assign::virtpci_domain_assign_pci_addresses(cstr_ptr(&xml), flags, outp);
                    assert!(rc == 0 || rc == -1, "assign returned {rc}");
                    if rc == 0 {
                        expect_ok("assign");
                        assert!(!out.is_null() && out != sentinel_ptr());
                        assert!(
                            flags & !KNOWN_ASSIGN_FLAGS == 0 && xml.is_some(),
                            "assign accepted flags {flags:#x} or NULL XML"
                        );
                        CStr::from_ptr(out).to_str().expect("UTF-8 output");
                        // Either release function is right: alternate.
                        if steps % 2 == 0 {
                            f_gen::virtpci_string_free(out);
                        } else {
                            libc::free(out as *mut c_void);
                        }
                    } else {
                        expect_failed("assign", &[]);
                        assert_eq!(out, sentinel_ptr(), "out_xml changed on failure");
                    }
                }
                3 => {
                    let xml = p.string();
                    let set = f_assign::virtpci_address_set_new_from_xml(cstr_ptr(&xml));
                    if set.is_null() {
                        expect_failed("set_new", &[]);
                    } else {
                        expect_ok("set_new");
                        sets.push(set);
                    }
                }
                4..=6 => {
                    let pick = p.byte() as usize;
                    let set = if pick < sets.len() {
                        sets[pick]
                    } else {
                        std::ptr::null_mut()
                    };
                    let addr = p.address();
                    let xml = p.string();
                    let mut out = SENTINEL_ADDR;
                    let outp = if p.byte() & 7 != 0 {
                        &mut out as *mut _
                    } else {
                        std::ptr::null_mut()
                    };
                    let (rc, name) = match op {
                        4 => (
                            f_assign::virtpci_address_set_reserve_next(set, cstr_ptr(&xml), outp),
                            "reserve_next",
                        ),
                        5 => (
                            f_assign::virtpci_address_set_reserve(
                                set,
                                addr_ptr(&addr),
                                cstr_ptr(&xml),
                            ),
                            "reserve",
                        ),
                        _ => (
                            f_assign::virtpci_address_set_release(set, addr_ptr(&addr)),
                            "release",
                        ),
                    };
                    match rc {
                        0 => {
                            expect_ok(name);
                            assert!(!set.is_null());
                            if op == 4 {
                                assert!(PciAddress::from(&out).check_ranges().is_ok());
                            }
                        }
                        1 if op == 4 => {
                            expect_ok(name);
                            assert_eq!(out, SENTINEL_ADDR);
                        }
                        -1 => {
                            expect_failed(name, &[]);
                            assert_eq!(out, SENTINEL_ADDR);
                        }
                        _ => panic!("{name} returned {rc}"),
                    }
                }
                7 => {
                    // Release a set (or NULL).
                    let pick = p.byte() as usize;
                    let before = last_error();
                    if pick < sets.len() {
                        f_assign::virtpci_address_set_free(sets.swap_remove(pick));
                    } else {
                        f_assign::virtpci_address_set_free(std::ptr::null_mut());
                    }
                    expect_unchanged("set_free", before);
                }
                8 => {
                    // Open a host: one of the fixed trees, NULL (the real /sys), or any path
                    // (opening only checks the directory; nothing here writes).
                    let sel = p.byte();
                    let path = match sel % 4 {
                        0 | 1 => hosts.trees.get((sel % 4) as usize).cloned(),
                        2 => Some(nul_terminated(b"/sys")),
                        _ => p.string(),
                    };
                    let h = f_host::virtpci_host_open(cstr_ptr(&path));
                    if h.is_null() {
                        expect_failed("host_open", &[]);
                    } else {
                        expect_ok("host_open");
                        host_handles.push(h);
                    }
                }
                9 | 10 => {
                    let pick = p.byte() as usize;
                    let h = host_handles
                        .get(pick)
                        .copied()
                        .unwrap_or(std::ptr::null_mut());
                    let addr = p.address();
                    let which = p.byte() % 4;
                    let ok_arg = !h.is_null() && in_range(&addr);
                    match (op, which) {
                        (9, 0) => {
                            let rc =
                                f_host::virtpci_pci_address_get_iommu_group_num(h, addr_ptr(&addr));
                            assert!(rc >= -2, "group num returned {rc}");
                            if rc == -1 {
                                expect_failed("group_num", &[]);
                            } else {
                                expect_ok("group_num");
                                assert!(ok_arg);
                            }
                        }
                        (9, 1) => {
                            let mut n = 0u32;
                            let cb: f_host::VirtpciPciAddressCallback = if p.byte() & 3 == 0 {
                                None
                            } else {
                                Some(count_cb)
                            };
                            let rc = f_host::virtpci_pci_address_iommu_group_iterate(
                                h,
                                addr_ptr(&addr),
                                cb,
                                &mut n as *mut u32 as *mut c_void,
                            );
                            match rc {
                                0 => expect_ok("iterate"),
                                7 => {
                                    expect_ok("iterate");
                                    assert_eq!(n, 3, "stopped at the third call");
                                }
                                -1 => {
                                    expect_failed("iterate", &[]);
                                    assert_eq!(n, 0, "callback called before a failure");
                                }
                                _ => panic!("iterate returned {rc}"),
                            }
                        }
                        (9, _) => {
                            let mut out: *mut VirtpciPciAddress = sentinel_ptr();
                            let mut n: usize = 0xabcd;
                            let rc = f_host::virtpci_pci_address_get_iommu_group_addresses(
                                h,
                                addr_ptr(&addr),
                                &mut out,
                                if which == 3 {
                                    std::ptr::null_mut()
                                } else {
                                    &mut n
                                },
                            );
                            if rc == 0 {
                                expect_ok("group_addresses");
                                assert_eq!(out.is_null(), n == 0);
                                f_host::virtpci_pci_address_list_free(out);
                            } else {
                                assert_eq!(rc, -1);
                                expect_failed("group_addresses", &[]);
                                assert_eq!(out, sentinel_ptr());
                                assert_eq!(n, 0xabcd);
                            }
                        }
                        _ => {
                            let mut drv: *mut c_char = sentinel_ptr();
                            let rc = f_host::virtpci_host_get_driver(
                                h,
                                addr_ptr(&addr),
                                if which == 0 {
                                    std::ptr::null_mut()
                                } else {
                                    &mut drv
                                },
                            );
                            if rc == 0 {
                                expect_ok("get_driver");
                                assert_ne!(drv, sentinel_ptr());
                                f_gen::virtpci_string_free(drv);
                            } else {
                                assert_eq!(rc, -1);
                                expect_failed("get_driver", &[]);
                                assert_eq!(drv, sentinel_ptr());
                            }
                        }
                    }
                }
                12 => {
                    // Whole-slot plans on a set (or NULL): attach of up to 9 devices, detach,
                    // release, pluggability, reading and freeing a plan.
                    let pick = p.byte() as usize;
                    let set = sets.get(pick).copied().unwrap_or(std::ptr::null_mut());
                    let sub = p.byte() % 6;
                    match sub {
                        0 | 1 => {
                            let mut out: *mut f_plan::VirtpciSlotPlan = sentinel_ptr();
                            let rc = if sub == 0 {
                                let n = (p.byte() % 10) as usize;
                                let xmls: Vec<Option<Vec<u8>>> =
                                    (0..n).map(|_| p.string()).collect();
                                let ptrs: Vec<*const c_char> = xmls.iter().map(cstr_ptr).collect();
                                let arr = if p.byte() & 7 == 0 {
                                    std::ptr::null()
                                } else {
                                    ptrs.as_ptr()
                                };
                                f_plan::virtpci_address_set_plan_slot_attach(set, arr, n, &mut out)
                            } else {
                                let addr = p.address();
                                f_plan::virtpci_address_set_plan_slot_detach(
                                    set,
                                    addr_ptr(&addr),
                                    &mut out,
                                )
                            };
                            if rc == 0 {
                                expect_ok("plan_slot");
                                assert!(!out.is_null() && out != sentinel_ptr());
                                plans.push(out);
                            } else {
                                assert_eq!(rc, -1, "plan_slot returned {rc}");
                                expect_failed("plan_slot", &[]);
                                assert_eq!(out, sentinel_ptr(), "out changed on failure");
                            }
                        }
                        2 => {
                            let plan = plans.get(p.byte() as usize).copied();
                            let rc = f_plan::virtpci_address_set_release_slot_plan(
                                set,
                                plan.unwrap_or(std::ptr::null_mut()),
                            );
                            if rc == 0 {
                                expect_ok("release_slot_plan");
                            } else {
                                assert_eq!(rc, -1);
                                expect_failed("release_slot_plan", &[]);
                            }
                        }
                        3 => {
                            let addr = p.address();
                            let mut value: c_int = -77;
                            let mut reason: *mut c_char = sentinel_ptr();
                            let rc = f_plan::virtpci_address_set_get_pluggability(
                                set,
                                addr_ptr(&addr),
                                &mut value,
                                &mut reason,
                            );
                            if rc == 0 {
                                expect_ok("get_pluggability");
                                assert!((0..=2).contains(&value), "pluggability {value}");
                                assert_ne!(reason, sentinel_ptr());
                                assert_eq!(reason.is_null(), value != 2);
                                f_gen::virtpci_string_free(reason);
                            } else {
                                assert_eq!(rc, -1);
                                expect_failed("get_pluggability", &[]);
                                assert_eq!((value, reason), (-77, sentinel_ptr()));
                            }
                        }
                        4 => {
                            let plan = plans
                                .get(p.byte() as usize)
                                .copied()
                                .unwrap_or(std::ptr::null_mut());
                            let mut n: usize = 0xabcd;
                            let items = f_plan::virtpci_slot_plan_items(plan, &mut n);
                            if plan.is_null() {
                                assert!(items.is_null());
                                expect_failed("slot_plan_items", &[ErrorCode::InvalidArg]);
                            } else {
                                expect_ok("slot_plan_items");
                                assert!((1..=8).contains(&n), "{n} items");
                                let mut slot = SENTINEL_ADDR;
                                assert_eq!(f_plan::virtpci_slot_plan_slot(plan, &mut slot), 0);
                                for item in std::slice::from_raw_parts(items, n) {
                                    let a = PciAddress::from(&item.address);
                                    assert!(a.check_ranges().is_ok());
                                    assert!(a.same_slot(&PciAddress::from(&slot)));
                                    CStr::from_ptr(item.device_xml).to_str().expect("UTF-8");
                                    CStr::from_ptr(item.description).to_str().expect("UTF-8");
                                }
                            }
                        }
                        _ => {
                            let pick = p.byte() as usize;
                            let before = last_error();
                            if pick < plans.len() {
                                f_plan::virtpci_slot_plan_free(plans.swap_remove(pick));
                            } else {
                                f_plan::virtpci_slot_plan_free(std::ptr::null_mut());
                            }
                            expect_unchanged("slot_plan_free", before);
                        }
                    }
                }
                13..=20 => hd.step(op, &mut p),
                21 => abi_stability(&mut p),
                22 => assign_with_options(&mut p, steps),
                23 => reserve_next_with_preferences(&mut p, &sets),
                24 => slot_plan_slot(&mut p, &plans),
                25 => guest_address_call(&mut p, &sets),
                _ => {
                    // The error slot's own calls, releasing NULL, and the log callback.
                    match p.byte() % 6 {
                        0 => {
                            f_gen::virtpci_reset_last_error();
                            expect_ok("reset_last_error");
                        }
                        1 => f_gen::virtpci_string_free(std::ptr::null_mut()),
                        2 => f_host::virtpci_pci_address_list_free(std::ptr::null_mut()),
                        3 => {
                            let v = CStr::from_ptr(f_gen::virtpci_version());
                            assert!(!v.to_bytes().is_empty());
                        }
                        4 => {
                            f_gen::virtpci_set_log_callback(
                                Some(check_log),
                                LOG_OPAQUE as *mut c_void,
                            );
                            log_installed = true;
                        }
                        _ => {
                            f_gen::virtpci_set_log_callback(None, std::ptr::null_mut());
                            log_installed = false;
                        }
                    }
                }
            }
        }
    }
    // Managers before their hosts is not required (they hold a reference), but the trees
    // are rebuilt only once nothing uses them.
    hd.finish();
    if log_installed {
        // SAFETY: removing the callback is always allowed.
        unsafe { f_gen::virtpci_set_log_callback(None, std::ptr::null_mut()) };
    }
    for plan in plans {
        // SAFETY: made by this program, released once.
        unsafe { f_plan::virtpci_slot_plan_free(plan) };
    }
    for set in sets {
        // SAFETY: made by this program, released once.
        unsafe { f_assign::virtpci_address_set_free(set) };
    }
    for h in host_handles {
        // SAFETY: made by this program, released once.
        unsafe { f_host::virtpci_host_free(h) };
    }
}

// ---------------------------------------------------------------------------------------------
// ffi, continued: the hostdev manager on simulated hosts (opcodes 13 to 20), and the calls
// taking option structs (21 to 24).

use virtpci::ffi::hostdev as f_hd;
use virtpci::ffi::hostdev_net as f_hdn;

/// Every code a failing call may set.
const ERROR_CODES: [ErrorCode; 11] = [
    ErrorCode::Internal,
    ErrorCode::NoMemory,
    ErrorCode::InvalidArg,
    ErrorCode::OperationFailed,
    ErrorCode::XmlError,
    ErrorCode::XmlDetail,
    ErrorCode::SystemError,
    ErrorCode::OperationInvalid,
    ErrorCode::ConfigUnsupported,
    ErrorCode::OperationUnsupported,
    ErrorCode::DeviceMissing,
];

/// The failure is one of virtpci's codes with its libvirt prefix and a message after it.
fn expect_failed_known(func: &str, allowed: &[ErrorCode]) {
    expect_failed(func, allowed);
    let (code, msg) = last_error();
    let known = ERROR_CODES
        .iter()
        .find(|c| **c as c_int == code)
        .unwrap_or_else(|| panic!("{func} failed with unknown code {code}: {msg}"));
    assert!(
        msg.starts_with(known.prefix()) && msg.len() > known.prefix().len(),
        "{func}: message {msg:?} lacks the prefix of {known:?} or a detail"
    );
}

/// Release a string returned by virtpci with either function, as `n` says.
unsafe fn free_string(s: *mut c_char, n: usize) {
    if n & 1 == 0 {
        // SAFETY: forwarded caller contract.
        unsafe { f_gen::virtpci_string_free(s) };
    } else {
        // SAFETY: virtpci's strings come from malloc.
        unsafe { libc::free(s as *mut c_void) };
    }
}

/// Check a returned string and release it.
unsafe fn take_string(s: *mut c_char, func: &str, n: usize) -> String {
    assert!(
        !s.is_null() && s != sentinel_ptr(),
        "{func}: bad string pointer"
    );
    // SAFETY: a string returned by virtpci.
    let text = unsafe { CStr::from_ptr(s) }
        .to_str()
        .unwrap_or_else(|_| panic!("{func}: string is not UTF-8"))
        .to_string();
    // SAFETY: released once.
    unsafe { free_string(s, n) };
    text
}

const EIO: c_int = 5;
const EACCES: c_int = 13;
const EBUSY: c_int = 16;
const ENODEV: c_int = 19;
const ENOSPC: c_int = 28;

/// The write kinds of `virtpci_host_inject_fault`.
const FAULT_KINDS: [&str; 8] = [
    "driver_override",
    "bind",
    "unbind",
    "new_id",
    "remove_id",
    "drivers_probe",
    "reset",
    "config",
];

impl Program<'_> {
    /// A name: NULL, one of `fixed`, or the program's bytes.
    fn name(&mut self, fixed: &[&str]) -> Option<Vec<u8>> {
        let b = self.byte() % 8;
        match b {
            0 => None,
            6 | 7 => self.string(),
            _ => Some(nul_terminated(
                fixed[(b as usize - 1) % fixed.len()].as_bytes(),
            )),
        }
    }

    /// Flags of the prepare calls: mostly the known bits, sometimes any 32 bits.
    fn hostdev_flags(&mut self) -> c_uint {
        let b = self.byte();
        if b & 0x80 != 0 {
            self.u32()
        } else {
            (b & 0x0d) as c_uint
        }
    }

    /// The `size` of an option struct whose real size is `real`: right, larger, smaller or 0.
    fn struct_size(&mut self, real: usize) -> usize {
        match self.byte() % 8 {
            0 => 0,
            1 => self.byte() as usize % real,
            2 | 3 => real + 4 * (self.byte() as usize % 4),
            _ => real,
        }
    }
}

/// A zeroed buffer of at least `size` bytes holding `value` at its start, with `size` in its
/// first field: what a caller built against another version of the header passes.
fn versioned<T: Copy>(value: T, size: usize) -> Vec<u64> {
    let len = size.max(std::mem::size_of::<T>()).div_ceil(8);
    let mut buf = vec![0u64; len];
    // SAFETY: the buffer is at least size_of::<T>() bytes and 8-aligned.
    unsafe { std::ptr::write(buf.as_mut_ptr() as *mut T, value) };
    buf
}

/// A versioned options struct as C callers built against any version of the header pass it:
/// in a zeroed buffer of a size the program picks (too short, exact or longer), or NULL.
struct VersionedArg<T> {
    buf: Vec<u64>,
    null: bool,
    too_short: bool,
    /// The size the struct declares.
    size: usize,
    kind: std::marker::PhantomData<T>,
}

impl<T: Copy> VersionedArg<T> {
    /// `make` builds the struct from the `size` its first field declares.
    fn pick(p: &mut Program, make: impl FnOnce(c_uint) -> T) -> VersionedArg<T> {
        Self::pick_since(p, std::mem::size_of::<T>(), make)
    }

    /// [`Self::pick`] for a struct whose first version was `first` bytes long: a size from
    /// there on is accepted, the fields past it read as zero.
    fn pick_since(
        p: &mut Program,
        first: usize,
        make: impl FnOnce(c_uint) -> T,
    ) -> VersionedArg<T> {
        let real = std::mem::size_of::<T>();
        // The first version's size now and then (a byte is read only for such structs, so
        // the programs of the others keep their meaning).
        let size = if first < real && p.byte() % 8 == 0 {
            first
        } else {
            p.struct_size(real)
        };
        let buf = versioned(make(size as c_uint), size);
        VersionedArg {
            buf,
            null: p.byte() & 7 == 0,
            too_short: size < first,
            size,
            kind: std::marker::PhantomData,
        }
    }

    fn ptr(&self) -> *const T {
        if self.null {
            std::ptr::null()
        } else {
            self.buf.as_ptr() as *const T
        }
    }

    /// The call must refuse it.
    fn is_bad(&self) -> bool {
        self.null || self.too_short
    }
}

/// `out`, or NULL when the program does not want the result.
fn out_or_null<T>(want: bool, out: &mut T) -> *mut T {
    if want {
        out
    } else {
        std::ptr::null_mut()
    }
}

/// Where a simulated host's devices are and what the manager's lists say: the driver and
/// driver_override of every device of the tree, and the book saved in the state directory.
type HostView = (
    Vec<(String, String)>,
    Option<Result<virtpci::hostdev::OwnershipBook, String>>,
);

struct SimHost {
    handle: *mut f_host::VirtpciHost,
    tree: usize,
}

struct Manager {
    handle: *mut f_hd::VirtpciHostdevManager,
    tree: usize,
    state: PathBuf,
}

/// The hostdev part of a program: simulated host handles, managers, and which trees had a
/// fault armed (then a failed call may legitimately leave a device half-moved).
struct Hostdev<'a> {
    sim: Option<&'a SimTrees>,
    hosts: Vec<SimHost>,
    managers: Vec<Manager>,
    faulted: [bool; 4],
    /// Trees opened (bit N: tree N) and whether a manager was made, to be put back after.
    dirty_trees: u32,
    dirty_state: bool,
    calls: usize,
}

impl<'a> Hostdev<'a> {
    fn new(sim: Option<&'a SimTrees>) -> Hostdev<'a> {
        Hostdev {
            sim,
            hosts: Vec::new(),
            managers: Vec::new(),
            faulted: [false; 4],
            dirty_trees: 0,
            dirty_state: false,
            calls: 0,
        }
    }

    /// Release every handle, then rebuild the trees when the program used them.
    fn finish(&mut self) {
        for m in self.managers.drain(..) {
            // SAFETY: made by this program, released once.
            unsafe { f_hd::virtpci_hostdev_manager_free(m.handle) };
        }
        for h in self.hosts.drain(..) {
            // SAFETY: made by this program, released once.
            unsafe { f_host::virtpci_host_free(h.handle) };
        }
        if let Some(sim) = self.sim {
            sim.reset(self.dirty_trees, self.dirty_state);
        }
    }

    fn manager(&self, pick: u8) -> (*mut f_hd::VirtpciHostdevManager, usize) {
        self.managers
            .get(pick as usize)
            .map_or((std::ptr::null_mut(), 0), |m| (m.handle, m.tree))
    }

    /// A host address: mostly a device of `tree`, else any address (or NULL).
    fn device(&self, p: &mut Program, tree: usize) -> Option<VirtpciPciAddress> {
        let b = p.byte();
        let devices = self
            .sim
            .and_then(|s| s.trees.get(tree))
            .map_or(&[][..], |t| &t.devices[..]);
        if b & 3 == 3 || devices.is_empty() {
            p.address()
        } else {
            Some(devices[(b >> 2) as usize % devices.len()])
        }
    }

    /// See [`HostView`]. The host is read through a separate read-only handle, the lists
    /// straight from the manager's state directory.
    fn view(&self, mgr: *mut f_hd::VirtpciHostdevManager, tree: usize) -> HostView {
        let Some(t) = self.sim.and_then(|s| s.trees.get(tree)) else {
            return (Vec::new(), None);
        };
        let host = virtpci::Host::open(Some(&t.dir)).expect("open a simulated tree");
        let show = |r: virtpci::Result<Option<String>>| match r {
            Ok(Some(d)) => d,
            Ok(None) => "-".to_string(),
            Err(e) => format!("error {}", e.message),
        };
        let devices = t
            .devices
            .iter()
            .map(|a| {
                let addr = PciAddress::from(a);
                (show(host.driver(&addr)), show(host.driver_override(&addr)))
            })
            .collect();
        let book = self.managers.iter().find(|m| m.handle == mgr).map(|m| {
            virtpci::hostdev::state::StateStore::open(&m.state)
                .and_then(|s| s.load())
                .map_err(|e| e.message)
        });
        (devices, book)
    }

    /// A call that promises to change nothing when it fails: compare `before` with now.
    fn unchanged_on_failure(
        &self,
        func: &str,
        rc: c_int,
        mgr: *mut f_hd::VirtpciHostdevManager,
        tree: usize,
        before: &Option<HostView>,
    ) {
        if let (-1, Some(before)) = (rc, before) {
            if !self.faulted[tree] {
                let after = self.view(mgr, tree);
                assert_eq!(
                    before,
                    &after,
                    "{func} failed ({:?}) and changed the host or the lists",
                    last_error()
                );
            }
        }
    }

    /// The owner of `addr` by `mgr`: get_owner's value and names.
    fn owner(
        &self,
        mgr: *mut f_hd::VirtpciHostdevManager,
        addr: &VirtpciPciAddress,
    ) -> (c_int, Option<String>, Option<String>) {
        let (mut drv, mut dom): (*mut c_char, *mut c_char) = (sentinel_ptr(), sentinel_ptr());
        // SAFETY: a live manager, a local address and locals for the names.
        let rc = unsafe { f_hd::virtpci_hostdev_get_owner(mgr, addr, &mut drv, &mut dom) };
        if rc == 1 {
            // SAFETY: strings returned by virtpci, released once.
            unsafe {
                (
                    rc,
                    Some(take_string(drv, "get_owner", 0)),
                    Some(take_string(dom, "get_owner", 0)),
                )
            }
        } else {
            (rc, None, None)
        }
    }

    fn step(&mut self, op: u8, p: &mut Program) {
        let Some(sim) = self.sim else {
            return;
        };
        self.calls += 1;
        let calls = self.calls;
        // SAFETY (whole match): every pointer passed is NULL, a local, a NUL-terminated
        // buffer that outlives the call, or a live handle made by this program.
        unsafe {
            match op {
                13 => {
                    // Open a simulated host: a fixture tree, NULL, a regular file, or a name of
                    // the program's own under a directory that does not exist.
                    let sel = p.byte() % 5;
                    let (root, tree) = match sel {
                        0 | 1 => {
                            let t = sel as usize % sim.trees.len();
                            (Some(sim.trees[t].c_dir.clone()), Some(t))
                        }
                        2 => (None, None),
                        3 => (Some(sim.not_a_dir.clone()), None),
                        _ => (
                            p.string().map(|s| SimTrees::own_name(&sim.missing, &s)),
                            None,
                        ),
                    };
                    let h = f_host::virtpci_host_open_simulated(cstr_ptr(&root));
                    match (h.is_null(), tree) {
                        (false, Some(tree)) => {
                            expect_ok("host_open_simulated");
                            self.dirty_trees |= 1 << tree;
                            self.hosts.push(SimHost { handle: h, tree });
                        }
                        (true, None) => expect_failed_known(
                            "host_open_simulated",
                            if root.is_none() {
                                &[ErrorCode::InvalidArg]
                            } else {
                                &[]
                            },
                        ),
                        (true, Some(_)) => {
                            panic!("host_open_simulated refused a fixture: {:?}", last_error())
                        }
                        (false, None) => panic!("host_open_simulated opened {root:?}"),
                    }
                }
                14 => {
                    // A manager on a simulated host (or NULL) and a state directory: one of
                    // the two shared ones, NULL, a regular file, or a name of the program's.
                    let host = self.hosts.get(p.byte() as usize);
                    let sel = p.byte() % 5;
                    let state = match sel {
                        0 | 1 => Some(sim.state_dirs[sel as usize].clone()),
                        2 => None,
                        3 => Some(sim.not_a_dir.clone()),
                        _ => p
                            .string()
                            .map(|s| SimTrees::own_name(&c_path(&sim.state_root), &s)),
                    };
                    self.dirty_state = true;
                    let m = f_hd::virtpci_hostdev_manager_new(
                        host.map_or(std::ptr::null_mut(), |h| h.handle),
                        cstr_ptr(&state),
                    );
                    if m.is_null() {
                        if host.is_none() || state.is_none() {
                            expect_failed_known("manager_new", &[ErrorCode::InvalidArg]);
                        } else {
                            assert!(sel >= 3, "manager_new refused a state directory");
                            expect_failed_known("manager_new", &[]);
                        }
                    } else {
                        expect_ok("manager_new");
                        assert!(host.is_some() && state.is_some() && sel != 3);
                        let tree = host.map_or(0, |h| h.tree);
                        let state = state.as_ref().expect("checked above");
                        let state = std::str::from_utf8(&state[..state.len() - 1])
                            .expect("accepted, so UTF-8")
                            .into();
                        self.managers.push(Manager {
                            handle: m,
                            tree,
                            state,
                        });
                    }
                }
                15 => {
                    // Release a manager or a host early (managers keep their host), or NULL.
                    let sub = p.byte() % 3;
                    let pick = p.byte() as usize;
                    let before = last_error();
                    match sub {
                        0 if pick < self.managers.len() => f_hd::virtpci_hostdev_manager_free(
                            self.managers.swap_remove(pick).handle,
                        ),
                        1 if pick < self.hosts.len() => {
                            f_host::virtpci_host_free(self.hosts.swap_remove(pick).handle)
                        }
                        0 => f_hd::virtpci_hostdev_manager_free(std::ptr::null_mut()),
                        _ => f_host::virtpci_host_free(std::ptr::null_mut()),
                    }
                    expect_unchanged("manager_free/host_free", before);
                }
                16 => self.hostdev_list_call(p),
                17 => self.node_device_call(p),
                18 => self.domain_call(p, calls),
                19 => {
                    let (mgr, tree) = self.manager(p.byte());
                    let addr = self.device(p, tree);
                    let ways = p.byte();
                    let (mut drv, mut dom): (*mut c_char, *mut c_char) =
                        (sentinel_ptr(), sentinel_ptr());
                    let rc = f_hd::virtpci_hostdev_get_owner(
                        mgr,
                        addr_ptr(&addr),
                        if ways & 1 != 0 {
                            &mut drv
                        } else {
                            std::ptr::null_mut()
                        },
                        if ways & 2 != 0 {
                            &mut dom
                        } else {
                            std::ptr::null_mut()
                        },
                    );
                    match rc {
                        1 => {
                            expect_ok("get_owner");
                            take_string(drv, "get_owner", calls);
                            take_string(dom, "get_owner", calls + 1);
                        }
                        0 | 2 => {
                            expect_ok("get_owner");
                            assert!(
                                drv.is_null() && dom.is_null(),
                                "get_owner: names without owner"
                            );
                        }
                        -1 => {
                            expect_failed_known("get_owner", &[]);
                            assert_eq!((drv, dom), (sentinel_ptr(), sentinel_ptr()));
                        }
                        _ => panic!("get_owner returned {rc}"),
                    }
                    assert!(rc == -1 || (!mgr.is_null() && in_range(&addr) && ways & 3 == 3));
                }
                _ => {
                    // Arm a fault on a simulated host (or NULL).
                    let pick = p.byte() as usize;
                    let host = self.hosts.get(pick);
                    let sel = p.byte() % 11;
                    let kind = match sel {
                        0 => None,
                        1..=8 => Some(nul_terminated(FAULT_KINDS[sel as usize - 1].as_bytes())),
                        9 => Some(nul_terminated(b"bogus")),
                        _ => p.string(),
                    };
                    let b = p.byte();
                    let nth: c_uint = if b & 0xc0 == 0xc0 {
                        p.u32()
                    } else {
                        (b % 8) as c_uint
                    };
                    let errnum = match p.byte() % 8 {
                        0 => EIO,
                        1 => ENODEV,
                        2 => EBUSY,
                        3 => EACCES,
                        4 => ENOSPC,
                        5 => 0,
                        6 => -1,
                        _ => p.u32() as c_int,
                    };
                    let rc = f_host::virtpci_host_inject_fault(
                        host.map_or(std::ptr::null_mut(), |h| h.handle),
                        cstr_ptr(&kind),
                        nth,
                        errnum,
                    );
                    let kind_ok = match &kind {
                        None => true,
                        Some(k) => FAULT_KINDS
                            .iter()
                            .any(|n| n.as_bytes() == &k[..k.len() - 1]),
                    };
                    let valid = host.is_some() && kind_ok && nth >= 1 && errnum > 0;
                    match rc {
                        0 => {
                            expect_ok("inject_fault");
                            assert!(valid, "inject_fault accepted {kind:?} {nth} {errnum}");
                            if let Some(h) = host {
                                self.faulted[h.tree] = true;
                            }
                        }
                        -1 => {
                            expect_failed_known("inject_fault", &[ErrorCode::InvalidArg]);
                            assert!(!valid, "inject_fault refused {kind:?} {nth} {errnum}");
                        }
                        _ => panic!("inject_fault returned {rc}"),
                    }
                }
            }
        }
    }

    /// prepare / re-attach / update-active with a hostdev array, and prepare with the network
    /// configs of interface hostdevs.
    fn hostdev_list_call(&mut self, p: &mut Program) {
        let (mgr, tree) = self.manager(p.byte());
        let sub = p.byte() % 4;
        let drv = p.name(&["QEMU", "LXC"]);
        let dom = p.name(&["dom1", "dom2"]);
        let uuid: Option<[u8; 16]> = if (sub == 0 || sub == 3) && p.byte() & 1 == 1 {
            Some(std::array::from_fn(|_| p.byte()))
        } else {
            None
        };
        let n = (p.byte() % 5) as usize;
        let mut specs = Vec::new();
        for _ in 0..n {
            let source = self.device(p, tree).unwrap_or(SENTINEL_ADDR);
            let b = p.byte();
            let driver = match (b >> 2) % 4 {
                0 => None,
                1 => Some(nul_terminated(b"vfio-pci")),
                2 => Some(nul_terminated(b"vfio")),
                _ => p.string(),
            };
            specs.push((source, (b & 1) as c_int, ((b >> 1) & 1) as c_int, driver));
        }
        let array: Vec<f_hd::VirtpciHostdev> = specs
            .iter()
            .map(
                |(source, managed, unassigned, driver)| f_hd::VirtpciHostdev {
                    source: *source,
                    managed: *managed,
                    unassigned: *unassigned,
                    driver: cstr_ptr(driver),
                },
            )
            .collect();
        let arr = if p.byte() & 15 == 0 {
            std::ptr::null()
        } else {
            array.as_ptr()
        };
        let flags = if sub == 0 || sub == 3 {
            p.hostdev_flags()
        } else {
            0
        };
        // For sub 3: MAC/VLAN entries, mostly naming the hostdevs given.
        let n_nets = if sub == 3 { (p.byte() % 3) as usize } else { 0 };
        let mut macs = Vec::new();
        let mut nets = Vec::new();
        for i in 0..n_nets {
            let b = p.byte();
            let source = match specs.get(i) {
                Some((source, ..)) if b & 3 != 0 => *source,
                _ => self.device(p, tree).unwrap_or(SENTINEL_ADDR),
            };
            macs.push(match (b >> 2) % 4 {
                0 => None,
                1 => Some(nul_terminated(b"52:54:00:aa:bb:cc")),
                2 => Some(nul_terminated(b"01:00:5e:00:00:01")),
                _ => p.string(),
            });
            let vlan = match (b >> 4) % 4 {
                0 => -1,
                1 => 42,
                2 => 4096,
                _ => p.u32() as c_int,
            };
            nets.push((source, vlan));
        }
        let net_array: Vec<f_hdn::VirtpciHostdevNet> = nets
            .iter()
            .zip(&macs)
            .map(|((source, vlan), mac)| f_hdn::VirtpciHostdevNet {
                source: *source,
                mac: cstr_ptr(mac),
                vlan: *vlan,
            })
            .collect();
        let nets_ptr = if n_nets > 0 && p.byte() & 15 == 0 {
            std::ptr::null()
        } else {
            net_array.as_ptr()
        };
        let before = (!mgr.is_null()).then(|| self.view(mgr, tree));
        let (rc, name) = match sub {
            0 => (
                // SAFETY: see step().
                unsafe {
                    f_hd::virtpci_hostdev_prepare_pci_devices(
                        mgr,
                        cstr_ptr(&drv),
                        cstr_ptr(&dom),
                        uuid.as_ref().map_or(std::ptr::null(), |u| u.as_ptr()),
                        arr,
                        n,
                        flags,
                    )
                },
                "prepare_pci_devices",
            ),
            3 => (
                // SAFETY: see step().
                unsafe {
                    f_hdn::virtpci_hostdev_prepare_pci_devices_with_net(
                        mgr,
                        cstr_ptr(&drv),
                        cstr_ptr(&dom),
                        uuid.as_ref().map_or(std::ptr::null(), |u| u.as_ptr()),
                        arr,
                        n,
                        nets_ptr,
                        n_nets,
                        flags,
                    )
                },
                "prepare_pci_devices_with_net",
            ),
            1 => (
                // SAFETY: see step().
                unsafe {
                    f_hd::virtpci_hostdev_reattach_pci_devices(
                        mgr,
                        cstr_ptr(&drv),
                        cstr_ptr(&dom),
                        arr,
                        n,
                    )
                },
                "reattach_pci_devices",
            ),
            _ => (
                // SAFETY: see step().
                unsafe {
                    f_hd::virtpci_hostdev_update_active_pci_devices(
                        mgr,
                        cstr_ptr(&drv),
                        cstr_ptr(&dom),
                        arr,
                        n,
                    )
                },
                "update_active_pci_devices",
            ),
        };
        let bad_args = mgr.is_null()
            || drv.is_none()
            || dom.is_none()
            || (arr.is_null() && n > 0)
            || (nets_ptr.is_null() && n_nets > 0);
        match rc {
            0 => {
                expect_ok(name);
                assert!(!bad_args, "{name} accepted a NULL argument");
            }
            -1 => {
                expect_failed_known(
                    name,
                    if bad_args {
                        &[ErrorCode::InvalidArg]
                    } else {
                        &[]
                    },
                );
                self.unchanged_on_failure(name, rc, mgr, tree, &before);
            }
            _ => panic!("{name} returned {rc}"),
        }
        // What succeeded is in the lists: prepared and updated devices are the domain's.
        if rc == 0 && sub != 1 && !self.faulted[tree] {
            let text = |v: &Option<Vec<u8>>| {
                let v = v.as_ref().expect("checked above");
                String::from_utf8(v[..v.len() - 1].to_vec()).expect("accepted, so UTF-8")
            };
            let (want_drv, want_dom) = (text(&drv), text(&dom));
            for (source, ..) in &specs {
                let (rc, d, o) = self.owner(mgr, source);
                assert_eq!(
                    (rc, d.as_deref(), o.as_deref()),
                    (1, Some(&want_drv[..]), Some(&want_dom[..])),
                    "{name} succeeded but {:?} is not the domain's",
                    PciAddress::from(source)
                );
            }
        }
    }

    /// nodedev detach / re-attach / reset.
    fn node_device_call(&mut self, p: &mut Program) {
        let (mgr, tree) = self.manager(p.byte());
        let sub = p.byte() % 3;
        let addr = self.device(p, tree);
        let before = (!mgr.is_null() && sub == 0).then(|| self.view(mgr, tree));
        let (rc, name) = match sub {
            0 => {
                let b = p.byte();
                let driver = match b % 4 {
                    0 => None,
                    1 => Some(nul_terminated(b"vfio-pci")),
                    2 => Some(nul_terminated(b"vfio")),
                    _ => p.string(),
                };
                let flags = p.hostdev_flags();
                (
                    // SAFETY: see step().
                    unsafe {
                        f_hd::virtpci_hostdev_pci_node_device_detach(
                            mgr,
                            addr_ptr(&addr),
                            cstr_ptr(&driver),
                            flags,
                        )
                    },
                    "node_device_detach",
                )
            }
            // SAFETY: see step().
            1 => (
                unsafe { f_hd::virtpci_hostdev_pci_node_device_reattach(mgr, addr_ptr(&addr)) },
                "node_device_reattach",
            ),
            // SAFETY: see step().
            _ => (
                unsafe { f_hd::virtpci_hostdev_pci_node_device_reset(mgr, addr_ptr(&addr)) },
                "node_device_reset",
            ),
        };
        let bad_args = mgr.is_null() || !in_range(&addr);
        match rc {
            -1 => {
                expect_failed_known(
                    name,
                    if bad_args {
                        &[ErrorCode::InvalidArg]
                    } else {
                        &[]
                    },
                );
                self.unchanged_on_failure(name, rc, mgr, tree, &before);
            }
            0..=2 if rc == 0 || sub == 2 => {
                expect_ok(name);
                assert!(!bad_args, "{name} accepted a bad argument");
                let addr = addr.unwrap();
                match sub {
                    // Detached: in the inactive list. Re-attached: in neither.
                    0 => assert_eq!(self.owner(mgr, &addr).0, 2, "{name}: not inactive"),
                    1 => assert_eq!(self.owner(mgr, &addr).0, 0, "{name}: still listed"),
                    _ => {}
                }
            }
            _ => panic!("{name} returned {rc}"),
        }
    }

    /// prepare / re-attach / check of a domain definition: one made of the tree's devices,
    /// or the program's bytes.
    fn domain_call(&mut self, p: &mut Program, calls: usize) {
        let (mgr, tree) = self.manager(p.byte());
        let sub = p.byte() % 3;
        let drv = p.name(&["QEMU", "LXC"]);
        let xml = if p.byte() & 3 == 0 {
            p.string()
        } else {
            let mut x = String::from("<domain type='kvm'>");
            match p.byte() % 3 {
                0 => x.push_str("<name>dom1</name>"),
                1 => x.push_str("<name>dom2</name>"),
                _ => {}
            }
            if p.byte() & 1 == 1 {
                x.push_str(&format!(
                    "<uuid>8e3f0000-0000-4000-8000-00000000000{:x}</uuid>",
                    p.byte() % 16
                ));
            }
            x.push_str("<devices>");
            for _ in 0..p.byte() % 6 {
                let a = self.device(p, tree).unwrap_or(SENTINEL_ADDR);
                let b = p.byte();
                let managed =
                    ["", " managed='yes'", " managed='no'", " managed='on'"][(b >> 1) as usize % 4];
                let (open, close) = if b & 1 == 0 {
                    (
                        format!("<hostdev mode='subsystem' type='pci'{managed}>"),
                        "</hostdev>",
                    )
                } else {
                    (
                        format!("<interface type='hostdev'{managed}>"),
                        "</interface>",
                    )
                };
                x.push_str(&open);
                if b & 8 != 0 {
                    x.push_str("<driver name='vfio'/>");
                }
                x.push_str(&format!(
                    "<source><address type='pci' domain='0x{:x}' bus='0x{:x}' slot='0x{:x}' function='0x{:x}'/></source>",
                    a.domain, a.bus, a.slot, a.function
                ));
                if b & 16 != 0 {
                    x.push_str("<address type='unassigned'/>");
                }
                x.push_str(close);
            }
            x.push_str("</devices></domain>");
            Some(nul_terminated(x.as_bytes()))
        };
        let flags = if sub == 1 { 0 } else { p.hostdev_flags() };
        let want_report = p.byte() & 7 != 0;
        let before = (!mgr.is_null()).then(|| self.view(mgr, tree));
        let mut report: *mut c_char = sentinel_ptr();
        let (rc, name) = match sub {
            0 => (
                // SAFETY: see step().
                unsafe {
                    f_hd::virtpci_hostdev_prepare_domain(mgr, cstr_ptr(&drv), cstr_ptr(&xml), flags)
                },
                "prepare_domain",
            ),
            1 => (
                // SAFETY: see step().
                unsafe {
                    f_hd::virtpci_hostdev_reattach_domain(mgr, cstr_ptr(&drv), cstr_ptr(&xml))
                },
                "reattach_domain",
            ),
            _ => (
                // SAFETY: see step().
                unsafe {
                    f_hd::virtpci_hostdev_check_domain(
                        mgr,
                        cstr_ptr(&drv),
                        cstr_ptr(&xml),
                        flags,
                        if want_report {
                            &mut report
                        } else {
                            std::ptr::null_mut()
                        },
                    )
                },
                "check_domain",
            ),
        };
        let bad_args =
            mgr.is_null() || drv.is_none() || xml.is_none() || (sub == 2 && !want_report);
        match rc {
            0 => {
                expect_ok(name);
                assert!(!bad_args, "{name} accepted a NULL argument");
            }
            1 if sub == 2 => {
                // Prepare would fail: the first violation is the last error.
                expect_failed_known(name, &[]);
            }
            -1 => {
                expect_failed_known(
                    name,
                    if bad_args {
                        &[ErrorCode::InvalidArg]
                    } else {
                        &[]
                    },
                );
                self.unchanged_on_failure(name, rc, mgr, tree, &before);
                assert_eq!(report, sentinel_ptr(), "{name}: report changed on failure");
            }
            _ => panic!("{name} returned {rc}"),
        }
        if sub == 2 {
            if rc >= 0 {
                // SAFETY: the report returned.
                let json = unsafe { take_string(report, name, calls) };
                assert!(json.starts_with('{'), "{name}: report {json:?}");
            }
            // The dry run changes nothing, faults or not.
            if let Some(before) = &before {
                assert_eq!(before, &self.view(mgr, tree), "{name} changed the host");
            }
        }
    }
}

/// virtpci_domain_check_abi_stability with any strings, flags and report pointer.
fn abi_stability(p: &mut Program) {
    let old = p.string();
    let new = if p.byte() & 1 == 0 {
        old.clone()
    } else {
        p.string()
    };
    let b = p.byte();
    let flags = if b & 0x80 != 0 {
        p.u32()
    } else {
        (b & 7) as c_uint
    };
    let want_report = p.byte() & 3 != 0;
    let mut report: *mut c_char = sentinel_ptr();
    // SAFETY: NUL-terminated buffers or NULL, and a local.
    let rc = unsafe {
        virtpci::ffi::abi::virtpci_domain_check_abi_stability(
            cstr_ptr(&old),
            cstr_ptr(&new),
            flags,
            if want_report {
                &mut report
            } else {
                std::ptr::null_mut()
            },
        )
    };
    let bad_args = old.is_none() || new.is_none() || flags & !7 != 0;
    match rc {
        0 => {
            expect_ok("check_abi_stability");
            assert!(!bad_args, "check_abi_stability accepted a bad argument");
            assert_eq!(report == sentinel_ptr(), !want_report);
        }
        -1 => {
            expect_failed_known(
                "check_abi_stability",
                if old.is_none() || new.is_none() {
                    &[ErrorCode::InvalidArg]
                } else {
                    &[]
                },
            );
            if report != sentinel_ptr() {
                // Only a strict check that found changes gives its report.
                assert_eq!(last_error().0, ErrorCode::ConfigUnsupported as c_int);
                assert!(flags & 1 != 0, "report given on a non-strict failure");
            }
        }
        _ => panic!("check_abi_stability returned {rc}"),
    }
    if want_report && report != sentinel_ptr() {
        // SAFETY: a string returned by virtpci.
        let text = unsafe { take_string(report, "check_abi_stability", b as usize) };
        if flags & 2 != 0 {
            assert!(text.starts_with('{'), "JSON report {text:?}");
        }
    }
}

/// A range of `hotplug_ports` around what one PCI domain's 256 buses can give.
const MAX_HOTPLUG_PORTS: u32 = 4096;

/// The flags of the assignment calls.
const KNOWN_ASSIGN_FLAGS: c_uint =
    f_assign::VIRTPCI_ASSIGN_STRICT_FUNCTION0 | f_assign::VIRTPCI_ASSIGN_EXTEND;

/// virtpci_domain_assign_pci_addresses_with_options with any options struct.
fn assign_with_options(p: &mut Program, steps: usize) {
    let xml = p.string();
    let b = p.byte();
    // Any int (tests/fuzz-regressions/README.md, timeout-assign-options-hotplug-ports-program:
    // a huge value once grew the set without end). A negative value means libvirt's rule.
    let hotplug_ports = match b % 16 {
        0..=9 => (b % 16) as c_int,
        10..=13 => -1,
        14 => (p.u32() % (2 * MAX_HOTPLUG_PORTS)) as c_int - MAX_HOTPLUG_PORTS as c_int,
        _ => p.u32() as c_int,
    };
    let flags = if p.byte() & 0x80 != 0 {
        p.u32()
    } else {
        (p.byte() & 3) as c_uint
    };
    // Mostly the levels virtpci knows (0 is the default), sometimes any number.
    let libvirt_version = match p.byte() % 8 {
        0..=2 => 0,
        3 | 4 => 9_000_000,
        5 | 6 => 11_003_000,
        _ => p.u32(),
    };
    // Emulator capabilities: mostly none (the level's emulator), else some of the names
    // virtpci reads and, sometimes, any bytes (a name that is not UTF-8 is refused).
    let cap_names: Option<Vec<Vec<u8>>> = match p.byte() % 4 {
        0 | 1 => None,
        _ => {
            let known = virtpci::assign::EmulatorCap::ALL;
            let n = p.byte() % 8;
            Some(
                (0..n)
                    .map(|_| match p.byte() {
                        b if (b as usize) < 2 * known.len() => {
                            nul_terminated(known[b as usize % known.len()].name().as_bytes())
                        }
                        _ => p.string().unwrap_or_else(|| nul_terminated(b"")),
                    })
                    .collect(),
            )
        }
    };
    let mut cap_ptrs: Vec<*const c_char> = cap_names
        .iter()
        .flatten()
        .map(|n| n.as_ptr() as *const c_char)
        .collect();
    cap_ptrs.push(std::ptr::null());
    let emulator_caps = if cap_names.is_some() {
        cap_ptrs.as_ptr()
    } else {
        std::ptr::null()
    };
    let first_size = std::mem::offset_of!(f_assign::VirtpciAssignOptions, libvirt_version);
    let opts = VersionedArg::pick_since(p, first_size, |size| f_assign::VirtpciAssignOptions {
        size,
        flags,
        hotplug_ports,
        libvirt_version,
        numa_host: std::ptr::null(),
        emulator_caps,
    });
    let caps_end = std::mem::offset_of!(f_assign::VirtpciAssignOptions, emulator_caps)
        + std::mem::size_of::<usize>();
    // What C reads of each name: up to its first NUL.
    let bad_caps = opts.size >= caps_end
        && cap_names.iter().flatten().any(|n| {
            let end = n.iter().position(|&b| b == 0).unwrap_or(n.len());
            std::str::from_utf8(&n[..end]).is_err()
        });
    // The version is read only when the struct the caller declares has it.
    let reads_version = opts.size >= first_size + std::mem::size_of::<c_uint>();
    let bad_version = reads_version
        && virtpci::assign::LibvirtLevel::from_version_number(libvirt_version).is_err();
    let want_out = p.byte() & 7 != 0;
    let mut out: *mut c_char = sentinel_ptr();
    // SAFETY: NULL or NUL-terminated buffers, NULL or a buffer of at least the size the
    // struct declares, and a local.
    let rc = unsafe {
        f_assign::virtpci_domain_assign_pci_addresses_with_options(
            cstr_ptr(&xml),
            opts.ptr(),
            out_or_null(want_out, &mut out),
        )
    };
    let bad_args = xml.is_none()
        || opts.is_bad()
        || !want_out
        || flags & !KNOWN_ASSIGN_FLAGS != 0
        || bad_version
        || bad_caps;
    match rc {
        0 => {
            expect_ok("assign_with_options");
            assert!(!bad_args, "assign_with_options accepted a bad argument");
            // SAFETY: the string returned.
            unsafe { take_string(out, "assign_with_options", steps) };
        }
        -1 => {
            expect_failed_known("assign_with_options", &[]);
            assert_eq!(out, sentinel_ptr(), "out_xml changed on failure");
        }
        _ => panic!("assign_with_options returned {rc}"),
    }
}

/// virtpci_address_set_reserve_next_with_preferences with any preferences struct.
/// Reserve or release a guest address (PCI with zPCI ids, or CCW) on a set or NULL.
fn guest_address_call(p: &mut Program, sets: &[*mut f_assign::VirtpciAddressSet]) {
    let set = sets
        .get(p.byte() as usize)
        .copied()
        .unwrap_or(std::ptr::null_mut());
    let sentinel = f_guest::VirtpciGuestAddress {
        kind: 77,
        ..Default::default()
    };
    if p.byte() % 2 == 0 {
        let xml = p.string();
        let want_out = p.byte() & 7 != 0;
        let mut out = sentinel;
        // SAFETY: a live set or NULL, NULL or a NUL-terminated buffer, NULL or a local.
        let rc = unsafe {
            f_guest::virtpci_address_set_reserve_next_guest(
                set,
                cstr_ptr(&xml),
                out_or_null(want_out, &mut out),
            )
        };
        match rc {
            0 => {
                expect_ok("reserve_next_guest");
                assert!(!set.is_null() && xml.is_some() && want_out);
                match out.kind {
                    f_guest::VIRTPCI_GUEST_ADDRESS_PCI => {
                        assert!(PciAddress::from(&out.pci).check_ranges().is_ok())
                    }
                    f_guest::VIRTPCI_GUEST_ADDRESS_CCW => {
                        assert!(
                            out.ccw_cssid <= 0xfe && out.ccw_ssid <= 3 && out.ccw_devno <= 0xffff
                        )
                    }
                    k => panic!("reserve_next_guest wrote kind {k}"),
                }
            }
            1 => {
                expect_ok("reserve_next_guest");
                assert_eq!(out, sentinel, "out changed for a device on no bus");
            }
            -1 => {
                expect_failed("reserve_next_guest", &[]);
                assert_eq!(out, sentinel, "out changed on failure");
            }
            _ => panic!("reserve_next_guest returned {rc}"),
        }
    } else {
        let addr = p.address();
        let given = addr.map(|pci| f_guest::VirtpciGuestAddress {
            kind: c_int::from(p.byte() % 3),
            pci,
            has_zpci: c_int::from(p.byte() % 2),
            zpci_uid: p.u32(),
            zpci_fid: p.u32(),
            ccw_cssid: p.u32() % 0x101,
            ccw_ssid: p.u32() % 5,
            ccw_devno: p.u32() % 0x10001,
        });
        let ptr = given.as_ref().map_or(std::ptr::null(), |g| {
            g as *const f_guest::VirtpciGuestAddress
        });
        // SAFETY: a live set or NULL, NULL or a local.
        let rc = unsafe { f_guest::virtpci_address_set_release_guest(set, ptr) };
        match rc {
            0 => expect_ok("release_guest"),
            -1 => expect_failed("release_guest", &[]),
            _ => panic!("release_guest returned {rc}"),
        }
    }
}

fn reserve_next_with_preferences(p: &mut Program, sets: &[*mut f_assign::VirtpciAddressSet]) {
    let set = sets
        .get(p.byte() as usize)
        .copied()
        .unwrap_or(std::ptr::null_mut());
    let xml = p.string();
    let hotplug = match p.byte() % 8 {
        1 => 0,
        2 => 1,
        3 => p.u32() as c_int,
        _ => -1,
    };
    let bus = match p.byte() % 6 {
        b @ 0..=2 => b as c_int,
        3 => p.u32() as c_int,
        _ => 0,
    };
    let numa_node = match p.byte() % 6 {
        b @ 1..=3 => b as c_int - 1,
        4 => p.u32() as c_int,
        _ => -1,
    };
    let prefs = VersionedArg::pick(p, |size| f_assign::VirtpciAddressPreferences {
        size,
        hotplug,
        bus,
        numa_node,
    });
    let want_out = p.byte() & 7 != 0;
    let mut out = SENTINEL_ADDR;
    // SAFETY: a live set or NULL, NULL or NUL-terminated buffers, NULL or a buffer of at
    // least the size the struct declares, and a local.
    let rc = unsafe {
        f_assign::virtpci_address_set_reserve_next_with_preferences(
            set,
            cstr_ptr(&xml),
            prefs.ptr(),
            out_or_null(want_out, &mut out),
        )
    };
    let bad_args = set.is_null()
        || xml.is_none()
        || prefs.is_bad()
        || !want_out
        || !(hotplug == -1 || hotplug == 1)
        || !(0..=2).contains(&bus)
        || numa_node < -1;
    match rc {
        0 => {
            expect_ok("reserve_next_with_preferences");
            assert!(
                !bad_args,
                "reserve_next_with_preferences accepted a bad argument"
            );
            assert!(PciAddress::from(&out).check_ranges().is_ok());
        }
        1 => {
            expect_ok("reserve_next_with_preferences");
            assert!(
                !bad_args,
                "reserve_next_with_preferences accepted a bad argument"
            );
            assert_eq!(out, SENTINEL_ADDR);
        }
        -1 => {
            expect_failed_known("reserve_next_with_preferences", &[]);
            assert_eq!(out, SENTINEL_ADDR);
        }
        _ => panic!("reserve_next_with_preferences returned {rc}"),
    }
}

/// virtpci_slot_plan_slot with a plan or NULL and an out pointer or NULL.
fn slot_plan_slot(p: &mut Program, plans: &[*mut f_plan::VirtpciSlotPlan]) {
    let plan = plans
        .get(p.byte() as usize)
        .copied()
        .unwrap_or(std::ptr::null_mut());
    let want_out = p.byte() & 3 != 0;
    let mut out = SENTINEL_ADDR;
    // SAFETY: a live plan or NULL, and a local or NULL.
    let rc = unsafe {
        f_plan::virtpci_slot_plan_slot(
            plan,
            if want_out {
                &mut out
            } else {
                std::ptr::null_mut()
            },
        )
    };
    if plan.is_null() || !want_out {
        assert_eq!(rc, -1, "slot_plan_slot accepted NULL");
        expect_failed_known("slot_plan_slot", &[ErrorCode::InvalidArg]);
        assert_eq!(out, SENTINEL_ADDR);
    } else {
        assert_eq!(rc, 0, "slot_plan_slot: {:?}", last_error());
        expect_ok("slot_plan_slot");
        let a = PciAddress::from(&out);
        assert!(a.check_ranges().is_ok() && a.function == 0);
    }
}
