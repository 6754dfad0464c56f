//! Walking every IOMMU group of a generated 8,192-device host (8 PCI domains × 8 root ports,
//! each with a PCIe switch of 14 downstream ports, each port holding an 8-function device),
//! compared with plain std::fs walks of the same tree that make the least system calls.
//!
//! Run with `cargo bench --bench host_groups`; set VIRTPCI_BENCH_ROUNDS to change the number
//! of timed rounds (default 15). Prints medians.

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};
use virtpci::host::snapshot::{HostSnapshot, FORMAT};

#[path = "../tests/host_support/records.rs"]
mod records;
use records::device_record as rec;
use virtpci::host::Host;

fn generate(dir: &Path) -> usize {
    let mut devices = Vec::new();
    let mut group = 0u32;
    let mut next_group = || {
        group += 1;
        group - 1
    };
    for domain in 0..8u32 {
        let mut bus = 1u32;
        for rp in 0..8u32 {
            let rp_addr = format!("{domain:04x}:00:{:02x}.0", rp + 1);
            devices.push(rec(
                rp_addr.clone(),
                None,
                "0x060400",
                "pcieport",
                next_group(),
                "root_port",
                false,
            ));
            let us_bus = bus;
            let ds_bus = bus + 1;
            bus += 2;
            let us_addr = format!("{domain:04x}:{us_bus:02x}:00.0");
            devices.push(rec(
                us_addr.clone(),
                Some(rp_addr),
                "0x060400",
                "pcieport",
                next_group(),
                "upstream_port",
                false,
            ));
            for ds in 0..14u32 {
                let ds_addr = format!("{domain:04x}:{ds_bus:02x}:{ds:02x}.0");
                devices.push(rec(
                    ds_addr.clone(),
                    Some(us_addr.clone()),
                    "0x060400",
                    "pcieport",
                    next_group(),
                    "downstream_port",
                    false,
                ));
                let ep_bus = bus;
                bus += 1;
                let g = next_group();
                for f in 0..8u32 {
                    devices.push(rec(
                        format!("{domain:04x}:{ep_bus:02x}:00.{f}"),
                        Some(ds_addr.clone()),
                        "0x020000",
                        "igb",
                        g,
                        "endpoint",
                        f == 0,
                    ));
                }
            }
        }
    }
    let n = devices.len();
    HostSnapshot {
        format: FORMAT.into(),
        description: Some("generated benchmark host".into()),
        drivers: vec!["igb".into(), "pcieport".into(), "vfio-pci".into()],
        devices,
        host_use: Default::default(),
    }
    .materialize(dir)
    .expect("materialize");
    n
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(rounds: usize, mut f: impl FnMut() -> T) -> Duration {
    for _ in 0..2 {
        black_box(f());
    }
    median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

/// The least a walk yielding group → members and the devices without a group must do:
/// readdir of kernel/iommu_groups, of each group's devices/, and of bus/pci/devices.
fn floor_readdir(root: &Path) -> (usize, usize) {
    let mut members = 0;
    let mut groups = 0;
    for g in fs::read_dir(root.join("kernel/iommu_groups")).unwrap() {
        let g = g.unwrap();
        groups += 1;
        for d in fs::read_dir(g.path().join("devices")).unwrap() {
            black_box(d.unwrap().file_name());
            members += 1;
        }
    }
    let devices = fs::read_dir(root.join("bus/pci/devices")).unwrap().count();
    black_box(devices);
    (groups, members)
}

/// libvirt's way: readdir of bus/pci/devices and readlink of every device's iommu_group.
fn floor_readlink(root: &Path) -> usize {
    let mut n = 0;
    for d in fs::read_dir(root.join("bus/pci/devices")).unwrap() {
        let d = d.unwrap();
        if let Ok(t) = fs::read_link(d.path().join("iommu_group")) {
            black_box(t);
            n += 1;
        }
    }
    n
}

/// A plain walk gathering what `virtpci groups` prints: the group walk, then for each device
/// vendor, device, class and the driver link.
fn floor_report(root: &Path) -> usize {
    let (_, members) = floor_readdir(root);
    let mut n = 0;
    for d in fs::read_dir(root.join("bus/pci/devices")).unwrap() {
        let p = d.unwrap().path();
        for a in ["vendor", "device", "class"] {
            black_box(fs::read_to_string(p.join(a)).unwrap());
        }
        black_box(fs::read_link(p.join("driver")).ok());
        n += 1;
    }
    black_box(members);
    n
}

fn main() {
    let rounds: usize = std::env::var("VIRTPCI_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let base = if Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("virtpci-bench-host-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let t = Instant::now();
    let n = generate(&dir);
    println!(
        "generated {n} devices in {:?} at {}",
        t.elapsed(),
        dir.display()
    );

    let host = Host::open(Some(&dir)).unwrap();
    let groups = host.iommu_groups().unwrap();
    let members: usize = groups.groups.iter().map(|g| g.devices.len()).sum();
    assert_eq!(members, n);
    println!(
        "{} groups, {} members, {} without group",
        groups.groups.len(),
        members,
        groups.no_group.len()
    );

    let ours = time(rounds, || host.iommu_groups().unwrap());
    let floor = time(rounds, || floor_readdir(&dir));
    let floor_links = time(rounds, || floor_readlink(&dir));
    println!("walk all groups (Host::iommu_groups): {ours:?}");
    println!(
        "  floor, readdir of the same directories:   {floor:?}  -> ratio {:.2}",
        ours.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "  floor, readdir + readlink per device:     {floor_links:?}  -> ratio {:.2}",
        ours.as_secs_f64() / floor_links.as_secs_f64()
    );

    let report = time(rounds.min(7), || {
        let g = host.iommu_groups().unwrap();
        let mut n = 0;
        for a in g.groups.iter().flat_map(|g| g.devices.iter()) {
            black_box(host.summary(a).unwrap());
            n += 1;
        }
        n
    });
    let floor_rep = time(rounds.min(7), || floor_report(&dir));
    println!("groups report (walk + ids + driver of each device): {report:?}");
    println!(
        "  floor, same reads with std::fs:           {floor_rep:?}  -> ratio {:.2}",
        report.as_secs_f64() / floor_rep.as_secs_f64()
    );

    let one = host.iommu_groups().unwrap().groups[100].devices[0];
    let per_device = time(rounds, || host.iommu_group(&one).unwrap());
    println!("one device's group (Host::iommu_group, 8 members): {per_device:?}");
    let _ = fs::remove_dir_all(&dir);
}
