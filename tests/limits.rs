//! The input limits of `src/limits.rs`: beyond each, a clear error, reached cheaply; at each,
//! the input is still read; and within them, memory stays bounded. Allocations are counted per
//! thread by a counting allocator, so the tests may run in parallel. Time is not measured here
//! but in `benches/limits.rs`.

mod limits_support;

use limits_support::{
    attributes, controllers, costliest_controller_domains, deep, many_elements, nested, q35_domain,
    wide,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::{c_char, CStr};
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

/// Run `f` on a thread of its own, returning what it returned, the bytes it allocated and its
/// peak of live bytes above what was live before. A new thread has none of the spare buffers
/// an earlier call leaves to its thread (`src/xml/spare.rs`), so this is a first call's cost,
/// whichever test ran before on the calling thread.
fn measure<T: Send>(f: impl FnOnce() -> T + Send) -> (T, usize, usize) {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ALLOCATED.with(|a| a.set(0));
                let base = LIVE.with(|l| l.get());
                PEAK.with(|p| p.set(base));
                let value = f();
                let allocated = ALLOCATED.with(|a| a.get());
                let peak = (PEAK.with(|p| p.get()) - base).max(0) as usize;
                (value, allocated, peak)
            })
            .join()
            .expect("the measured call did not panic")
    })
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

    let (result, allocated, _) = measure(|| assign_domain_xml(text));
    let err = result.unwrap_err();
    assert_eq!(err.code, ErrorCode::XmlError);
    assert_eq!(
        err.message,
        format!(
            "XML error: document of {GIB} bytes is larger than the limit of {MAX_XML_BYTES} bytes"
        )
    );
    assert!(allocated < 4096, "refusing allocated {allocated} bytes");

    // The same through the C entry point, NUL-terminated as C passes it.
    buf.push(0);
    let ((rc, out_was_set, error), allocated, _) = measure(|| {
        let mut out: *mut c_char = std::ptr::null_mut();
        // SAFETY: buf is NUL-terminated and outlives the call; out is a local.
        let rc = unsafe {
            virtpci::ffi::assign::virtpci_domain_assign_pci_addresses(
                buf.as_ptr() as *const c_char,
                0,
                &mut out,
            )
        };
        // The last error is the measuring thread's.
        (rc, !out.is_null(), last_error())
    });
    assert_eq!(rc, -1);
    assert!(!out_was_set);
    assert_eq!(
        error,
        (
            ErrorCode::XmlError as i32,
            format!("XML error: document is larger than the limit of {MAX_XML_BYTES} bytes")
        )
    );
    assert!(allocated < 4096, "refusing allocated {allocated} bytes");
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

#[test]
fn a_hundred_thousand_nested_elements_are_refused_at_the_depth_limit() {
    let mut xml = String::from("<domain type='kvm'><devices>");
    xml.push_str(&nested(100_000));
    xml.push_str("</devices></domain>");
    let (result, _, peak) = measure(|| assign_domain_xml(&xml));
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

/// The worst documents within the limits cost memory in proportion to their size, measured
/// as a first call (on a fresh thread). Measured: parsing at most 4 bytes per input byte and
/// 128 per element (about 48 MiB for 16 MiB of attributes, 7.5 MiB at the element limit), a
/// whole assignment at the element limit about 76 MiB.
#[test]
fn memory_stays_in_proportion_within_the_limits() {
    // As many elements, as wide up to the length limit, and as deep up to the element limit
    // (seven bytes an element) as allowed.
    let cases = [
        ("elements", many_elements(MAX_XML_ELEMENTS)),
        ("attributes", wide(MAX_XML_BYTES)),
        ("nesting", deep(7 * MAX_XML_ELEMENTS)),
    ];
    for (what, doc) in cases {
        let (elements, _, peak) = measure(|| Document::parse(&doc).map(|d| d.len()));
        let elements = elements.unwrap();
        eprintln!(
            "{what}: {} bytes, {elements} elements: peak {peak}",
            doc.len()
        );
        assert!(
            peak < 4 * doc.len() + 128 * elements,
            "{what}: peak {peak} for {} bytes, {elements} elements",
            doc.len()
        );
        // Refused as a domain right after parsing.
        assert!(assign_domain_xml(&doc).is_err());
    }

    // A whole assignment at the element limit: devices that parse into the model but take
    // no PCI slot, as many as fit.
    let domain = q35_domain(&"<serial type='pty'/>".repeat(MAX_XML_ELEMENTS - 10));
    let (result, _, peak) = measure(|| assign_domain_xml(&domain).map(|o| o.xml.len()));
    assert!(result.is_ok(), "{result:?}");
    eprintln!(
        "assignment at the element limit ({} bytes): peak {peak}",
        domain.len()
    );
    assert!(peak < 120 << 20, "assignment peak {} MiB", peak >> 20);
}

/// Controllers are placed in libvirt's order: index-less ones get the lowest free index of
/// their type (this was cubic: 2,000 took seconds, found by the assign_xml fuzzer; the time is
/// in benches/limits.rs), and their number is limited (the ordering stays quadratic).
#[test]
fn controllers_are_placed_up_to_their_limit() {
    for (what, xml) in costliest_controller_domains() {
        if let Err(e) = assign_domain_xml(&xml) {
            assert!(!e.message.contains("limit"), "{what}: {}", e.message);
        }
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
    let (result, allocated, _) = measure(|| virtpci::host::snapshot::HostSnapshot::from_json(&big));
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
        let (result, _, peak) = measure(|| snap.materialize(&dir));
        assert_eq!(result.is_ok(), ok, "size {size}: {result:?}");
        if let Err(e) = result {
            assert!(e.message.contains("more than 4096"), "{}", e.message);
        }
        assert!(peak < 1 << 20, "size {size}: peak {peak}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
