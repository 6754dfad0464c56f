//! Time at the input limits of `src/limits.rs` (the tests in `tests/limits.rs` check errors
//! and memory, not time): how fast the worst inputs are refused, how parsing time grows with
//! the size of the worst documents within the limits (four times the input should take about
//! four times as long; a quadratic step would take sixteen), and an assignment with as many
//! controllers as allowed in the orderings that cost most. Prints the best of five runs.
//!
//! `cargo bench --bench limits`; `cargo bench --bench limits -- --once attributes|nesting K`
//! parses the larger of the two documents K times and nothing else, for instruction counting
//! (`valgrind --tool=callgrind`: the difference between K = 1 and K = 3, halved, is one parse).

#[path = "../tests/limits_support/mod.rs"]
mod limits_support;

use limits_support::{costliest_controller_domains, deep, nested, wide};
use std::hint::black_box;
use std::time::{Duration, Instant};
use virtpci::limits::{MAX_DOMAIN_CONTROLLERS, MAX_XML_BYTES};
use virtpci::xml::Document;

fn best_of_five<T>(f: impl Fn() -> T) -> Duration {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--once") {
        let arg = |i: usize| {
            args.get(pos + i)
                .expect("--once attributes|nesting K")
                .as_str()
        };
        let xml = match arg(1) {
            "attributes" => wide(MAX_XML_BYTES),
            "nesting" => deep(4 * (128 << 10)),
            other => panic!("--once {other}: attributes or nesting"),
        };
        for _ in 0..arg(2).parse::<u32>().expect("a count") {
            black_box(Document::parse(black_box(&xml)).unwrap().len());
        }
        return;
    }
    // Refusals: a document of 1 GiB (by its length, through Rust and through C, which reads at
    // most the limit + 1 bytes) and 100,000 nested elements.
    let mut gib = b"<domain type='kvm'>".to_vec();
    gib.resize((1 << 30) - b"</domain>".len(), b' ');
    gib.extend_from_slice(b"</domain>\0");
    let text = std::str::from_utf8(&gib[..gib.len() - 1]).unwrap();
    let took = best_of_five(|| virtpci::assign_domain_xml(text).unwrap_err());
    println!("refuse 1 GiB of XML: {took:?}");
    let took = best_of_five(|| {
        let mut out = std::ptr::null_mut();
        // SAFETY: NUL-terminated and alive for the call; out is a local.
        let rc = unsafe {
            virtpci::ffi::assign::virtpci_domain_assign_pci_addresses(
                gib.as_ptr().cast(),
                0,
                &mut out,
            )
        };
        assert_eq!(rc, -1);
    });
    println!("refuse 1 GiB of XML through C: {took:?}");
    drop(gib);
    let deep_domain = format!(
        "<domain type='kvm'><devices>{}</devices></domain>",
        nested(100_000)
    );
    let took = best_of_five(|| virtpci::assign_domain_xml(&deep_domain).unwrap_err());
    println!("refuse 100,000 nested elements: {took:?}");

    // Growth: the worst documents, and four times them, within the limits.
    let cases = [
        ("attributes", wide as fn(usize) -> String, MAX_XML_BYTES / 4),
        ("nesting", deep, 128 << 10),
    ];
    for (what, make, small) in cases {
        let (a, b) = (make(small), make(4 * small));
        let t_a = best_of_five(|| Document::parse(&a).unwrap().len());
        let t_b = best_of_five(|| Document::parse(&b).unwrap().len());
        println!(
            "parse {what}: {} bytes {t_a:?}, {} bytes {t_b:?}, ratio {:.2}",
            a.len(),
            b.len(),
            t_b.as_secs_f64() / t_a.as_secs_f64()
        );
    }

    // Controllers at their limit.
    for (what, xml) in costliest_controller_domains() {
        let took = best_of_five(|| virtpci::assign_domain_xml(&xml).map(|o| o.xml.len()));
        println!("{MAX_DOMAIN_CONTROLLERS} controllers, {what}: {took:?}");
    }
}
