//! The output is the input plus what assignment adds: comments, unknown elements and
//! attributes, their order and odd whitespace survive byte for byte.

use virtpci::assign_domain_xml;

const INPUT: &str = concat!(
    "<?xml version='1.0' encoding='UTF-8'?>\n",
    "<!-- a comment before the root -->\n",
    "<domain type='qemu' xmlns:my='urn:example'>\n",
    "  <name>keep&amp;me</name>\n",
    "  <my:extension  odd  =  \"spacing\"\t/>\n",
    "  <os>\n",
    "    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>\n",
    "  </os>\n",
    "  <devices>\n",
    "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n",
    "    <!-- controllers -->\n",
    "    <controller type='usb' index='0' model='piix3-uhci' unknown='attr'>\n",
    "      <future-element x='1'/>\n",
    "    </controller>\n",
    "    <controller type='pci' index='0' model='pci-root'/>\n",
    "\t\t<interface type='user'>\n",
    "\t\t\t<mac address='52:54:00:00:00:01'/>\n",
    "\t\t\t<model type='virtio'/>\n",
    "\t\t</interface>\n",
    "    <memballoon model='virtio'>\n",
    "      <stats period='10'/>\n",
    "    </memballoon>\n",
    "  </devices>\n",
    "  <my:trailer><![CDATA[ <not> parsed ]]></my:trailer>\n",
    "</domain>\n",
    "<!-- a comment after the root -->\n",
);

/// Remove the lines virtpci added (those holding a PCI <address>) from `out`.
fn without_added_lines(out: &str) -> String {
    out.split_inclusive('\n')
        .filter(|line| !line.contains("<address type='pci'"))
        .collect()
}

#[test]
fn everything_else_survives_byte_for_byte() {
    let out = assign_domain_xml(INPUT).unwrap().xml;
    assert_eq!(without_added_lines(&out), INPUT, "output:\n{out}");
    // The additions are indented like their neighbours, tabs included.
    assert!(out.contains(
        "\t\t\t<model type='virtio'/>\n\t\t\t<address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>\n\t\t</interface>"
    ), "{out}");
    assert!(out.contains(
        "      <future-element x='1'/>\n      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>\n    </controller>"
    ), "{out}");
}

#[test]
fn self_closing_devices_are_opened_and_compact_ones_stay_compact() {
    let input = "<domain type='qemu'>\n  <os><type machine='pc'>hvm</type></os>\n  <devices>\n    \
                 <controller type='pci' index='0' model='pci-root'/>\n    \
                 <memballoon model='virtio' />\n    \
                 <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\n  \
                 </devices>\n</domain>\n";
    let out = assign_domain_xml(input).unwrap().xml;
    assert!(out.contains(
        "    <memballoon model='virtio'>\n      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>\n    </memballoon>\n"
    ), "{out}");
    assert!(out.contains(
        "<rng model='virtio'><backend model='random'>/dev/urandom</backend><address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></rng>"
    ), "{out}");
}

#[test]
fn new_controllers_follow_the_existing_ones_with_their_indentation() {
    let input =
        "<domain type='qemu'>\n  <os><type machine='q35'>hvm</type></os>\n  <devices>\n    \
                 <controller type='sata' index='0'/>\n    \
                 <controller type='usb' index='0' model='none'/>\n    \
                 <controller type='pci' index='0' model='pcie-root'/>\n    \
                 <!-- after the root -->\n    \
                 <interface type='user'><model type='e1000e'/></interface>\n    \
                 <memballoon model='none'/>\n  </devices>\n</domain>\n";
    let out = assign_domain_xml(input).unwrap().xml;
    let expected_port = "    <controller type='pci' index='0' model='pcie-root'/>\n    \
        <controller type='pci' index='1' model='pcie-root-port'>\n      \
        <model name='pcie-root-port'/>\n      <target chassis='1' port='0x8'/>\n      \
        <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0' multifunction='on'/>\n    \
        </controller>\n";
    assert!(out.contains(expected_port), "{out}");
    assert!(out.contains("    <!-- after the root -->\n"), "{out}");
}

#[test]
fn controller_indexes_and_targets_are_completed_in_place() {
    let input = "<domain type='qemu'>\n  <os><type machine='q35'>hvm</type></os>\n  <devices>\n    \
                 <controller type='pci' model='pcie-root'/>\n    \
                 <controller type='pci' model='pcie-root-port'>\n      <target hotplug='off'/>\n    </controller>\n    \
                 <memballoon model='none'/>\n  </devices>\n</domain>\n";
    let out = assign_domain_xml(input).unwrap().xml;
    assert!(
        out.contains("<controller type='pci' index='0' model='pcie-root'/>"),
        "{out}"
    );
    assert!(out.contains(
        "    <controller type='pci' index='1' model='pcie-root-port'>\n      <model name='pcie-root-port'/>\n      \
         <target hotplug='off' chassis='1' port='0x8'/>\n      \
         <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>\n    </controller>"
    ), "{out}");
}

#[test]
fn a_slot_without_function_zero_is_a_warning_not_an_error() {
    let input = "<domain type='qemu'><os><type machine='pc'>hvm</type></os><devices>\
                 <controller type='pci' index='0' model='pci-root'/>\
                 <memballoon model='virtio'><address type='pci' slot='5' function='2'/></memballoon>\
                 </devices></domain>";
    let out = assign_domain_xml(input).unwrap();
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(out.warnings[0].contains("0000:00:05"), "{:?}", out.warnings);
}

#[test]
fn libvirts_default_devices_are_added() {
    let input =
        "<domain type='qemu'>\n  <os><type machine='q35'>hvm</type></os>\n  <devices>\n    \
                 <graphics type='vnc'/>\n  </devices>\n</domain>\n";
    let out = assign_domain_xml(input).unwrap().xml;
    for wanted in [
        "<controller type='usb' index='0' model='qemu-xhci'>",
        "<controller type='sata' index='0'>\n      <address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x2'/>",
        "<controller type='pci' index='0' model='pcie-root'/>",
        "<memballoon model='virtio'>",
        "<model type='cirrus' vram='16384' heads='1' primary='yes'/>\n      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>",
    ] {
        assert!(out.contains(wanted), "missing {wanted:?} in\n{out}");
    }
}

#[test]
fn a_model_element_without_a_name_gets_the_name_and_the_result_is_stable() {
    let input = "<domain type='qemu'>\n  <os><type machine='q35'>hvm</type></os>\n  <devices>\n    \
                 <controller type='pci' model='pcie-root'/>\n    \
                 <controller type='pci' model='pcie-root-port'>\n      <model foo='bar'/>\n    </controller>\n    \
                 <memballoon model='none'/>\n  </devices>\n</domain>\n";
    let out = assign_domain_xml(input).unwrap().xml;
    assert!(
        out.contains("<model foo='bar' name='pcie-root-port'/>"),
        "{out}"
    );
    assert_eq!(out.matches("<model ").count(), 1, "{out}");
    assert_eq!(assign_domain_xml(&out).unwrap().xml, out);
}
