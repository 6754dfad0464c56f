//! Issue 6: address preferences (`<addressPreferences hotplug bus numa>`, `<hotplug
//! require='no'/>`) and hotplug room (`AssignOptions::hotplug_ports`). Each result is checked
//! for structural validity here, and, when the libvirt 9.0 oracle is installed
//! (`../shared/tools/libvirt-oracle`), fed back to libvirt, which must accept it and keep
//! every address.

mod shared_support;

use std::collections::{BTreeMap, BTreeSet};
use virtpci::topology::{ConnectFlags, PciModel};
use virtpci::xml::Document;
use virtpci::{assign_domain_xml, assign_domain_xml_with, AssignOptions, ErrorCode};

fn domain(machine: &str, cells: usize, devices: &str) -> String {
    let mut numa = String::new();
    if cells > 0 {
        numa.push_str("  <cpu>\n    <numa>\n");
        for c in 0..cells {
            numa.push_str(&format!(
                "      <cell id='{c}' cpus='{c}' memory='262144' unit='KiB'/>\n"
            ));
        }
        numa.push_str("    </numa>\n  </cpu>\n");
    }
    format!(
        "<domain type='qemu'>\n  <name>prefs</name>\n  <memory unit='KiB'>1048576</memory>\n  \
         <vcpu>{}</vcpu>\n  <os>\n    <type arch='x86_64' machine='{machine}'>hvm</type>\n  </os>\n\
         {numa}  <devices>\n{devices}  </devices>\n</domain>\n",
        cells.max(1)
    )
}

fn nic(extra: &str) -> String {
    format!("    <interface type='user'>\n      <model type='virtio'/>\n      {extra}\n    </interface>\n")
}

/// A PCI address as (bus, slot, function).
type Addr = (u32, u32, u32);

/// A PCI controller: model, address, hotplug allowed, NUMA node, busNr.
type ControllerInfo = (PciModel, Option<Addr>, bool, Option<u32>, Option<u32>);

/// What a result says about PCI: controllers by index, and every device's address.
#[derive(Debug, Default)]
struct Topology {
    /// index -> (model, address, hotplug allowed, NUMA node, busNr)
    controllers: BTreeMap<u32, ControllerInfo>,
    /// (element name, address) of every device with a PCI address, in document order.
    devices: Vec<(String, Addr)>,
}

fn number(text: &str) -> u32 {
    let t = text.trim();
    match t.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).unwrap(),
        None => t.parse().unwrap(),
    }
}

fn topology(xml: &str) -> Topology {
    let doc = Document::parse(xml).unwrap();
    let devices = doc.child(doc.root, "devices").unwrap();
    let mut topo = Topology::default();
    for &id in doc.children(devices) {
        let el = doc.element(id);
        let addr = doc.child(id, "address").and_then(|a| {
            let a = doc.element(a);
            (a.attr("type") == Some("pci")).then(|| {
                (
                    number(a.attr("bus").unwrap()),
                    number(a.attr("slot").unwrap()),
                    number(a.attr("function").unwrap()),
                )
            })
        });
        if el.name == "controller" && el.attr("type") == Some("pci") {
            let model = PciModel::from_name(el.attr("model").unwrap()).unwrap();
            let target = doc.child(id, "target");
            let hotplug = target.and_then(|t| doc.element(t).attr("hotplug")) != Some("off");
            let node = target
                .and_then(|t| doc.child(t, "node"))
                .map(|n| number(doc.element(n).text));
            let bus_nr = target
                .and_then(|t| doc.element(t).attr("busNr"))
                .map(number);
            let index = number(el.attr("index").unwrap());
            topo.controllers
                .insert(index, (model, addr, hotplug, node, bus_nr));
        }
        if let Some(a) = addr {
            topo.devices.push((el.name.to_string(), a));
        }
    }
    topo
}

/// Structural validity: every address on an existing bus, in the bus's slot range, used
/// once; every controller plugged where its model may plug; bus numbers within 0..255;
/// expander bus-number ranges not overlapping.
fn check_valid(xml: &str) -> Topology {
    let topo = topology(xml);
    let mut used = BTreeSet::new();
    for (name, a) in &topo.devices {
        assert!(used.insert(*a), "{name} at {a:?}: address used twice");
        let (bus_model, _, hotplug, _, _) = topo
            .controllers
            .get(&a.0)
            .unwrap_or_else(|| panic!("{name} at {a:?}: bus {} does not exist", a.0));
        let rules = bus_model.bus_rules(*hotplug);
        assert!(
            a.1 >= rules.min_slot && a.1 <= rules.max_slot && a.2 <= 7,
            "{name} at {a:?}: outside {bus_model}'s slots"
        );
    }
    for (&index, (model, addr, _, _, _)) in &topo.controllers {
        assert!(index <= 255, "controller index {index}");
        if model.is_root() {
            continue;
        }
        let a = addr.unwrap_or_else(|| panic!("controller {index} has no address"));
        let (parent, _, hotplug, _, _) = topo.controllers[&a.0];
        let accepts = parent.bus_rules(hotplug).accepts;
        assert!(
            accepts.intersects(model.connect_flags() & ConnectFlags::TYPES_MASK),
            "{model} {index} cannot plug into {parent} {}",
            a.0
        );
    }
    // Expander bus numbers: [busNr, busNr + buses behind it] must not overlap.
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for (&index, (model, _, _, _, bus_nr)) in &topo.controllers {
        if matches!(model, PciModel::PcieExpanderBus | PciModel::PciExpanderBus) {
            let behind = topo
                .controllers
                .values()
                .filter(|(_, a, _, _, _)| a.is_some_and(|a| a.0 == index))
                .count() as u32;
            let nr = bus_nr.expect("expander busNr");
            assert!(
                nr + behind <= 255,
                "expander {index}: busNr {nr} + {behind}"
            );
            ranges.push((nr, nr + behind));
        }
    }
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(w[0].1 < w[1].0, "expander bus ranges overlap: {ranges:?}");
    }
    topo
}

/// What libvirt 9.0 makes of `xml` (the oracle's `assign`), or None when the oracle is not up
/// and the caller did not require it.
fn libvirt_assign(xml: &str, name: &str) -> Option<String> {
    let oracle = shared_support::oracle("libvirt-oracle", name)?;
    let dir = std::env::temp_dir().join(format!("virtpci-prefs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.xml"));
    std::fs::write(&file, xml).unwrap();
    Some(shared_support::oracle_assign(&oracle, &file, name))
}

/// The two definitions have the same devices at the same addresses and the same controllers.
fn assert_same_layout(mine: &str, theirs: &str, name: &str) {
    let mut mine = topology(mine);
    let mut theirs = topology(theirs);
    // libvirt lists devices in its own order; the addresses are what must not change.
    mine.devices.sort();
    theirs.devices.sort();
    assert_eq!(
        mine.devices, theirs.devices,
        "{name}: libvirt moved devices"
    );
    let strip = |t: &Topology| {
        t.controllers
            .iter()
            .map(|(i, (m, a, _, n, _))| (*i, *m, *a, *n))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(&mine),
        strip(&theirs),
        "{name}: libvirt changed controllers"
    );
}

/// libvirt 9.0 must accept the result and keep every address and controller.
fn check_with_libvirt(xml: &str, name: &str) {
    if let Some(back) = libvirt_assign(xml, name) {
        assert_same_layout(xml, &back, name);
    }
}

fn assign(xml: &str) -> String {
    assign_domain_xml(xml).unwrap().xml
}

fn error(xml: &str) -> (ErrorCode, String) {
    let e = assign_domain_xml(xml).unwrap_err();
    (e.code, e.message)
}

fn nic_addresses(topo: &Topology) -> Vec<Addr> {
    topo.devices
        .iter()
        .filter(|(n, _)| n == "interface")
        .map(|(_, a)| *a)
        .collect()
}

#[test]
fn hotplug_no_puts_a_device_on_pcie_root() {
    for form in [
        "<addressPreferences hotplug='no'/>",
        "<hotplug require='no'/>",
    ] {
        let xml = domain("pc-q35-7.2", 0, &(nic(form) + &nic("")));
        let out = assign(&xml);
        let topo = check_valid(&out);
        let nics = nic_addresses(&topo);
        assert_eq!(nics[0].0, 0, "{form}: integrated on pcie-root");
        assert_ne!(nics[1].0, 0, "without the preference: behind a root port");
        check_with_libvirt(&out, "hotplug-no-q35");
    }
    // pc: pci-root has hotplug anyway; the device stays on it.
    let out = assign(&domain(
        "pc-i440fx-7.2",
        0,
        &nic("<addressPreferences hotplug='no'/>"),
    ));
    assert_eq!(nic_addresses(&check_valid(&out))[0].0, 0);
    check_with_libvirt(&out, "hotplug-no-pc");
}

#[test]
fn hotplug_yes_with_an_address_on_a_bus_without_hotplug_is_refused() {
    let xml = domain(
        "pc-q35-7.2",
        0,
        "    <controller type='pci' index='1' model='pcie-root-port'><target hotplug='off'/></controller>\n\
         <interface type='user'><model type='virtio'/><addressPreferences hotplug='yes'/>\
         <address type='pci' bus='1' slot='0'/></interface>\n",
    );
    let (code, message) = error(&xml);
    assert_eq!(code, ErrorCode::XmlError);
    assert!(message.contains("requires hotplug capability"), "{message}");
}

#[test]
fn bus_preference_picks_pci_or_pcie() {
    // q35, virtio NIC on conventional PCI: a pcie-to-pci-bridge is added for it.
    let out = assign(&domain(
        "pc-q35-7.2",
        0,
        &nic("<addressPreferences bus='pci'/>"),
    ));
    let topo = check_valid(&out);
    let a = nic_addresses(&topo)[0];
    assert_eq!(topo.controllers[&a.0].0, PciModel::PcieToPciBridge);
    check_with_libvirt(&out, "bus-pci-q35");
    // A PCI host device on q35 that prefers PCI, and an xHCI controller.
    let out = assign(&domain(
        "pc-q35-7.2",
        0,
        "    <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0' bus='6' slot='0' function='0'/></source>\
         <addressPreferences bus='pci'/></hostdev>\n\
         <controller type='usb' index='0' model='nec-xhci'><addressPreferences bus='pci'/></controller>\n",
    ));
    let topo = check_valid(&out);
    let on_bridge = |name: &str| {
        topo.devices.iter().any(|(n, a)| {
            n == name && topo.controllers.get(&a.0).map(|c| c.0) == Some(PciModel::PcieToPciBridge)
        })
    };
    assert!(on_bridge("hostdev"), "{out}");
    assert!(on_bridge("controller"), "the nec-xhci controller: {out}");
    check_with_libvirt(&out, "bus-pci-hostdev-q35");
    // pc: bus='pci' changes nothing; bus='pcie' cannot be met.
    let plain = assign(&domain("pc-i440fx-7.2", 0, &nic("")));
    let with = assign(&domain(
        "pc-i440fx-7.2",
        0,
        &nic("<addressPreferences bus='pci'/>"),
    ));
    assert_eq!(
        nic_addresses(&topology(&plain)),
        nic_addresses(&topology(&with))
    );
    let (code, message) = error(&domain(
        "pc-i440fx-7.2",
        0,
        &nic("<addressPreferences bus='pcie'/>"),
    ));
    assert_eq!(code, ErrorCode::ConfigUnsupported);
    assert!(
        message.contains("<interface> at line") && message.contains("bus='pcie'"),
        "{message}"
    );
    // Devices that can use only one side.
    let e1000e = "    <interface type='user'><model type='e1000e'/><addressPreferences bus='pci'/></interface>\n";
    let (_, message) = error(&domain("pc-q35-7.2", 0, e1000e));
    assert!(message.contains("PCI Express only"), "{message}");
    let rtl = "    <interface type='user'><model type='rtl8139'/><addressPreferences bus='pcie'/></interface>\n";
    let (_, message) = error(&domain("pc-q35-7.2", 0, rtl));
    assert!(message.contains("conventional PCI only"), "{message}");
}

#[test]
fn numa_preference_places_devices_behind_an_expander_bus() {
    // q35: a pcie-expander-bus with <node>1</node>, one root port per device behind it.
    let devices = nic("<addressPreferences numa='1'/>")
        + &nic("<addressPreferences numa='1'/>")
        + &nic("<addressPreferences numa='0'/>")
        + &nic("");
    let out = assign(&domain("pc-q35-7.2", 2, &devices));
    let topo = check_valid(&out);
    let nics = nic_addresses(&topo);
    let node_of = |bus: u32| -> Option<u32> {
        let (_, addr, _, _, _) = topo.controllers[&bus];
        let parent = addr.unwrap().0;
        let (model, _, _, node, _) = topo.controllers[&parent];
        (model == PciModel::PcieExpanderBus).then(|| node.unwrap())
    };
    assert_eq!(node_of(nics[0].0), Some(1));
    assert_eq!(node_of(nics[1].0), Some(1));
    assert_eq!(node_of(nics[2].0), Some(0));
    assert_eq!(node_of(nics[3].0), None);
    check_with_libvirt(&out, "numa-q35");
    // pc: the devices sit directly on a pci-expander-bus.
    let out = assign(&domain(
        "pc-i440fx-7.2",
        2,
        &(nic("<addressPreferences numa='1'/>") + &nic("")),
    ));
    let topo = check_valid(&out);
    let nics = nic_addresses(&topo);
    let (model, _, _, node, _) = topo.controllers[&nics[0].0];
    assert_eq!((model, node), (PciModel::PciExpanderBus, Some(1)));
    assert_eq!(nics[1].0, 0);
    check_with_libvirt(&out, "numa-pc");
    // A node the domain does not have.
    let (code, message) = error(&domain(
        "pc-q35-7.2",
        2,
        &nic("<addressPreferences numa='2'/>"),
    ));
    assert_eq!(code, ErrorCode::XmlError);
    assert!(
        message.contains("numa='2'") && message.contains("2 cell(s)") && message.contains("line"),
        "{message}"
    );
    let (_, message) = error(&domain(
        "pc-q35-7.2",
        2,
        &nic("<addressPreferences numa='1' bus='pci'/>"),
    ));
    assert!(message.contains("not supported on q35"), "{message}");
}

#[test]
fn bad_preferences_are_refused_naming_the_device() {
    let cases = [
        ("<addressPreferences hotplug='maybe'/>", "hotplug='maybe'"),
        ("<addressPreferences bus='isa'/>", "bus='isa'"),
        ("<addressPreferences numa='one'/>", "numa='one'"),
        (
            "<addressPreferences slot='3'/>",
            "unknown address preference 'slot'",
        ),
        ("<hotplug require='sometimes'/>", "require='sometimes'"),
        (
            "<hotplug require='no'/><addressPreferences hotplug='yes'/>",
            "contradict",
        ),
    ];
    for (prefs, wanted) in cases {
        let (code, message) = error(&domain("pc-q35-7.2", 1, &nic(prefs)));
        assert_eq!(code, ErrorCode::XmlError, "{prefs}: {message}");
        assert!(
            message.contains(wanted) && message.contains("<interface> at line 14"),
            "{prefs}: {message}"
        );
    }
    let mouse = "    <input type='mouse' bus='ps2'><addressPreferences hotplug='no'/></input>\n";
    let (_, message) = error(&domain("pc-q35-7.2", 0, mouse));
    assert!(
        message.contains("only to devices that take a PCI address"),
        "{message}"
    );
}

/// Free hotplug places: empty root/downstream ports with hotplug (q35), free slots on buses
/// with hotplug and automatic placement (pc).
fn free_hotplug_places(topo: &Topology) -> usize {
    let used: BTreeSet<Addr> = topo
        .devices
        .iter()
        .map(|(_, a)| *a)
        .chain(topo.controllers.values().filter_map(|c| c.1))
        .collect();
    let mut free = 0;
    for (&index, (model, _, hotplug, _, _)) in &topo.controllers {
        let rules = model.bus_rules(*hotplug);
        if !rules
            .accepts
            .contains(ConnectFlags::HOTPLUGGABLE | ConnectFlags::AUTOASSIGN)
        {
            continue;
        }
        free += (rules.min_slot..=rules.max_slot)
            .filter(|&s| (0..8).all(|f| !used.contains(&(index, s, f))))
            .count();
    }
    free
}

#[test]
fn hotplug_room_leaves_free_places() {
    let devices: String = (0..5).map(|_| nic("")).collect();
    for (machine, n) in [
        ("pc-q35-7.2", 10u32),
        ("pc-q35-7.2", 1),
        ("pc-i440fx-7.2", 40),
    ] {
        let xml = domain(machine, 0, &devices);
        let options = AssignOptions {
            hotplug_ports: Some(n),
            ..Default::default()
        };
        let out = assign_domain_xml_with(&xml, options).unwrap().xml;
        let topo = check_valid(&out);
        let free = free_hotplug_places(&topo);
        assert!(
            free >= n as usize,
            "{machine}: {free} free places, wanted {n}"
        );
        if machine.contains("q35") {
            // Packed eight to a slot.
            let ports: Vec<Addr> = topo
                .controllers
                .values()
                .filter(|c| c.0 == PciModel::PcieRootPort)
                .filter_map(|c| c.1)
                .collect();
            assert!(ports.iter().filter(|a| a.2 == 0).count() * 8 >= ports.len());
        }
        check_with_libvirt(&out, &format!("room-{n}"));
    }
    // Without the option: libvirt's single spare.
    let out = assign(&domain("pc-q35-7.2", 0, &devices));
    assert_eq!(free_hotplug_places(&topology(&out)), 1);
}

/// Without preferences or options the layout is the one libvirt itself gives the bare input.
#[test]
fn without_preferences_the_result_is_libvirts() {
    let xml = domain("pc-q35-7.2", 0, &(nic("") + &nic("")));
    if let Some(theirs) = libvirt_assign(&xml, "no-preferences") {
        assert_same_layout(&assign(&xml), &theirs, "no-preferences");
    }
}

// ----- extend mode (AssignOptions::extend) ------------------------------------------------

fn extended(xml: &str) -> Result<String, virtpci::Error> {
    let options = AssignOptions {
        extend: true,
        ..Default::default()
    };
    assign_domain_xml_with(xml, options).map(|o| o.xml)
}

/// Multifunction slots are whole: a slot with a function above 0 in use has function 0 in
/// use, with multifunction='on'.
fn check_functions(xml: &str, topo: &Topology) {
    let used: BTreeSet<Addr> = topo
        .devices
        .iter()
        .map(|(_, a)| *a)
        .chain(topo.controllers.values().filter_map(|c| c.1))
        .collect();
    let shared: BTreeSet<(u32, u32)> = used
        .iter()
        .filter(|a| a.2 > 0)
        .map(|a| (a.0, a.1))
        // The chipset's slots (PIIX3 at 00:01 on pc, ICH9 at 00:1f on q35) have function 0
        // built into the machine.
        .filter(|&(b, s)| used.contains(&(b, s, 0)) || (b, s) != (0, 0x1f) && (b, s) != (0, 1))
        .collect();
    for &(bus, slot) in &shared {
        assert!(
            used.contains(&(bus, slot, 0)),
            "slot {bus:#x}:{slot:#x} has functions without function 0"
        );
    }
    let on = xml.matches("multifunction='on'").count();
    assert_eq!(on, shared.len(), "multifunction='on' count");
}

/// How many buses deep the deepest bus is.
fn depth(topo: &Topology) -> usize {
    let parent = |i: u32| topo.controllers[&i].1.map(|a| a.0);
    topo.controllers
        .keys()
        .map(|&i| {
            let mut d = 0;
            let mut at = i;
            while let Some(p) = parent(at) {
                d += 1;
                at = p;
            }
            d
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn extend_places_what_libvirt_cannot() {
    let q35 = "pc-q35-7.2";
    let pc = "pc-i440fx-7.2";
    let no = "<addressPreferences hotplug='no'/>";
    let pci = "<addressPreferences bus='pci'/>";
    // (name, machine, NICs, preference, at most this deep)
    let cases = [
        ("q35-238", q35, 238, "", 4),
        ("pc-269", pc, 269, "", 3),
        ("pc-300", pc, 300, "", 3),
        ("q35-300-hotplug-no", q35, 300, no, 3),
        ("pc-1000", pc, 1000, "", 5),
        ("q35-1000-bus-pci", q35, 1000, pci, 6),
        ("q35-1000-hotplug-no", q35, 1000, no, 7),
        ("pc-2000", pc, 2000, "", 6),
        ("q35-2000-hotplug-no", q35, 2000, no, 8),
        // Plain devices on q35: PCI Express ports, then hot-pluggable bridges.
        ("q35-1000", q35, 1000, "", 6),
        ("q35-2000", q35, 2000, "", 7),
        ("q35-5000", q35, 5000, "", 8),
        ("q35-10000-hotplug-no", q35, 10000, no, 9),
    ];
    for (name, machine, n, pref, max_depth) in cases {
        let xml = domain(machine, 0, &nic(pref).repeat(n));
        let (code, message) = error(&xml);
        assert_eq!(code, ErrorCode::Internal, "{name}: {message}");
        assert!(
            message.contains("No more available PCI slots")
                || message.contains("cannot be automatically added"),
            "{name}: libvirt's placement should fail: {message}"
        );
        let out = extended(&xml).unwrap_or_else(|e| panic!("{name}: {}", e.message));
        let topo = check_valid(&out);
        let nics = nic_addresses(&topo);
        assert_eq!(nics.len(), n, "{name}: every NIC placed");
        check_functions(&out, &topo);
        let d = depth(&topo);
        assert!(d <= max_depth, "{name}: buses {d} deep");
        if pref == no {
            // Packed: far fewer slots than devices.
            let slots: BTreeSet<(u32, u32)> = nics.iter().map(|a| (a.0, a.1)).collect();
            assert!(slots.len() * 7 < n, "{name}: {} slots", slots.len());
        }
        if machine == q35 && pref.is_empty() {
            // The ports' share spent, the rest sit on hot-pluggable conventional bridges.
            let ports = out.matches("model='pcie-root-port'").count();
            assert!(ports <= 66, "{name}: {ports} root ports");
            assert!(out.contains("model='pci-bridge'"), "{name}");
            // One switch, its downstream slots kept free for growth.
            assert_eq!(
                out.matches("model='pcie-switch-upstream-port'").count(),
                1,
                "{name}"
            );
        }
        check_with_libvirt(&out, &format!("extend-{name}"));
    }
}

#[test]
fn extend_says_how_many_devices_did_not_fit() {
    // Every hot-pluggable PCI Express-only device needs a bus of its own: 300 e1000e cannot
    // fit in 256.
    let e1000e = "<interface type='user'><model type='e1000e'/></interface>\n";
    let xml = domain("pc-q35-7.2", 0, &e1000e.repeat(300));
    let e = extended(&xml).unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    let (count, rest) = e
        .message
        .strip_prefix("internal error: ")
        .and_then(|m| m.split_once(" of the 303 devices that needed a PCI address did not fit"))
        .unwrap_or_else(|| panic!("{}", e.message));
    let count: usize = count.parse().unwrap();
    assert!((40..=60).contains(&count), "{}", e.message);
    assert!(
        rest.contains("all bus numbers of PCI domain 0 are in use"),
        "{rest}"
    );
    assert!(rest.contains("hotplug='no'"), "{rest}");
    // q35: after the ports' share, bridges take about 5,000 devices that run on either side.
    let xml = domain("pc-q35-7.2", 0, &nic("").repeat(6000));
    let e = extended(&xml).unwrap_err();
    assert!(
        e.message
            .contains(" of the 6003 devices that needed a PCI address did not fit"),
        "{}",
        e.message
    );
    // pc: bridges with 31 slots, 7,000 hot-pluggable devices do not fit in 255 bridges.
    let xml = domain("pc-i440fx-7.2", 0, &nic("").repeat(7000));
    let e = extended(&xml).unwrap_err();
    assert!(
        e.message
            .contains(" of the 7002 devices that needed a PCI address did not fit"),
        "{}",
        e.message
    );
}

#[test]
fn extend_grows_the_main_hierarchy_only_below_numa_expanders() {
    let mut devices = nic("<addressPreferences numa='1'/>").repeat(3);
    devices.push_str(&nic("<addressPreferences hotplug='no'/>").repeat(400));
    devices.push_str(&nic("").repeat(200));
    let xml = domain("pc-q35-7.2", 2, &devices);
    assert!(assign_domain_xml(&xml).is_err());
    let out = extended(&xml).unwrap();
    let topo = check_valid(&out);
    check_functions(&out, &topo);
    assert_eq!(nic_addresses(&topo).len(), 603);
    // The buses of the main hierarchy (not behind the expander) stay below its busNr.
    let (expander, bus_nr) = topo
        .controllers
        .iter()
        .find(|(_, c)| c.0 == PciModel::PcieExpanderBus)
        .map(|(i, c)| (*i, c.4.unwrap()))
        .unwrap();
    let behind = |mut i: u32| loop {
        if i == expander {
            return true;
        }
        match topo.controllers[&i].1 {
            Some(a) => i = a.0,
            None => return false,
        }
    };
    let main = topo.controllers.keys().filter(|&&i| !behind(i)).count() as u32;
    assert!(main <= bus_nr, "{main} main buses, expander busNr {bus_nr}");
    check_with_libvirt(&out, "extend-numa");
}

#[test]
fn extend_keeps_hotplug_room() {
    let xml = domain("pc-q35-7.2", 0, &nic("").repeat(238));
    let options = AssignOptions {
        extend: true,
        hotplug_ports: Some(10),
        ..Default::default()
    };
    let out = assign_domain_xml_with(&xml, options).unwrap().xml;
    let topo = check_valid(&out);
    assert!(free_hotplug_places(&topo) >= 10);
    check_with_libvirt(&out, "extend-room");
}

#[test]
fn hotplug_room_beyond_one_pci_domain_is_refused_at_once() {
    let xml = domain("pc-q35-7.2", 0, &nic(""));
    for extend in [false, true] {
        let options = AssignOptions {
            hotplug_ports: Some(17_039_360),
            extend,
            ..Default::default()
        };
        let e = assign_domain_xml_with(&xml, options).unwrap_err();
        assert_eq!(e.code, ErrorCode::ConfigUnsupported, "{}", e.message);
        assert!(
            e.message
                .contains("cannot leave 17039360 free hot-plug places: only"),
            "{}",
            e.message
        );
    }
}

#[test]
fn explain_follows_the_options() {
    let xml = domain("pc-q35-7.2", 0, &nic("").repeat(238));
    assert!(virtpci::assign::explain::explain(&xml).is_err());
    let options = AssignOptions {
        extend: true,
        ..Default::default()
    };
    let text = virtpci::assign::explain::explain_with(&xml, &options)
        .unwrap()
        .to_text();
    assert!(
        text.contains("(pcie-to-pci-bridge) (added)") && text.contains("(pci-bridge) (added)"),
        "{text}"
    );
}

/// Issue 21: a guest grows one device at a time, each step assigned (extend mode) from the
/// definition the last step saved. The ABI diff of each step shows the new device and the
/// controllers added for it, nothing else: no existing device or controller moves.
#[test]
fn extended_domains_grow_without_moving_anything() {
    use virtpci::abi::{check_abi_stability, AbiOptions, ChangeKind, LayoutMode};
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut saved = extended(&domain("pc-q35-7.2", 0, &nic("").repeat(300))).unwrap();
    let as_given = AbiOptions {
        mode: LayoutMode::AsGiven,
    };
    let mut refused = 0;
    for step in 0..200u32 {
        let device = match next(5) {
            0 => nic(""),
            1 => nic("<addressPreferences hotplug='no'/>"),
            2 => "    <interface type='user'><model type='e1000e'/></interface>\n".to_string(),
            3 => format!(
                "    <disk type='file' device='disk'><source file='/g/{step}.img'/>\
                 <target dev='vd{}{}' bus='virtio'/></disk>\n",
                char::from(b'a' + (step / 26) as u8),
                char::from(b'a' + (step % 26) as u8)
            ),
            _ => format!(
                "    <hostdev mode='subsystem' type='pci' managed='yes'><source>\
                 <address domain='0x0000' bus='0x{:02x}' slot='0x{:02x}' function='0x0'/>\
                 </source></hostdev>\n",
                1 + step / 32,
                step % 32
            ),
        };
        let end = saved.rfind("</devices>").unwrap();
        let grown = format!("{}{device}  {}", &saved[..end], &saved[end..]);
        let out = match extended(&grown) {
            Ok(out) => out,
            // Full: refused with the count, the definition stays as it was.
            Err(e) if e.message.contains("1 of the ") && e.message.contains("did not fit") => {
                refused += 1;
                continue;
            }
            Err(e) => panic!("step {step}: {}", e.message),
        };
        let report = check_abi_stability(&saved, &out, as_given).unwrap();
        let added = report
            .changes
            .iter()
            .filter(|c| c.kind == ChangeKind::DeviceAdded)
            .count();
        let other: Vec<_> = report
            .changes
            .iter()
            .filter(|c| {
                !matches!(
                    c.kind,
                    ChangeKind::DeviceAdded | ChangeKind::ControllerAdded
                )
            })
            // libvirt's own placement (which extend mode keeps wherever it fits) puts a new
            // pcie-root-port into the next function of a root-port slot and sets
            // multifunction on its function 0: the ports are controllers, nothing moves.
            .filter(|c| {
                !(c.kind == ChangeKind::MultifunctionFlipped
                    && c.device.contains("(pcie-root-port)"))
            })
            .collect();
        assert!(
            added == 1 && other.is_empty(),
            "step {step}, adding {device}: {}",
            report.to_text()
        );
        saved = out;
    }
    println!("{refused} of 200 additions refused for want of room");
    assert!(refused == 0, "{refused} of 200 additions refused");
    check_valid(&saved);
    check_with_libvirt(&saved, "extend-grown");
}

/// Issue 21: `numa='N'` fills an expander bus for node N that the domain already has (its free
/// root ports first, then new ones on its unused slots; on pc its free slots) before adding
/// another; devices without a preference are placed after them, elsewhere.
#[test]
fn numa_preference_reuses_the_expander_of_its_node() {
    let numa1 = nic("<addressPreferences numa='1'/>");
    let q35_user = "    <controller type='pci' index='0' model='pcie-root'/>\n    \
        <controller type='pci' index='1' model='pcie-expander-bus'><target busNr='200'><node>1</node></target></controller>\n    \
        <controller type='pci' index='2' model='pcie-root-port'><address type='pci' bus='1' slot='0' function='0'/></controller>\n    \
        <controller type='pci' index='3' model='pcie-root-port'><address type='pci' bus='1' slot='1' function='0'/></controller>\n";
    let pc_user = "    <controller type='pci' index='0' model='pci-root'/>\n    \
        <controller type='pci' index='1' model='pci-expander-bus'><target busNr='200'><node>1</node></target></controller>\n";
    for (machine, user) in [("pc-q35-7.2", q35_user), ("pc-i440fx-7.2", pc_user)] {
        let devices = format!("{user}{}{}{}", nic(""), numa1.repeat(3), nic(""));
        let xml = domain(machine, 2, &devices);
        let out = assign(&xml);
        let topo = check_valid(&out);
        let expanders: Vec<u32> = topo
            .controllers
            .iter()
            .filter(|(_, c)| matches!(c.0, PciModel::PcieExpanderBus | PciModel::PciExpanderBus))
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(expanders, vec![1], "{machine}: no second expander\n{out}");
        // Each bus's way up to the root, through the controllers' addresses.
        let behind_expander = |mut bus: u32| loop {
            if bus == 1 {
                return true;
            }
            match topo.controllers.get(&bus).and_then(|c| c.1) {
                Some(a) => bus = a.0,
                None => return false,
            }
        };
        let nics = nic_addresses(&topo);
        let placed: Vec<bool> = nics.iter().map(|a| behind_expander(a.0)).collect();
        assert_eq!(
            placed,
            [false, true, true, true, false],
            "{machine}: {nics:?}"
        );
        if machine == "pc-q35-7.2" {
            // The user's two free ports first.
            assert_eq!(nics[1].0, 2, "{nics:?}");
            assert_eq!(nics[2].0, 3, "{nics:?}");
        }
        check_with_libvirt(&out, &format!("numa-reuse-{machine}"));
    }
}
