//! Extend mode (issue 6): parse + assign + format of domains with 1,000 and 10,000 virtio
//! NICs that libvirt 9.0 cannot place, with `AssignOptions::extend`. Each domain is
//! measured whole (the same call a daemon makes) and the 10,000 run is compared with the
//! 1,000 run: the goal is 10,000 in under 20 ms and no more than 12 times the 1,000 run.
//!
//! Domains: pc with NICs marked `<addressPreferences hotplug='no'/>` (packed eight to a slot
//! on pci-bridges behind pci-bridges), q35 with `hotplug='no' bus='pci'` (the same behind a
//! pcie-to-pci-bridge), and pc with 2,000 / 6,000 hot-pluggable NICs (one slot each; about 6,900
//! is close to the most 255 bridges take). Prints the best and the mean per call.
//!
//! `cargo bench --bench assign_extend -- --once MACHINE N K` runs K calls and nothing else
//! (for callgrind or perf).

use std::hint::black_box;
use std::time::{Duration, Instant};
use virtpci::AssignOptions;

fn domain(machine: &str, nics: usize, preference: &str) -> String {
    let mut xml = format!(
        "<domain type='kvm'>\n  <name>bench</name>\n  <memory unit='KiB'>4194304</memory>\n  \
         <vcpu>4</vcpu>\n  <os>\n    <type arch='x86_64' machine='{machine}'>hvm</type>\n  </os>\n  \
         <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
    );
    for i in 0..nics {
        xml.push_str(&format!(
            "    <interface type='user'>\n      <mac address='52:54:00:00:{:02x}:{:02x}'/>\n      \
             <model type='virtio'/>\n      {preference}\n    </interface>\n",
            i / 256,
            i % 256
        ));
    }
    xml.push_str("    <memballoon model='none'/>\n  </devices>\n</domain>\n");
    xml
}

const EXTEND: AssignOptions = AssignOptions {
    strict_function0: false,
    hotplug_ports: None,
    extend: true,
};

fn assign(xml: &str) -> String {
    virtpci::assign_domain_xml_with(black_box(xml), EXTEND)
        .expect("the benchmark domain fits in extend mode")
        .xml
}

/// Best and mean seconds per call, over about `seconds` of calls.
fn measure(xml: &str, seconds: u64) -> (f64, f64) {
    let mut best = Duration::MAX;
    let mut total = Duration::ZERO;
    let mut calls = 0u32;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) || calls < 5 {
        let t = Instant::now();
        black_box(assign(xml));
        let spent = t.elapsed();
        best = best.min(spent);
        total += spent;
        calls += 1;
    }
    (best.as_secs_f64(), total.as_secs_f64() / f64::from(calls))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--once") {
        let arg = |i: usize| args.get(pos + i).expect("--once MACHINE N K").as_str();
        let xml = domain(
            arg(1),
            arg(2).parse().unwrap(),
            "<addressPreferences hotplug='no'/>",
        );
        // `--once MACHINE N K parse`: the XML scan alone.
        let parse_only = args.get(pos + 4).is_some_and(|a| a == "parse");
        for _ in 0..arg(3).parse::<u32>().unwrap() {
            if parse_only {
                black_box(
                    virtpci::xml::dom::Document::parse(black_box(&xml))
                        .unwrap()
                        .len(),
                );
            } else {
                black_box(assign(&xml));
            }
        }
        return;
    }
    let cases = [
        (
            "pc hotplug='no'",
            "pc-i440fx-7.2",
            "<addressPreferences hotplug='no'/>",
            [1000, 10000],
        ),
        (
            "q35 hotplug='no' bus='pci'",
            "pc-q35-7.2",
            "<addressPreferences hotplug='no' bus='pci'/>",
            [1000, 10000],
        ),
        ("pc hot-pluggable", "pc-i440fx-7.2", "", [2000, 6000]),
    ];
    for (name, machine, preference, [small, large]) in cases {
        let small_xml = domain(machine, small, preference);
        let large_xml = domain(machine, large, preference);
        // Warm up; and libvirt's placement alone refuses both.
        for xml in [&small_xml, &large_xml] {
            assert!(virtpci::assign_domain_xml(xml).is_err());
            assign(xml);
        }
        let (small_best, small_mean) = measure(&small_xml, 2);
        let (large_best, large_mean) = measure(&large_xml, 4);
        println!(
            "{name:28} {small:5} NICs: best {:7.2} ms, mean {:7.2} ms | {large:5} NICs: best {:7.2} ms, mean {:7.2} ms | ratio best {:5.2}, mean {:5.2}",
            small_best * 1e3,
            small_mean * 1e3,
            large_best * 1e3,
            large_mean * 1e3,
            large_best / small_best,
            large_mean / small_mean,
        );
    }
}
