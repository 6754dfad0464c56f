//! Extend mode (issue 6): parse + assign + format of domains with 1,000 and 10,000 virtio
//! NICs that libvirt 9.0 cannot place, with `AssignOptions::extend`. Each domain is
//! measured whole (the same call a daemon makes) and the 10,000 run is compared with the
//! 1,000 run: the goal is 10,000 in under 20 ms and no more than 12 times the 1,000 run.
//!
//! Domains: pc with NICs marked `<addressPreferences hotplug='no'/>` (packed eight to a slot
//! on pci-bridges behind pci-bridges), q35 with `hotplug='no' bus='pci'` (the same behind a
//! pcie-to-pci-bridge), pc with 2,000 / 6,000 hot-pluggable NICs (one slot each; about 6,900
//! is close to the most 255 bridges take), q35 with 1,000 / 5,000 plain NICs (ports, then
//! bridges) and q35 with 1,000 / 10,000 `hotplug='no'` NICs. Prints the best and the median per call of the wall
//! clock and of the thread's CPU time (which leaves out time a busy virtualization host takes).
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
    libvirt: virtpci::assign::LibvirtLevel::V9_0,
    emulator: virtpci::assign::EmulatorCaps::LEVEL_DEFAULT,
};

fn assign(xml: &str) -> String {
    virtpci::assign_domain_xml_with(black_box(xml), EXTEND)
        .expect("the benchmark domain fits in extend mode")
        .xml
}

/// CPU time of this thread (user + system). On a virtual machine whose host is busy, time
/// the hypervisor gives to others counts in the wall clock but not here.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a local to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Per-call figures in seconds, over about `seconds` of calls: best and median of the wall
/// clock and of the thread's CPU time.
struct Figures {
    wall_best: f64,
    wall_median: f64,
    cpu_best: f64,
    cpu_median: f64,
}

fn measure(xml: &str, seconds: u64) -> Figures {
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) || wall.len() < 5 {
        let (t, c) = (Instant::now(), thread_cpu_time());
        black_box(assign(xml));
        cpu.push((thread_cpu_time() - c).as_secs_f64());
        wall.push(t.elapsed().as_secs_f64());
    }
    let best_and_median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2])
    };
    let (wall_best, wall_median) = best_and_median(&mut wall);
    let (cpu_best, cpu_median) = best_and_median(&mut cpu);
    Figures {
        wall_best,
        wall_median,
        cpu_best,
        cpu_median,
    }
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
        // Plain devices on q35: PCI Express ports, then hot-pluggable bridges (about 5,000
        // fit; 10,000 hot-pluggable devices need more slots than 256 buses of 31 have).
        ("q35 hot-pluggable", "pc-q35-7.2", "", [1000, 5000]),
        (
            "q35 hotplug='no'",
            "pc-q35-7.2",
            "<addressPreferences hotplug='no'/>",
            [1000, 10000],
        ),
    ];
    for (name, machine, preference, [small, large]) in cases {
        let small_xml = domain(machine, small, preference);
        let large_xml = domain(machine, large, preference);
        // Warm up; and libvirt's placement alone refuses both.
        for xml in [&small_xml, &large_xml] {
            assert!(virtpci::assign_domain_xml(xml).is_err());
            assign(xml);
        }
        let (s, l) = (measure(&small_xml, 2), measure(&large_xml, 4));
        let ms = |x: f64| x * 1e3;
        println!(
            "{name:27} {small:5} NICs: wall best {:6.2} median {:6.2} ms, CPU best {:6.2} median {:6.2} ms",
            ms(s.wall_best), ms(s.wall_median), ms(s.cpu_best), ms(s.cpu_median)
        );
        println!(
            "{:27} {large:5} NICs: wall best {:6.2} median {:6.2} ms, CPU best {:6.2} median {:6.2} ms",
            "", ms(l.wall_best), ms(l.wall_median), ms(l.cpu_best), ms(l.cpu_median)
        );
        println!(
            "{:27} ratio {large}/{small}: wall best {:5.2} median {:5.2}, CPU best {:5.2} median {:5.2}",
            "",
            l.wall_best / s.wall_best,
            l.wall_median / s.wall_median,
            l.cpu_best / s.cpu_best,
            l.cpu_median / s.cpu_median,
        );
    }
}
