//! parse + assign + format of a q35 domain with N virtio NICs (N = 10, 100, 237; 237 is the
//! most libvirt 9.0 accepts on q35). Measured with std::time over many iterations; prints the
//! mean and the best batch per call.
//!
//! `cargo bench --bench assign -- --once N K` runs K calls for N NICs and nothing else, for
//! instruction counting (`valgrind --tool=callgrind`): the difference between K = 1 and
//! K = 11, divided by 10, is the cost of one call. `--print N` writes the domain to stdout.

use std::hint::black_box;
use std::time::{Duration, Instant};

fn q35_with_nics(n: usize) -> String {
    let mut xml = String::from(
        "<domain type='qemu'>\n  <name>bench</name>\n  <memory unit='KiB'>1048576</memory>\n  \
         <vcpu>1</vcpu>\n  <os>\n    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\n  </os>\n  \
         <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n    \
         <controller type='sata' index='0'/>\n    \
         <controller type='pci' index='0' model='pcie-root'/>\n",
    );
    for i in 0..n {
        xml.push_str(&format!(
            "    <interface type='user'>\n      <mac address='52:54:00:00:{:02x}:{:02x}'/>\n      \
             <model type='virtio'/>\n    </interface>\n",
            i / 256,
            i % 256
        ));
    }
    xml.push_str("    <memballoon model='none'/>\n  </devices>\n</domain>\n");
    xml
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .expect("a number argument")
    };
    if let Some(pos) = args.iter().position(|a| a == "--once") {
        let xml = q35_with_nics(number(pos + 1));
        for _ in 0..number(pos + 2) {
            black_box(virtpci::assign_domain_xml(black_box(&xml)).unwrap());
        }
        return;
    }
    if let Some(pos) = args.iter().position(|a| a == "--print") {
        print!("{}", q35_with_nics(number(pos + 1)));
        return;
    }
    for n in [10usize, 100, 237] {
        let xml = q35_with_nics(n);
        // Warm up, and check the case is one libvirt accepts.
        let out = virtpci::assign_domain_xml(&xml).expect("the benchmark domain is valid");
        assert!(out.xml.len() > xml.len());
        let batch = if n < 100 { 2000 } else { 200 };
        let mut best = Duration::MAX;
        let mut total = Duration::ZERO;
        let mut calls = 0u32;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2) {
            let t = Instant::now();
            for _ in 0..batch {
                black_box(virtpci::assign_domain_xml(black_box(&xml)).unwrap());
            }
            let spent = t.elapsed();
            best = best.min(spent / batch);
            total += spent;
            calls += batch;
        }
        println!(
            "q35 + {n:3} virtio NICs: mean {:8.1} us, best {:8.1} us per parse+assign+format ({calls} calls)",
            total.as_secs_f64() * 1e6 / f64::from(calls),
            best.as_secs_f64() * 1e6
        );
    }
}
