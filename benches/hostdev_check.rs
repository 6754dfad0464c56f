//! The dry run of prepare (`HostdevManager::check`, what `virtpci check` runs) for 64 hostdevs
//! in 16 IOMMU groups on a generated 8,192-device host (8 PCI domains × 8 root ports, each with
//! a PCIe switch of 14 downstream ports, each port holding an 8-function device whose functions
//! form two groups of 4). Goal: under 5 ms.
//!
//! Run with `cargo bench --bench hostdev_check`; VIRTPCI_BENCH_ROUNDS sets the number of timed
//! rounds (default 30). Prints the median and the spread, and one prepare/re-attach cycle of
//! the same request on the simulated kernel for scale.

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use virtpci::host::snapshot::{DeviceRecord, HostSnapshot, FORMAT};

#[path = "../tests/host_support/records.rs"]
mod records;
use virtpci::host::Host;
use virtpci::hostdev::{HostdevManager, PrepareOptions};
use virtpci::HostdevSpec;
use virtpci::PciAddress;

/// A generated device whose reset is a PM reset (no FLR), so the check plans resets.
fn rec(
    address: String,
    parent: Option<String>,
    class: &str,
    driver: &str,
    group: u32,
    pcie: &str,
    multifunction: bool,
) -> DeviceRecord {
    let mut record =
        records::device_record(address, parent, class, driver, group, pcie, multifunction);
    record.config.pm = true;
    record
}

/// Returns the number of devices and, per endpoint group, its members.
fn generate(dir: &Path) -> (usize, Vec<Vec<PciAddress>>) {
    let mut devices = Vec::new();
    let mut endpoint_groups = Vec::new();
    let mut group = 0u32;
    for domain in 0..8u32 {
        let mut bus = 1u32;
        for rp in 0..8u32 {
            let rp_addr = format!("{domain:04x}:00:{:02x}.0", rp + 1);
            devices.push(rec(
                rp_addr.clone(),
                None,
                "0x060400",
                "pcieport",
                group,
                "root_port",
                false,
            ));
            group += 1;
            let us_bus = bus;
            let ds_bus = bus + 1;
            bus += 2;
            let us_addr = format!("{domain:04x}:{us_bus:02x}:00.0");
            devices.push(rec(
                us_addr.clone(),
                Some(rp_addr),
                "0x060400",
                "pcieport",
                group,
                "upstream_port",
                false,
            ));
            group += 1;
            for ds in 0..14u32 {
                let ds_addr = format!("{domain:04x}:{ds_bus:02x}:{ds:02x}.0");
                devices.push(rec(
                    ds_addr.clone(),
                    Some(us_addr.clone()),
                    "0x060400",
                    "pcieport",
                    group,
                    "downstream_port",
                    false,
                ));
                group += 1;
                let ep_bus = bus;
                bus += 1;
                for half in 0..2u32 {
                    let mut members = Vec::new();
                    for f in half * 4..half * 4 + 4 {
                        devices.push(rec(
                            format!("{domain:04x}:{ep_bus:02x}:00.{f}"),
                            Some(ds_addr.clone()),
                            "0x020000",
                            "igb",
                            group,
                            "endpoint",
                            f == 0,
                        ));
                        members.push(PciAddress::new(domain, ep_bus, 0, f));
                    }
                    endpoint_groups.push(members);
                    group += 1;
                }
            }
        }
    }
    let n = devices.len();
    HostSnapshot {
        format: FORMAT.into(),
        description: Some("generated hostdev benchmark host".into()),
        drivers: vec!["igb".into(), "pcieport".into(), "vfio-pci".into()],
        devices,
        host_use: Default::default(),
    }
    .materialize(dir)
    .expect("materialize");
    (n, endpoint_groups)
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2], v[v.len() * 9 / 10])
}

fn main() {
    let rounds: usize = std::env::var("VIRTPCI_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    // The tree lives on tmpfs when there is one (as /sys does); VIRTPCI_BENCH_DIR keeps it
    // between runs (it is generated when missing).
    let keep = std::env::var_os("VIRTPCI_BENCH_DIR").map(std::path::PathBuf::from);
    let base = if Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = keep
        .clone()
        .unwrap_or_else(|| base.join(format!("virtpci-bench-hostdev-{}", std::process::id())));
    let reuse = keep.is_some() && dir.join("bus/pci/devices").is_dir();
    if !reuse {
        let _ = fs::remove_dir_all(&dir);
    }
    let t = Instant::now();
    let (n, groups) = if reuse {
        (8192, layout())
    } else {
        generate(&dir)
    };
    let _ = fs::remove_dir_all(dir.join(".state"));
    println!(
        "{} {n} devices in {:?} at {}",
        if reuse { "reused" } else { "generated" },
        t.elapsed(),
        dir.display()
    );
    assert_eq!(n, 8192);

    let host = Arc::new(Host::open_simulated(&dir).expect("open"));
    let mgr = HostdevManager::new(host.clone(), &dir.join(".state")).expect("manager");
    // 16 groups spread over the host: every 29th endpoint group.
    let chosen: Vec<&Vec<PciAddress>> = groups.iter().step_by(groups.len() / 16).take(16).collect();
    let hostdevs: Vec<HostdevSpec> = chosen
        .iter()
        .flat_map(|g| g.iter().map(|a| HostdevSpec::managed(*a)))
        .collect();
    assert_eq!(hostdevs.len(), 64);

    let report = mgr
        .check("QEMU", "bench", &hostdevs, PrepareOptions::default())
        .expect("check");
    assert!(report.ok(), "{:?}", report.violations);
    assert_eq!(report.groups.len(), 16);
    assert_eq!(report.detaching().count(), 64);

    for _ in 0..3 {
        black_box(
            mgr.check("QEMU", "bench", &hostdevs, PrepareOptions::default())
                .unwrap(),
        );
    }
    let times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            black_box(
                mgr.check("QEMU", "bench", &hostdevs, PrepareOptions::default())
                    .unwrap(),
            );
            t.elapsed()
        })
        .collect();
    let (min, median, p90) = stats(times);
    println!(
        "dry-run check, 64 hostdevs in 16 groups, {n}-device host: median {median:?} (min {min:?}, p90 {p90:?}) over {rounds} rounds; goal < 5 ms: {}",
        if median < Duration::from_millis(5) { "met" } else { "NOT met" }
    );

    // A violation found by the same check: one group member left out.
    let partial = &hostdevs[1..];
    let t = Instant::now();
    let r = mgr
        .check("QEMU", "bench", partial, PrepareOptions::default())
        .unwrap();
    println!(
        "check with an S5 violation: {:?} ({})",
        t.elapsed(),
        r.violations[0].message
    );

    let t = Instant::now();
    mgr.prepare_pci_devices("QEMU", "bench", None, &hostdevs, PrepareOptions::default())
        .unwrap();
    let prep = t.elapsed();
    let t = Instant::now();
    mgr.reattach_pci_devices("QEMU", "bench", &hostdevs)
        .unwrap();
    println!(
        "for scale, on the simulated kernel: prepare {prep:?} ({} sysfs writes), re-attach {:?}",
        host.faults().attempted_total(),
        t.elapsed()
    );
    if keep.is_none() {
        let _ = fs::remove_dir_all(&dir);
    }
}

/// The endpoint groups of the generated layout, without generating it.
fn layout() -> Vec<Vec<PciAddress>> {
    let mut out = Vec::new();
    for domain in 0..8u32 {
        let mut bus = 1u32;
        for _ in 0..8u32 {
            bus += 2;
            for _ in 0..14u32 {
                let ep_bus = bus;
                bus += 1;
                for half in 0..2u32 {
                    out.push(
                        (half * 4..half * 4 + 4)
                            .map(|f| PciAddress::new(domain, ep_bus, 0, f))
                            .collect(),
                    );
                }
            }
        }
    }
    out
}
