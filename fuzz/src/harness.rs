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
    address as f_addr, assign as f_assign, general as f_gen, host as f_host, slot_plan as f_plan,
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
            let again = virtpci::assign_domain_xml(&out.xml)
                .unwrap_or_else(|e| panic!("output refused: {}\n{}", e.message, out.xml));
            assert_eq!(again.xml, out.xml, "second assignment changed the XML");
            // The running guest's address set can be built from it.
            if let Err(e) = virtpci::assign::HotplugAddressSet::from_domain_xml(&out.xml) {
                panic!("hotplug set refused the output: {}", e.message);
            }
        }
        Err(e) => check_error(&e, "assign_domain_xml"),
    }
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
        let report = check_abi_stability(old, &out.xml, AbiOptions::default())
            .unwrap_or_else(|e| panic!("old against its assignment: {}", e.message));
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
/// quad-NIC snapshot when the caller gives it.
pub struct FfiHosts {
    trees: Vec<Vec<u8>>,
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
        }
    }
}

impl Drop for FfiHosts {
    fn drop(&mut self) {
        for t in &self.trees {
            let path = std::str::from_utf8(&t[..t.len() - 1]).unwrap_or_default();
            let _ = std::fs::remove_dir_all(path);
        }
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

/// Run the byte program in `data` against the C entry points. Handles made by the program are
/// all released at the end; strings returned are released as they come.
pub fn ffi(data: &[u8], hosts: &FfiHosts) {
    let mut p = Program { data };
    let mut sets: Vec<*mut f_assign::VirtpciAddressSet> = Vec::new();
    let mut host_handles: Vec<*mut f_host::VirtpciHost> = Vec::new();
    let mut plans: Vec<*mut f_plan::VirtpciSlotPlan> = Vec::new();
    let mut steps = 0;
    let mut log_installed = false;
    while !p.done() && steps < 64 {
        steps += 1;
        let op = p.byte() % 13;
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
                        assert!(flags == 0 && xml.is_some());
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
                    if pick < sets.len() {
                        f_assign::virtpci_address_set_free(sets.swap_remove(pick));
                    } else {
                        f_assign::virtpci_address_set_free(std::ptr::null_mut());
                    }
                    expect_ok("set_free");
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
                            if pick < plans.len() {
                                f_plan::virtpci_slot_plan_free(plans.swap_remove(pick));
                            } else {
                                f_plan::virtpci_slot_plan_free(std::ptr::null_mut());
                            }
                            expect_ok("slot_plan_free");
                        }
                    }
                }
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
