//! The input limits of `src/limits.rs`: beyond each, a clear error, reached cheaply; at each,
//! the input is still read; and within them, memory stays bounded. Allocations are counted per
//! thread by a counting allocator, so the tests may run in parallel.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::{c_char, CStr};
use std::time::{Duration, Instant};
use virtpci::limits::{
    XmlLimits, MAX_CONFIG_SPACE_BYTES, MAX_DOMAIN_CONTROLLERS, MAX_SNAPSHOT_BYTES,
    MAX_XML_ATTRIBUTES, MAX_XML_BYTES, MAX_XML_DEPTH, MAX_XML_ELEMENTS,
};
use virtpci::xml::Document;
use virtpci::{assign_domain_xml, ErrorCode};

struct Counting;

thread_local! {
    /// Bytes allocated by this thread since `reset`, live bytes, and the peak of live bytes.
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(added: usize, removed: usize) {
    let _ = ALLOCATED.try_with(|a| a.set(a.get() + added));
    let _ = LIVE.try_with(|l| {
        let now = l.get() + added as isize - removed as isize;
        l.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size(), 0);
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(0, layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size, layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Run `f`, returning what it returned, the bytes it allocated and its peak of live bytes
/// above what was live before.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize, Duration) {
    ALLOCATED.with(|a| a.set(0));
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    let start = Instant::now();
    let value = f();
    let took = start.elapsed();
    let allocated = ALLOCATED.with(|a| a.get());
    let peak = (PEAK.with(|p| p.get()) - base).max(0) as usize;
    (value, allocated, peak, took)
}

const GIB: usize = 1 << 30;

fn last_error() -> (i32, String) {
    let code = virtpci::ffi::general::virtpci_last_error_code();
    // SAFETY: never NULL; valid until the next call on this thread.
    let msg = unsafe { CStr::from_ptr(virtpci::ffi::general::virtpci_last_error_message()) };
    (code, msg.to_str().unwrap().to_string())
}

#[test]
fn a_gigabyte_of_xml_is_refused_by_its_length_without_a_copy() {
    // A well-formed document that only the length check refuses: a parser would read all of it.
    let mut buf: Vec<u8> = Vec::with_capacity(GIB + 1);
    buf.extend_from_slice(b"<domain type='kvm'>");
    buf.resize(GIB - b"</domain>".len(), b' ');
    buf.extend_from_slice(b"</domain>");
    assert_eq!(buf.len(), GIB);
    let text = std::str::from_utf8(&buf).unwrap();

    let (result, allocated, _, took) = measure(|| assign_domain_xml(text));
    let err = result.unwrap_err();
    assert_eq!(err.code, ErrorCode::XmlError);
    assert_eq!(
        err.message,
        format!(
            "XML error: document of {GIB} bytes is larger than the limit of {MAX_XML_BYTES} bytes"
        )
    );
    assert!(allocated < 4096, "refusing allocated {allocated} bytes");
    assert!(took < Duration::from_millis(500), "refusing took {took:?}");

    // The same through the C entry point, NUL-terminated as C passes it.
    buf.push(0);
    let mut out: *mut c_char = std::ptr::null_mut();
    let (rc, allocated, _, took) = measure(|| {
        // SAFETY: buf is NUL-terminated and outlives the call; out is a local.
        unsafe {
            virtpci::ffi::assign::virtpci_domain_assign_pci_addresses(
                buf.as_ptr() as *const c_char,
                0,
                &mut out,
            )
        }
    });
    assert_eq!(rc, -1);
    assert!(out.is_null());
    assert_eq!(
        last_error(),
        (
            ErrorCode::XmlError as i32,
            format!("XML error: document is larger than the limit of {MAX_XML_BYTES} bytes")
        )
    );
    assert!(allocated < 4096, "refusing allocated {allocated} bytes");
    assert!(took < Duration::from_millis(500), "refusing took {took:?}");
}

#[test]
fn the_c_entry_points_read_no_more_than_the_limit_plus_one_byte() {
    // MAX_XML_BYTES + 1 readable bytes with no NUL, followed by an inaccessible page: reading
    // one byte further would crash the test.
    let page = 4096;
    let readable = (MAX_XML_BYTES + 1).div_ceil(page) * page;
    // SAFETY: a fresh anonymous mapping, released below.
    unsafe {
        let base = libc::mmap(
            std::ptr::null_mut(),
            readable + page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(base, libc::MAP_FAILED);
        let base = base as *mut u8;
        assert_eq!(
            libc::mprotect(
                base.add(readable) as *mut libc::c_void,
                page,
                libc::PROT_NONE
            ),
            0
        );
        let start = base.add(readable - (MAX_XML_BYTES + 1));
        std::ptr::write_bytes(start, b'<', MAX_XML_BYTES + 1);
        let xml = start as *const c_char;

        let mut out: *mut c_char = std::ptr::null_mut();
        let rc = virtpci::ffi::assign::virtpci_domain_assign_pci_addresses(xml, 0, &mut out);
        assert_eq!(rc, -1);
        assert_eq!(last_error().0, ErrorCode::XmlError as i32);
        let set = virtpci::ffi::assign::virtpci_address_set_new_from_xml(xml);
        assert!(set.is_null());
        assert_eq!(last_error().0, ErrorCode::XmlError as i32);
        libc::munmap(base as *mut libc::c_void, readable + page);
    }
}

#[test]
fn length_limit_boundary() {
    let limits = XmlLimits {
        max_bytes: 64,
        ..XmlLimits::DEFAULT
    };
    let at = format!("<a>{}</a>", " ".repeat(64 - 7));
    assert_eq!(at.len(), 64);
    assert!(Document::parse_with_limits(&at, &limits).is_ok());
    let over = format!("<a>{}</a>", " ".repeat(64 - 6));
    let err = Document::parse_with_limits(&over, &limits).unwrap_err();
    assert_eq!(
        err.message,
        "XML error: document of 65 bytes is larger than the limit of 64 bytes"
    );
}

fn nested(depth: usize) -> String {
    let mut s = String::with_capacity(depth * 7);
    for _ in 0..depth {
        s.push_str("<a>");
    }
    for _ in 0..depth {
        s.push_str("</a>");
    }
    s
}

#[test]
fn a_hundred_thousand_nested_elements_are_refused_at_the_depth_limit() {
    let mut xml = String::from("<domain type='kvm'><devices>");
    xml.push_str(&nested(100_000));
    xml.push_str("</devices></domain>");
    let (result, _, peak, took) = measure(|| assign_domain_xml(&xml));
    let err = result.unwrap_err();
    assert_eq!(err.code, ErrorCode::XmlError);
    assert!(
        err.message
            .ends_with(&format!("elements nested deeper than {MAX_XML_DEPTH}")),
        "{}",
        err.message
    );
    assert!(err.message.contains("line 1, column "), "{}", err.message);
    // The parser sizes its tables from the text's length up front; nothing grows with depth.
    assert!(
        peak < 8 * xml.len(),
        "peak {peak} bytes for {} bytes",
        xml.len()
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");

    // Through C, too.
    let c = std::ffi::CString::new(xml).unwrap();
    let mut out: *mut c_char = std::ptr::null_mut();
    // SAFETY: NUL-terminated; out is a local.
    let rc = unsafe {
        virtpci::ffi::assign::virtpci_domain_assign_pci_addresses(c.as_ptr(), 0, &mut out)
    };
    assert_eq!(rc, -1);
    assert_eq!(last_error().0, ErrorCode::XmlError as i32);
}

#[test]
fn depth_limit_boundary() {
    assert!(Document::parse(&nested(MAX_XML_DEPTH)).is_ok());
    let err = Document::parse(&nested(MAX_XML_DEPTH + 1)).unwrap_err();
    assert!(
        err.message.contains("nested deeper than 256"),
        "{}",
        err.message
    );
    // Self-closing elements count too.
    let deep_empty = format!(
        "{}<b/>{}",
        "<a>".repeat(MAX_XML_DEPTH),
        "</a>".repeat(MAX_XML_DEPTH)
    );
    assert!(Document::parse(&deep_empty).is_err());
}

fn many_elements(n: usize) -> String {
    format!("<r>{}</r>", "<a/>".repeat(n - 1))
}

#[test]
fn element_limit_boundary() {
    assert!(Document::parse(&many_elements(MAX_XML_ELEMENTS)).is_ok());
    let err = Document::parse(&many_elements(MAX_XML_ELEMENTS + 1)).unwrap_err();
    assert!(
        err.message
            .ends_with(&format!("more than {MAX_XML_ELEMENTS} elements")),
        "{}",
        err.message
    );
}

fn attributes(n: usize) -> String {
    let mut s = String::from("<a");
    for i in 0..n {
        s.push_str(&format!(" b{i}='{i}'"));
    }
    s.push_str("/>");
    s
}

#[test]
fn attribute_limit_boundary() {
    let doc = attributes(MAX_XML_ATTRIBUTES);
    let parsed = Document::parse(&doc).unwrap();
    assert_eq!(parsed.element(parsed.root).attrs.len(), MAX_XML_ATTRIBUTES);
    let err = Document::parse(&attributes(MAX_XML_ATTRIBUTES + 1)).unwrap_err();
    assert!(
        err.message
            .ends_with(&format!("more than {MAX_XML_ATTRIBUTES} attributes in <a>")),
        "{}",
        err.message
    );
    // '=' inside a value is not an attribute.
    let doc = format!("<a x='{}'/>", "=".repeat(MAX_XML_ATTRIBUTES * 2));
    assert!(Document::parse(&doc).is_ok());
}

fn wide(bytes: usize) -> String {
    let mut doc = String::from("<r>");
    let element = attributes(MAX_XML_ATTRIBUTES).replace("<a", "<e");
    while doc.len() + element.len() + 4 < bytes {
        doc.push_str(&element);
    }
    doc.push_str("</r>");
    doc
}

fn deep(bytes: usize) -> String {
    let mut doc = String::from("<r>");
    let tower = nested(MAX_XML_DEPTH - 1);
    while doc.len() + tower.len() + 4 < bytes {
        doc.push_str(&tower);
    }
    doc.push_str("</r>");
    doc
}

/// The least time of three runs of `f`, and its peak memory.
fn best_of_three<T>(f: impl Fn() -> T) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut peak = 0;
    for _ in 0..3 {
        let (_, _, p, took) = measure(&f);
        best = best.min(took);
        peak = peak.max(p);
    }
    (best, peak)
}

/// The worst documents within the limits cost memory and time in proportion to their size: at
/// most 16 bytes per input byte and 512 per element (measured at the limits: about 140 MiB for
/// 16 MiB of attributes, 110 MiB for a whole assignment at the element limit), and four times
/// the input takes about four times as long (a quadratic step would take sixteen times).
#[test]
fn memory_and_time_grow_linearly_within_the_limits() {
    let doc = many_elements(MAX_XML_ELEMENTS);
    let (_, _, peak, _) = measure(|| Document::parse(&doc).map(|d| d.len()));
    assert!(
        peak < 64 << 20,
        "{MAX_XML_ELEMENTS} elements: peak {} MiB",
        peak >> 20
    );

    // A whole assignment at the element limit: devices that parse into the model but take
    // no PCI slot, as many as fit.
    let serials = "<serial type='pty'/>".repeat(MAX_XML_ELEMENTS - 10);
    let domain = format!(
        "<domain type='kvm'><name>t</name><os><type arch='x86_64' machine='q35'>hvm</type>\
         </os><devices>{serials}</devices></domain>"
    );
    let (result, _, peak, _) = measure(|| assign_domain_xml(&domain).map(|o| o.xml.len()));
    assert!(result.is_ok(), "{result:?}");
    eprintln!("assignment at the element limit: peak {} MiB", peak >> 20);
    assert!(peak < 160 << 20, "assignment peak {} MiB", peak >> 20);

    // Sizes where four times the small one stays within the element limit; linear time gives
    // a ratio of 4, quadratic 16; 10 leaves room for a loaded machine.
    let cases = [
        ("attributes", wide as fn(usize) -> String, 512 << 10),
        ("nesting", deep, 128 << 10),
    ];
    for (what, make, small) in cases {
        let (a, b) = (make(small), make(4 * small));
        let elements = Document::parse(&b).unwrap().len();
        let (t_a, _) = best_of_three(|| Document::parse(&a).map(|d| d.len()));
        let (t_b, peak) = best_of_three(|| Document::parse(&b).map(|d| d.len()));
        eprintln!(
            "{what}: {} bytes in {t_a:?}, {} bytes ({elements} elements) in {t_b:?}, peak {peak}",
            a.len(),
            b.len()
        );
        assert!(
            peak < 16 * b.len() + 512 * elements,
            "{what}: peak {peak} for {} bytes",
            b.len()
        );
        assert!(
            t_b < t_a * 10,
            "{what}: {t_a:?} for {} bytes, {t_b:?} for {}",
            a.len(),
            b.len()
        );
        // Refused as a domain right after parsing.
        assert!(assign_domain_xml(&b).is_err());
    }
}

fn controllers(n: usize, make: impl Fn(usize) -> String) -> String {
    let all: String = (0..n).map(make).collect();
    format!(
        "<domain type='kvm'><name>t</name><os><type arch='x86_64' machine='q35'>hvm</type>\
         </os><devices>{all}</devices></domain>"
    )
}

/// Controllers are placed in libvirt's order: index-less ones get the lowest free index of
/// their type (this was cubic: 2,000 took seconds, found by the assign_xml fuzzer), and their
/// number is limited (the ordering stays quadratic).
#[test]
fn many_controllers_cost_little_and_are_limited() {
    // At the limit, index-less and of distinct types (the worst orderings).
    let cases = [
        (
            "index-less",
            controllers(MAX_DOMAIN_CONTROLLERS, |_| {
                "<controller type='ccid'/>".into()
            }),
        ),
        (
            "descending",
            controllers(MAX_DOMAIN_CONTROLLERS, |i| {
                format!(
                    "<controller type='ccid' index='{}'/>",
                    MAX_DOMAIN_CONTROLLERS - i
                )
            }),
        ),
        (
            "distinct types",
            controllers(MAX_DOMAIN_CONTROLLERS, |i| {
                format!("<controller type='t{i}'/>")
            }),
        ),
    ];
    for (what, xml) in cases {
        let (result, _, _, took) = measure(|| assign_domain_xml(&xml).map(|o| o.xml.len()));
        eprintln!("{what}: {took:?}");
        if let Err(e) = &result {
            assert!(!e.message.contains("limit"), "{what}: {}", e.message);
        }
        assert!(took < Duration::from_secs(20), "{what}: took {took:?}");
    }
    // Index-less controllers get 0, 1, 2, ... in document order around the given ones.
    let xml = controllers(6, |i| match i {
        1 => "<controller type='ccid' index='1'/>".into(),
        3 => "<controller type='ccid' index='3'/>".into(),
        _ => "<controller type='ccid'/>".into(),
    });
    let out = assign_domain_xml(&xml).unwrap().xml;
    for index in 0..6 {
        assert!(
            out.contains(&format!("type='ccid' index='{index}'")),
            "{index}: {out}"
        );
    }
    let err = assign_domain_xml(&controllers(MAX_DOMAIN_CONTROLLERS + 1, |_| {
        "<controller type='ccid'/>".into()
    }))
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::XmlError);
    assert_eq!(
        err.message,
        format!(
            "XML error: the domain has {} controllers, more than the limit of {MAX_DOMAIN_CONTROLLERS}",
            MAX_DOMAIN_CONTROLLERS + 1
        )
    );
}

#[test]
fn snapshot_limits() {
    let big = format!(
        "{{\"format\": \"virtpci-host/1\"{}}}",
        " ".repeat(MAX_SNAPSHOT_BYTES)
    );
    let (result, allocated, _, _) =
        measure(|| virtpci::host::snapshot::HostSnapshot::from_json(&big));
    let err = result.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArg);
    assert!(
        err.message.contains("larger than the limit"),
        "{}",
        err.message
    );
    assert!(allocated < 4096);

    // A config space of more than 4096 bytes is refused before it is allocated.
    let json = |size: usize| {
        format!(
            r#"{{"format": "virtpci-host/1", "drivers": [], "devices": [{{"address": "0000:00:01.0",
            "vendor": "0x8086", "device": "0x1234", "class": "0x020000",
            "config": {{"hex": "8680", "size": {size}}}}}]}}"#
        )
    };
    let dir = std::env::temp_dir().join(format!("virtpci-limits-{}", std::process::id()));
    for (size, ok) in [
        (MAX_CONFIG_SPACE_BYTES, true),
        (MAX_CONFIG_SPACE_BYTES + 1, false),
        (usize::MAX, false),
    ] {
        let _ = std::fs::remove_dir_all(&dir);
        let snap = virtpci::host::snapshot::HostSnapshot::from_json(&json(size)).unwrap();
        let (result, _, peak, _) = measure(|| snap.materialize(&dir));
        assert_eq!(result.is_ok(), ok, "size {size}: {result:?}");
        if let Err(e) = result {
            assert!(e.message.contains("more than 4096"), "{}", e.message);
        }
        assert!(peak < 1 << 20, "size {size}: peak {peak}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
