#!/usr/bin/env python3
"""gen_sysfs.py DIR [--expect FILE]

An independent generator of a sysfs tree laid out like Linux's /sys (it shares no code with
virtpci's own materializer): device directories nested under devices/pciDDDD:BB following the
bridges, relative symlinks from bus/pci/devices, bus/pci/drivers/<drv>/<dev>,
kernel/iommu_groups/<n>/devices/<dev>, and each device's driver, iommu_group, physfn and
virtfnN links; config space bytes written from scratch (capability list with PM at 0xc8 and PCIe
at 0x80, ACS extended capability at 0x148).

The topology: a GPU with its audio function behind a root port without ACS (one group), a PCIe
switch with an NVMe and a 4-function NIC, conventional PCI devices behind a PCIe-to-PCI bridge
sharing its group, an SR-IOV PF with two VFs (one on vfio-pci, one unbound), the chipset
functions in one group, and a second PCI domain whose devices have no IOMMU group.

With --expect, writes what a reader must find: "cli" is exactly the JSON `virtpci groups
--json` must print, "parents" maps each device to its parent bridge (or null), "drivers" maps
each device to its driver (or null), "vfs" maps the PF to its VFs.

Standard library only.
"""
import json
import os
import struct
import sys

# address, parent, vendor, device, class, driver, group, extra
# extra: pcie port type name, flr, acs, multifunction, physfn, net
DEVICES = [
    ("0000:00:00.0", None, 0x8086, 0x3e30, 0x060000, None, 0, {}),
    ("0000:00:01.0", None, 0x8086, 0x1901, 0x060400, "pcieport", 1, {"pcie": 4}),
    ("0000:01:00.0", "0000:00:01.0", 0x10de, 0x1b80, 0x030000, "nouveau", 1, {"pcie": 0, "mf": True}),
    ("0000:01:00.1", "0000:00:01.0", 0x10de, 0x10f0, 0x040300, "snd_hda_intel", 1, {"pcie": 0}),
    ("0000:00:1c.0", None, 0x8086, 0xa33c, 0x060400, "pcieport", 2, {"pcie": 4, "acs": 0x1f}),
    ("0000:02:00.0", "0000:00:1c.0", 0x10b5, 0x8747, 0x060400, "pcieport", 3, {"pcie": 5}),
    ("0000:03:08.0", "0000:02:00.0", 0x10b5, 0x8747, 0x060400, "pcieport", 4, {"pcie": 6, "acs": 0x1f}),
    ("0000:03:10.0", "0000:02:00.0", 0x10b5, 0x8747, 0x060400, "pcieport", 5, {"pcie": 6, "acs": 0x1f}),
    ("0000:04:00.0", "0000:03:08.0", 0x144d, 0xa808, 0x010802, "nvme", 6, {"pcie": 0, "flr": True}),
    ("0000:05:00.0", "0000:03:10.0", 0x8086, 0x1521, 0x020000, "igb", 7, {"pcie": 0, "flr": True, "mf": True, "net": "enp5s0f0"}),
    ("0000:05:00.1", "0000:03:10.0", 0x8086, 0x1521, 0x020000, "igb", 7, {"pcie": 0, "flr": True, "net": "enp5s0f1"}),
    ("0000:05:00.2", "0000:03:10.0", 0x8086, 0x1521, 0x020000, "igb", 7, {"pcie": 0, "flr": True, "net": "enp5s0f2"}),
    ("0000:05:00.3", "0000:03:10.0", 0x8086, 0x1521, 0x020000, "vfio-pci", 7, {"pcie": 0, "flr": True}),
    ("0000:00:1d.0", None, 0x8086, 0xa330, 0x060400, "pcieport", 8, {"pcie": 4, "acs": 0x1f}),
    ("0000:06:00.0", "0000:00:1d.0", 0x1b21, 0x1080, 0x060401, None, 9, {"pcie": 7}),
    ("0000:07:00.0", "0000:06:00.0", 0x8086, 0x100e, 0x020000, "e1000", 9, {"net": "ens7"}),
    ("0000:07:01.0", "0000:06:00.0", 0x10ec, 0x8139, 0x020000, "8139too", 9, {}),
    ("0000:07:02.0", "0000:06:00.0", 0x1102, 0x0002, 0x040100, None, 9, {}),
    ("0000:00:1e.0", None, 0x8086, 0xa331, 0x060400, "pcieport", 10, {"pcie": 4, "acs": 0x1f}),
    ("0000:08:00.0", "0000:00:1e.0", 0x8086, 0x10c9, 0x020000, "igb", 11, {"pcie": 0, "flr": True, "net": "enp8s0", "totalvfs": 7}),
    ("0000:08:10.0", "0000:00:1e.0", 0x8086, 0x10ca, 0x020000, "vfio-pci", 12, {"pcie": 0, "physfn": "0000:08:00.0"}),
    ("0000:08:10.2", "0000:00:1e.0", 0x8086, 0x10ca, 0x020000, None, 13, {"pcie": 0, "physfn": "0000:08:00.0"}),
    ("0000:00:1f.0", None, 0x8086, 0xa305, 0x060100, None, 14, {"mf": True}),
    ("0000:00:1f.3", None, 0x8086, 0xa348, 0x040300, "snd_hda_intel", 14, {}),
    ("0000:00:1f.4", None, 0x8086, 0xa323, 0x0c0500, "i801_smbus", 14, {}),
    ("0001:00:00.0", None, 0x8086, 0x201d, 0x060400, "pcieport", None, {"pcie": 4}),
    ("0001:01:00.0", "0001:00:00.0", 0x8086, 0x0a54, 0x010802, "nvme", None, {"pcie": 0, "flr": True}),
]


def config_bytes(addr, vendor, device, cls, extra, children_buses):
    pcie = extra.get("pcie")
    size = 4096 if pcie is not None else 256
    b = bytearray(size)
    struct.pack_into("<HHHH", b, 0, vendor, device, 0x0406, 0x0010)
    b[8] = 1
    b[9:12] = bytes([cls & 0xFF, (cls >> 8) & 0xFF, (cls >> 16) & 0xFF])
    bridge = (cls >> 8) == 0x0604
    b[0x0E] = (1 if bridge else 0) | (0x80 if extra.get("mf") else 0)
    if bridge:
        bus = int(addr[5:7], 16)
        sec = min(children_buses) if children_buses else 0
        sub = max(children_buses) if children_buses else 0
        b[0x18], b[0x19], b[0x1A] = bus, sec, sub
    # capability list: PM at 0xc8, then PCIe at 0x80 (out of order on purpose)
    b[0x34] = 0xC8
    b[0xC8], b[0xC9] = 0x01, (0x80 if pcie is not None else 0)
    struct.pack_into("<HH", b, 0xCA, 0x0003, 0x0000)
    if pcie is not None:
        b[0x80], b[0x81] = 0x10, 0x00
        struct.pack_into("<H", b, 0x82, 0x0002 | (pcie << 4))
        struct.pack_into("<I", b, 0x84, (1 << 28) if extra.get("flr") else 0)
        if "acs" in extra:
            # AER at 0x100 -> ACS at 0x148
            struct.pack_into("<I", b, 0x100, 0x0001 | (1 << 16) | (0x148 << 20))
            struct.pack_into("<I", b, 0x148, 0x000D | (1 << 16))
            struct.pack_into("<HH", b, 0x14C, 0x001F, extra["acs"])
    return bytes(b)


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    root = os.path.abspath(args[0])
    expect = None
    if "--expect" in args:
        expect = args[args.index("--expect") + 1]
    os.makedirs(root, exist_ok=True)
    if os.listdir(root):
        print("gen_sysfs: %s is not empty" % root, file=sys.stderr)
        return 2

    def p(*parts):
        return os.path.join(root, *parts)

    def write(path, data, mode=0o644):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        os.chmod(path, mode)

    def link(path, target):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(os.path.relpath(target, os.path.dirname(path)), path)

    by_addr = {d[0]: d for d in DEVICES}
    real = {}

    def dev_dir(addr):
        if addr in real:
            return real[addr]
        parent = by_addr[addr][1]
        if parent:
            d = os.path.join(dev_dir(parent), addr)
        else:
            d = p("devices", "pci%s:%s" % (addr[0:4], addr[5:7]), addr)
        real[addr] = d
        return d

    children_buses = {}
    for addr, parent, *_ in DEVICES:
        if parent:
            # every bus below the parent, for subordinate numbers
            a = parent
            while a:
                children_buses.setdefault(a, []).append(int(addr[5:7], 16))
                a = by_addr[a][1]

    os.makedirs(p("bus", "pci", "devices"))
    os.makedirs(p("kernel", "iommu_groups"))
    os.makedirs(p("class", "net"))
    write(p("bus", "pci", "drivers_probe"), "", 0o200)
    drivers = sorted({d[5] for d in DEVICES if d[5]} | {"vfio-pci"})
    for drv in drivers:
        for f in ("bind", "unbind", "new_id", "remove_id", "uevent"):
            write(p("bus", "pci", "drivers", drv, f), "", 0o200)

    vfs = {}
    for addr, parent, vendor, device, cls, driver, group, extra in DEVICES:
        d = dev_dir(addr)
        os.makedirs(d, exist_ok=True)
        write(os.path.join(d, "vendor"), "0x%04x\n" % vendor, 0o444)
        write(os.path.join(d, "device"), "0x%04x\n" % device, 0o444)
        write(os.path.join(d, "class"), "0x%06x\n" % cls, 0o444)
        write(os.path.join(d, "subsystem_vendor"), "0x0000\n", 0o444)
        write(os.path.join(d, "subsystem_device"), "0x0000\n", 0o444)
        write(os.path.join(d, "driver_override"), "(null)\n")
        write(os.path.join(d, "numa_node"), "-1\n")
        write(os.path.join(d, "config"),
              config_bytes(addr, vendor, device, cls, extra, children_buses.get(addr, [])))
        link(p("bus", "pci", "devices", addr), d)
        if driver:
            link(os.path.join(d, "driver"), p("bus", "pci", "drivers", driver))
            link(p("bus", "pci", "drivers", driver, addr), d)
        if group is not None:
            g = p("kernel", "iommu_groups", str(group))
            os.makedirs(os.path.join(g, "devices"), exist_ok=True)
            link(os.path.join(g, "devices", addr), d)
            link(os.path.join(d, "iommu_group"), g)
        if "net" in extra:
            n = os.path.join(d, "net", extra["net"])
            os.makedirs(n)
            link(p("class", "net", extra["net"]), n)
        if "totalvfs" in extra:
            write(os.path.join(d, "sriov_totalvfs"), "%d\n" % extra["totalvfs"], 0o444)
        if "physfn" in extra:
            vfs.setdefault(extra["physfn"], []).append(addr)
    for pf, members in vfs.items():
        for i, vf in enumerate(sorted(members)):
            link(os.path.join(dev_dir(pf), "virtfn%d" % i), dev_dir(vf))
            link(os.path.join(dev_dir(vf), "physfn"), dev_dir(pf))

    if expect:
        def item(d):
            return {"address": d[0], "vendor": "0x%04x" % d[2], "device": "0x%04x" % d[3],
                    "class": "0x%06x" % d[4], "driver": d[5]}

        def key(a):
            dom, bus, rest = a.split(":")
            slot, fn = rest.split(".")
            return (int(dom, 16), int(bus, 16), int(slot, 16), int(fn, 16))

        groups = {}
        for d in DEVICES:
            if d[6] is not None:
                groups.setdefault(d[6], []).append(d)
        cli = {
            "groups": [{"group": g, "devices": [item(d) for d in sorted(groups[g], key=lambda d: key(d[0]))]}
                       for g in sorted(groups)],
            "no_iommu_group": [item(d) for d in sorted(DEVICES, key=lambda d: key(d[0])) if d[6] is None],
        }
        out = {
            "cli": cli,
            "parents": {d[0]: d[1] for d in DEVICES},
            "drivers": {d[0]: d[5] for d in DEVICES},
            "vfs": {pf: sorted(m) for pf, m in vfs.items()},
        }
        with open(expect, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
