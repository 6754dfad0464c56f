/* Guest PCI address assignment and the hotplug address set, through the C API. */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "virtpci.h"

static const char *Q35 =
    "<domain type='qemu'>\n"
    "  <name>c-test</name>\n"
    "  <os><type arch='x86_64' machine='q35'>hvm</type></os>\n"
    "  <devices>\n"
    "    <!-- kept as written -->\n"
    "    <controller type='pci' index='0' model='pcie-root'/>\n"
    "    <controller type='sata' index='0'/>\n"
    "    <controller type='usb' index='0' model='qemu-xhci'/>\n"
    "    <interface type='user'>\n"
    "      <mac address='52:54:00:00:00:01'/>\n"
    "      <model type='virtio'/>\n"
    "    </interface>\n"
    "    <memballoon model='virtio'/>\n"
    "  </devices>\n"
    "</domain>\n";

static void test_assign(void)
{
    char *out = NULL;
    CHECK(virtpci_domain_assign_pci_addresses(Q35, 0, &out) == 0, "%s",
          virtpci_last_error_message());
    CHECK(out != NULL, "output");
    if (!out)
        return;
    CHECK(strstr(out, "<!-- kept as written -->") != NULL, "comment kept");
    CHECK(strstr(out, "<controller type='pci' index='1' model='pcie-root-port'>") != NULL,
          "root port added");
    CHECK(strstr(out, "<address type='pci' domain='0x0000' bus='0x00' slot='0x1f' "
                      "function='0x2'/>") != NULL, "SATA at 1f.2");
    /* the NIC gets the first root port: <interface> ... bus 0x01 */
    const char *nic = strstr(out, "<interface type='user'>");
    CHECK(nic && strstr(nic, "bus='0x01' slot='0x00' function='0x0'") != NULL, "NIC on bus 1");
    free(out);
}

static void test_assign_errors(void)
{
    char *out = (char *)"untouched";
    CHECK(virtpci_domain_assign_pci_addresses(Q35, 1u << 30, &out) == -1,
          "unknown flag refused");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "code %d",
          virtpci_last_error_code());
    CHECK(strcmp(out, "untouched") == 0, "out unchanged");

    CHECK(virtpci_domain_assign_pci_addresses(NULL, 0, &out) == -1, "NULL xml");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "NULL xml code");
    CHECK(virtpci_domain_assign_pci_addresses(Q35, 0, NULL) == -1, "NULL out");

    const char *bad_slot =
        "<domain><os><type machine='pc'>hvm</type></os><devices>"
        "<memballoon model='virtio'><address type='pci' slot='0x20'/></memballoon>"
        "</devices></domain>";
    CHECK(virtpci_domain_assign_pci_addresses(bad_slot, 0, &out) == -1, "bad slot");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_XML_ERROR, "code %d",
          virtpci_last_error_code());
    CHECK_STR(virtpci_last_error_message(),
              "XML error: Invalid PCI address slot='0x20', must be <= 0x1F");

    const char *conflict =
        "<domain><os><type machine='pc'>hvm</type></os><devices>"
        "<controller type='ide' index='0'/>"
        "<memballoon model='virtio'><address type='pci' slot='1' function='1'/></memballoon>"
        "</devices></domain>";
    CHECK(virtpci_domain_assign_pci_addresses(conflict, 0, &out) == -1, "conflict");
    CHECK_STR(virtpci_last_error_message(),
              "XML error: Attempted double use of PCI Address 0000:00:01.1");

    CHECK(virtpci_domain_assign_pci_addresses("<domain><devices>", 0, &out) == -1,
          "malformed");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_XML_ERROR, "malformed code");
}

static const char *HOTPLUG_DOMAIN =
    "<domain type='qemu'><os><type machine='q35'>hvm</type></os><devices>"
    "<controller type='pci' index='0' model='pcie-root'/>"
    "<controller type='pci' index='1' model='pcie-root-port'/>"
    "<controller type='pci' index='2' model='pcie-root-port'/>"
    "<controller type='pci' index='3' model='pcie-root-port'><target hotplug='off'/></controller>"
    "<controller type='usb' index='0' model='none'/><memballoon model='none'/>"
    "</devices></domain>";
static const char *NIC = "<interface type='user'><model type='virtio'/></interface>";

static void test_address_set(void)
{
    VirtpciAddressSet *set = virtpci_address_set_new_from_xml(HOTPLUG_DOMAIN);
    CHECK(set != NULL, "%s", virtpci_last_error_message());
    if (!set)
        return;
    VirtpciPciAddress a = {0}, b = {0};
    CHECK(virtpci_address_set_reserve_next(set, NIC, &a) == 0, "%s",
          virtpci_last_error_message());
    CHECK(a.domain == 0 && a.bus == 1 && a.slot == 0 && a.function == 0, "first port");
    CHECK(virtpci_address_set_reserve_next(set, NIC, &b) == 0, "second");
    CHECK(b.bus == 2, "second port, got bus %u", b.bus);
    /* bus 3 has hotplug='off' and no bus is ever added during hotplug */
    CHECK(virtpci_address_set_reserve_next(set, NIC, &b) == -1, "full");
    CHECK_STR(virtpci_last_error_message(), "internal error: No more available PCI slots");

    VirtpciPciAddress f1 = {0, 1, 0, 1};
    CHECK(virtpci_address_set_reserve(set, &f1, NIC) == -1, "function 1 refused");
    CHECK_STR(virtpci_last_error_message(),
              "internal error: Only PCI device addresses with function=0 are supported");
    CHECK(virtpci_address_set_reserve(set, &a, NIC) == -1, "double use");
    CHECK_STR(virtpci_last_error_message(),
              "XML error: Attempted double use of PCI Address 0000:01:00.0");

    CHECK(virtpci_address_set_release(set, &a) == 0, "release");
    CHECK(virtpci_address_set_reserve(set, &a, NIC) == 0, "%s", virtpci_last_error_message());

    VirtpciPciAddress unused = {9, 9, 9, 9};
    CHECK(virtpci_address_set_reserve_next(set, "<input type='mouse' bus='ps2'/>", &unused) == 1,
          "non-PCI device");
    CHECK(unused.domain == 9, "out unchanged for non-PCI device");

    CHECK(virtpci_address_set_reserve_next(NULL, NIC, &a) == -1, "NULL set");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "NULL set code");
    virtpci_address_set_free(set);
    virtpci_address_set_free(NULL);

    CHECK(virtpci_address_set_new_from_xml("<domain>") == NULL, "malformed domain");
}

static const char *NUMA_DOMAIN =
    "<domain type='qemu'><os><type machine='q35'>hvm</type></os>"
    "<cpu><numa><cell id='0' cpus='0' memory='1024'/><cell id='1' cpus='1' memory='1024'/>"
    "</numa></cpu><devices>"
    "<interface type='user'><model type='virtio'/><addressPreferences numa='1'/></interface>"
    "<interface type='user'><model type='virtio'/></interface>"
    "</devices></domain>";

/* Why each device got its address, as `virtpci assign --explain` (text and JSON) says. */
static void test_explain(void)
{
    char *out = NULL;
    CHECK(virtpci_domain_explain_pci_addresses(Q35, NULL, 0, &out) == 0, "%s",
          virtpci_last_error_message());
    CHECK(out && strstr(out, "machine ") == out, "text starts with the machine: %s",
          out ? out : "(null)");
    CHECK(out && strstr(out, "(added)") != NULL, "added controllers named: %s",
          out ? out : "(null)");
    virtpci_string_free(out);
    out = NULL;
    VirtpciAssignOptions opts;
    memset(&opts, 0, sizeof opts);
    opts.size = sizeof opts;
    opts.hotplug_ports = -1;
    opts.libvirt_version = 11003000;
    CHECK(virtpci_domain_explain_pci_addresses(Q35, &opts, VIRTPCI_EXPLAIN_JSON, &out) == 0, "%s",
          virtpci_last_error_message());
    CHECK(out && out[0] == '{' && strstr(out, "\"devices\"") != NULL, "JSON: %s",
          out ? out : "(null)");
    free(out);
    out = NULL;
    CHECK(virtpci_domain_explain_pci_addresses(Q35, NULL, 0x2, &out) == -1, "unknown flag");
    CHECK_STR(virtpci_last_error_message(), "invalid argument: unsupported flags (0x2) in function "
                                            "virtpci_domain_explain_pci_addresses");
    CHECK(out == NULL, "no output on failure");
}

static void test_assign_with_options(void)
{
    char *out = NULL;
    VirtpciAssignOptions opts;
    memset(&opts, 0, sizeof opts);
    opts.size = sizeof opts;
    opts.hotplug_ports = 12;
    CHECK(virtpci_domain_assign_pci_addresses_with_options(NUMA_DOMAIN, &opts, &out) == 0, "%s",
          virtpci_last_error_message());
    CHECK(out && strstr(out, "model='pcie-expander-bus'") != NULL, "expander added");
    CHECK(out && strstr(out, "<node>1</node>") != NULL, "expander on node 1");
    CHECK(out && strstr(out, "index='16' model='pcie-root-port'") != NULL, "room for 12");
    virtpci_string_free(out);

    out = NULL;
    opts.size = 4;
    CHECK(virtpci_domain_assign_pci_addresses_with_options(NUMA_DOMAIN, &opts, &out) == -1,
          "too small size");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "size code");
    opts.size = sizeof opts;
    opts.hotplug_ports = -1;
    CHECK(virtpci_domain_assign_pci_addresses_with_options(
              "<domain><os><type machine='q35'>hvm</type></os><devices>"
              "<interface type='user'><model type='virtio'/><addressPreferences numa='3'/>"
              "</interface></devices></domain>",
              &opts, &out) == -1,
          "missing NUMA node");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_XML_ERROR, "numa code %d",
          virtpci_last_error_code());

    /* The libvirt level: QEMU 10.0 (libvirt 11.3) has no pc-i440fx-2.3, QEMU 7.2 has. */
    static const char *OLD_PC =
        "<domain><os><type machine='pc-i440fx-2.3'>hvm</type></os><devices/></domain>";
    opts.hotplug_ports = -1;
    opts.libvirt_version = 11003000;
    CHECK(virtpci_domain_assign_pci_addresses_with_options(OLD_PC, &opts, &out) == -1,
          "11.3 refuses pc-i440fx-2.3");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_CONFIG_UNSUPPORTED, "machine code %d",
          virtpci_last_error_code());
    opts.libvirt_version = 9000000;
    CHECK(virtpci_domain_assign_pci_addresses_with_options(OLD_PC, &opts, &out) == 0, "%s",
          virtpci_last_error_message());
    virtpci_string_free(out);
    out = NULL;
    opts.libvirt_version = 10000000;
    CHECK(virtpci_domain_assign_pci_addresses_with_options(OLD_PC, &opts, &out) == -1,
          "unknown level");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "level code");
    /* A caller built against the first version of the struct gets the default level. */
    opts.libvirt_version = 11003000;
    opts.size = offsetof(VirtpciAssignOptions, libvirt_version);
    CHECK(virtpci_domain_assign_pci_addresses_with_options(OLD_PC, &opts, &out) == 0, "%s",
          virtpci_last_error_message());
    virtpci_string_free(out);
}

static void test_address_set_preferences(void)
{
    char *out = NULL;
    CHECK(virtpci_domain_assign_pci_addresses(NUMA_DOMAIN, 0, &out) == 0, "%s",
          virtpci_last_error_message());
    VirtpciAddressSet *set = out ? virtpci_address_set_new_from_xml(out) : NULL;
    virtpci_string_free(out);
    CHECK(set != NULL, "%s", virtpci_last_error_message());
    if (!set)
        return;
    /* Free the NUMA-1 root port (bus 2) again, then ask for node 1. */
    VirtpciPciAddress first = {0, 2, 0, 0};
    CHECK(virtpci_address_set_release(set, &first) == 0, "release");
    VirtpciAddressPreferences prefs = {sizeof prefs, -1, VIRTPCI_BUS_ANY, 1};
    VirtpciPciAddress a = {0};
    CHECK(virtpci_address_set_reserve_next_with_preferences(set, NIC, &prefs, &a) == 0, "%s",
          virtpci_last_error_message());
    CHECK(a.bus == 2, "behind the node-1 expander, got bus %u", a.bus);
    CHECK(virtpci_address_set_reserve_next_with_preferences(set, NIC, &prefs, &a) == -1,
          "node 1 full");
    prefs.numa_node = -1;
    prefs.hotplug = 0;
    CHECK(virtpci_address_set_reserve_next_with_preferences(set, NIC, &prefs, &a) == -1,
          "hotplug='no' cannot be hot-plugged");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_OPERATION_INVALID, "code %d",
          virtpci_last_error_code());
    prefs.hotplug = 7;
    CHECK(virtpci_address_set_reserve_next_with_preferences(set, NIC, &prefs, &a) == -1,
          "bad value");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "bad value code");
    virtpci_address_set_free(set);
}

struct worker {
    VirtpciAddressSet *set;
    int reserved;
};

static void *hotplug_worker(void *arg)
{
    struct worker *w = arg;
    VirtpciPciAddress a;
    for (int i = 0; i < 20; i++) {
        if (virtpci_address_set_reserve_next(w->set, NIC, &a) == 0) {
            w->reserved++;
        }
    }
    return NULL;
}

static void test_address_set_threads(void)
{
    /* 30 hotpluggable root ports shared by 4 threads: exactly 30 reservations succeed. */
    char xml[8192];
    size_t len = (size_t)snprintf(xml, sizeof(xml),
                                  "<domain><os><type machine='q35'>hvm</type></os><devices>"
                                  "<controller type='pci' index='0' model='pcie-root'/>");
    for (int i = 1; i <= 30; i++)
        len += (size_t)snprintf(xml + len, sizeof(xml) - len,
                                "<controller type='pci' index='%d' model='pcie-root-port'/>", i);
    snprintf(xml + len, sizeof(xml) - len, "<controller type='usb' index='0' model='none'/><memballoon model='none'/></devices></domain>");
    VirtpciAddressSet *set = virtpci_address_set_new_from_xml(xml);
    CHECK(set != NULL, "%s", virtpci_last_error_message());
    if (!set)
        return;
    pthread_t threads[4];
    struct worker workers[4];
    for (int i = 0; i < 4; i++) {
        workers[i].set = set;
        workers[i].reserved = 0;
        pthread_create(&threads[i], NULL, hotplug_worker, &workers[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        total += workers[i].reserved;
    }
    CHECK(total == 30, "reserved %d", total);
    virtpci_address_set_free(set);
}

/* s390x: hot-plugged virtio devices get CCW numbers, PCI devices zPCI ids, as libvirt. */
static const char *S390_DOMAIN =
    "<domain type='qemu'><name>z</name><memory>1048576</memory>"
    "<os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os><devices>"
    "<memballoon model='virtio'/></devices></domain>";
static const char *S390_HOSTDEV =
    "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
    "<address domain='0' bus='1' slot='0' function='0'/></source></hostdev>";

static void test_address_set_s390(void)
{
    VirtpciAddressSet *set = virtpci_address_set_new_from_xml(S390_DOMAIN);
    CHECK(set != NULL, "%s", virtpci_last_error_message());
    if (!set)
        return;
    VirtpciGuestAddress g = {0}, h = {0};
    /* The balloon holds fe.0.0000: the interface (virtio by default) gets fe.0.0001. */
    CHECK(virtpci_address_set_reserve_next_guest(set, NIC, &g) == 0, "%s",
          virtpci_last_error_message());
    CHECK(g.kind == VIRTPCI_GUEST_ADDRESS_CCW && g.ccw_cssid == 0xfe && g.ccw_ssid == 0 &&
              g.ccw_devno == 1,
          "ccw %d %x.%x.%04x", g.kind, g.ccw_cssid, g.ccw_ssid, g.ccw_devno);
    CHECK(virtpci_address_set_reserve_next_guest(set, S390_HOSTDEV, &h) == 0, "%s",
          virtpci_last_error_message());
    CHECK(h.kind == VIRTPCI_GUEST_ADDRESS_PCI && h.pci.slot == 1 && h.has_zpci &&
              h.zpci_uid == 1 && h.zpci_fid == 0,
          "pci slot %u zpci %d %u %u", h.pci.slot, h.has_zpci, h.zpci_uid, h.zpci_fid);
    /* Unplug frees both; the next devices get them again. */
    CHECK(virtpci_address_set_release_guest(set, &g) == 0, "%s", virtpci_last_error_message());
    CHECK(virtpci_address_set_release_guest(set, &h) == 0, "%s", virtpci_last_error_message());
    VirtpciGuestAddress again = {0};
    CHECK(virtpci_address_set_reserve_next_guest(set, NIC, &again) == 0 &&
              again.ccw_devno == 1,
          "devno again %04x", again.ccw_devno);
    CHECK(virtpci_address_set_reserve_next_guest(set, S390_HOSTDEV, &again) == 0 &&
              again.zpci_uid == 1 && again.pci.slot == 1,
          "uid again %u", again.zpci_uid);
    /* The PCI-only call refuses: its answer would lack the CCW number or the zPCI ids. */
    VirtpciPciAddress a = {0};
    CHECK(virtpci_address_set_reserve_next(set, S390_HOSTDEV, &a) == -1, "PCI-only refused");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_CONFIG_UNSUPPORTED, "code %d",
          virtpci_last_error_code());
    VirtpciGuestAddress bad = {0};
    bad.kind = 7;
    CHECK(virtpci_address_set_release_guest(set, &bad) == -1, "unknown kind");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "unknown kind code");
    virtpci_address_set_free(set);
}

int main(void)
{
    test_assign();
    test_assign_errors();
    test_address_set();
    test_address_set_threads();
    test_assign_with_options();
    test_explain();
    test_address_set_preferences();
    test_address_set_s390();
    return check_exit_status("test-assign");
}
