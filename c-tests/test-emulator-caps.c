/* The emulator capabilities input of the assignment, through the C API: an older emulator
 * (ioh3420 root ports, no pcie-pci-bridge, transitional-only virtio) changes the controllers
 * libvirt adds and where virtio devices go, for a definition and for the hotplug set. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "virtpci.h"

static const char *GUEST =
    "<domain type='qemu'>\n"
    "  <name>caps</name>\n"
    "  <os><type arch='x86_64' machine='q35'>hvm</type></os>\n"
    "  <devices>\n"
    "    <interface type='user'><model type='rtl8139'/></interface>\n"
    "    <interface type='user'><model type='virtio'/></interface>\n"
    "  </devices>\n"
    "</domain>\n";

static const char *VIRTIO_NIC = "<interface type='user'><model type='virtio'/></interface>";

/* The names virtpci reads: NULL-terminated, libvirt's spelling, each once. */
static void test_names(void)
{
    const char *const *names = virtpci_emulator_cap_names();
    CHECK(names != NULL, "a list");
    int n = 0, root_port = 0, ioh = 0;
    for (; names && names[n]; n++) {
        root_port += strcmp(names[n], "pcie-root-port") == 0;
        ioh += strcmp(names[n], "ioh3420") == 0;
    }
    CHECK(n >= 10 && n < 100, "%d names", n);
    CHECK(root_port == 1 && ioh == 1, "pcie-root-port and ioh3420 listed once");
    CHECK(virtpci_emulator_cap_names() == names, "a static list");
}

static void test_assign(void)
{
    static const char *const old_qemu[] = { "ioh3420", "pci-bridge", "dmi-to-pci-bridge",
                                            "not-a-capability", NULL };
    VirtpciAssignOptions opts;
    memset(&opts, 0, sizeof opts);
    opts.size = sizeof opts;
    opts.hotplug_ports = -1;
    opts.emulator_caps = old_qemu;
    char *out = NULL;
    CHECK(virtpci_domain_assign_pci_addresses_with_options(GUEST, &opts, &out) == 0, "%s",
          virtpci_last_error_message());
    CHECK(out && strstr(out, "model='dmi-to-pci-bridge'") != NULL, "dmi-to-pci-bridge: %s", out);
    CHECK(out && strstr(out, "<model name='ioh3420'/>") != NULL, "ioh3420 root port");
    CHECK(out && strstr(out, "pcie-to-pci-bridge") == NULL, "no pcie-to-pci-bridge");
    CHECK(out && strstr(out, "model='usb'") == NULL && strstr(out, "type='usb'") == NULL,
          "no default USB controller without an XHCI or EHCI capability");
    virtpci_string_free(out);

    /* NULL: the emulator of the libvirt level (QEMU 7.2), as without the field. */
    out = NULL;
    opts.emulator_caps = NULL;
    CHECK(virtpci_domain_assign_pci_addresses_with_options(GUEST, &opts, &out) == 0, "%s",
          virtpci_last_error_message());
    CHECK(out && strstr(out, "model='pcie-to-pci-bridge'") != NULL, "pcie-to-pci-bridge");
    CHECK(out && strstr(out, "model='qemu-xhci'") != NULL, "qemu-xhci");
    char *plain = NULL;
    CHECK(virtpci_domain_assign_pci_addresses(GUEST, 0, &plain) == 0, "%s",
          virtpci_last_error_message());
    CHECK(out && plain && strcmp(out, plain) == 0, "NULL caps give the default result");
    virtpci_string_free(plain);
    virtpci_string_free(out);

    /* A caller built against the third version of the struct: the field is not read. */
    out = NULL;
    opts.emulator_caps = old_qemu;
    opts.size = offsetof(VirtpciAssignOptions, emulator_caps);
    CHECK(virtpci_domain_assign_pci_addresses_with_options(GUEST, &opts, &out) == 0, "%s",
          virtpci_last_error_message());
    CHECK(out && strstr(out, "model='pcie-to-pci-bridge'") != NULL, "third version: default");
    virtpci_string_free(out);

    /* A SCSI controller the emulator has no model for is refused with libvirt's words. */
    static const char *const none[] = { NULL };
    opts.size = sizeof opts;
    opts.emulator_caps = none;
    out = NULL;
    CHECK(virtpci_domain_assign_pci_addresses_with_options(
              "<domain><os><type machine='pc'>hvm</type></os><devices>"
              "<controller type='scsi' index='0'/></devices></domain>",
              &opts, &out) == -1,
          "SCSI without a model");
    CHECK_STR(virtpci_last_error_message(),
              "internal error: Unable to determine model for SCSI controller idx=0");
    CHECK(out == NULL, "no output on failure");
}

/* The hotplug set: a hot-plugged virtio NIC takes a root port with non-transitional virtio,
 * a bridge slot without it. */
static void test_hotplug(void)
{
    static const char *const transitional_only[] = { "pcie-root-port", "pcie-pci-bridge", NULL };
    VirtpciAssignOptions opts;
    memset(&opts, 0, sizeof opts);
    opts.size = sizeof opts;
    opts.hotplug_ports = -1;
    opts.emulator_caps = transitional_only;
    VirtpciAddressSet *set = virtpci_address_set_new_from_xml_with_options(GUEST, &opts);
    CHECK(set != NULL, "%s", virtpci_last_error_message());
    VirtpciPciAddress a;
    CHECK(set && virtpci_address_set_reserve_next(set, VIRTIO_NIC, &a) == 0, "%s",
          virtpci_last_error_message());
    /* Bus 2 is the pcie-to-pci-bridge (bus 1 its root port). */
    CHECK(set && a.bus == 2 && a.slot > 0, "on the bridge: %02x:%02x.%x", a.bus, a.slot,
          a.function);
    virtpci_address_set_free(set);

    set = virtpci_address_set_new_from_xml(GUEST);
    CHECK(set && virtpci_address_set_reserve_next(set, VIRTIO_NIC, &a) == 0, "%s",
          virtpci_last_error_message());
    CHECK(set && a.bus != 2 && a.slot == 0, "on a root port: %02x:%02x.%x", a.bus, a.slot,
          a.function);
    virtpci_address_set_free(set);
}

int main(void)
{
    test_names();
    test_assign();
    test_hotplug();
    return check_exit_status("test-emulator-caps");
}
