/* The ABI-stability check, whole-slot hot-plug plans and the function-0 rule, through the C
 * API: return values, ownership of reports and plans, error codes, and the log callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "virtpci.h"

#define NIC(mac, addr)                                                                  \
    "<interface type='user'><mac address='" mac "'/><model type='virtio'/>" addr         \
    "</interface>"

#define DOM(devices)                                                                     \
    "<domain type='qemu'><name>abi</name>"                                               \
    "<uuid>5e0c1f6a-9d3b-4c2e-8f7a-1b2c3d4e5f60</uuid>"                                  \
    "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>" devices             \
    "</devices></domain>"

static const char *OLD = DOM(
    NIC("52:54:00:00:00:01", "<address type='pci' domain='0' bus='0' slot='5' function='0'/>")
    NIC("52:54:00:00:00:02", "<address type='pci' domain='0' bus='0' slot='5' function='1'/>"));
static const char *NEW = DOM(
    NIC("52:54:00:00:00:01", "<address type='pci' domain='0' bus='0' slot='5' function='0'/>"));

static void test_abi_stability(void)
{
    char *report = NULL;
    /* Same definition: stable, report says so. */
    CHECK(virtpci_domain_check_abi_stability(OLD, OLD, VIRTPCI_ABI_STRICT, &report) == 0, "%s",
          virtpci_last_error_message());
    CHECK(report && strstr(report, "PCI ABI unchanged"), "%s", report ? report : "(null)");
    free(report);

    /* S3: removing the sibling silently turns the multifunction bit off. */
    report = NULL;
    CHECK(virtpci_domain_check_abi_stability(OLD, NEW, 0, &report) == 0, "%s",
          virtpci_last_error_message());
    CHECK(report && strstr(report, "multifunction bit flipped: on -> off"), "%s",
          report ? report : "(null)");
    CHECK(report && strstr(report, "removed from 0000:00:05.1"), "%s",
          report ? report : "(null)");
    virtpci_string_free(report);

    /* Strict: an error listing the changes, and the report is still there. */
    report = NULL;
    CHECK(virtpci_domain_check_abi_stability(OLD, NEW, VIRTPCI_ABI_STRICT | VIRTPCI_ABI_REPORT_JSON,
                                             &report) == -1, "strict refuses");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_CONFIG_UNSUPPORTED, "code %d",
          virtpci_last_error_code());
    CHECK(strstr(virtpci_last_error_message(), "guest PCI ABI changed (2 change(s))") != NULL,
          "%s", virtpci_last_error_message());
    CHECK(report && strstr(report, "\"kind\": \"multifunction-flipped\""), "%s",
          report ? report : "(null)");
    free(report);

    /* As written, the bit was never there: only the removal. A NULL report is fine. */
    CHECK(virtpci_domain_check_abi_stability(OLD, NEW, VIRTPCI_ABI_AS_GIVEN, NULL) == 0, "%s",
          virtpci_last_error_message());

    /* Bad input. */
    report = (char *)"untouched";
    CHECK(virtpci_domain_check_abi_stability(NULL, NEW, 0, &report) == -1, "NULL old");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "NULL code");
    CHECK(virtpci_domain_check_abi_stability(OLD, NEW, 1u << 20, &report) == -1, "bad flag");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "flag code");
    CHECK(virtpci_domain_check_abi_stability(OLD, "<domain>", 0, &report) == -1, "bad xml");
    CHECK(strncmp(virtpci_last_error_message(), "XML error: new definition: ", 27) == 0, "%s",
          virtpci_last_error_message());
    const char *other = DOM("");
    static char other_guest[512];
    snprintf(other_guest, sizeof(other_guest), "%s", other);
    memcpy(strstr(other_guest, "5e0c1f6a"), "00000000", 8);
    CHECK(virtpci_domain_check_abi_stability(OLD, other_guest, 0, &report) == -1, "other guest");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_CONFIG_UNSUPPORTED, "other guest code");
    CHECK(strstr(virtpci_last_error_message(), "does not match source") != NULL, "%s",
          virtpci_last_error_message());
    CHECK(strcmp(report, "untouched") == 0, "report unchanged on error");
}

static const char *Q35 =
    "<domain type='qemu'><name>q</name><os><type arch='x86_64' machine='q35'>hvm</type></os>"
    "<devices><controller type='pci' index='0' model='pcie-root'/>"
    "<controller type='pci' index='1' model='pcie-root-port'/>"
    "<controller type='pci' index='2' model='pcie-root-port'/>"
    "<controller type='usb' index='0' model='none'/><memballoon model='none'/>"
    "</devices></domain>";

static void test_slot_plans(void)
{
    VirtpciAddressSet *set = virtpci_address_set_new_from_xml(Q35);
    CHECK(set != NULL, "%s", virtpci_last_error_message());
    if (!set)
        return;
    const char *devs[3] = {
        NIC("52:54:00:00:01:00", ""), NIC("52:54:00:00:01:01", ""), NIC("52:54:00:00:01:02", ""),
    };
    VirtpciSlotPlan *plan = NULL;
    CHECK(virtpci_address_set_plan_slot_attach(set, devs, 3, &plan) == 0, "%s",
          virtpci_last_error_message());
    size_t n = 0;
    const VirtpciSlotPlanItem *items = plan ? virtpci_slot_plan_items(plan, &n) : NULL;
    CHECK(items && n == 3, "3 items");
    if (items && n == 3) {
        CHECK(items[0].address.function == 1 && items[1].address.function == 2 &&
                  items[2].address.function == 0, "functions above 0 first, 0 last");
        CHECK(items[2].address.bus == 1 && items[2].multifunction == 1, "multifunction on f0");
        CHECK(strstr(items[2].device_xml, "multifunction='on'") != NULL, "%s",
              items[2].device_xml);
        CHECK_STR(items[0].description, "interface (mac 52:54:00:00:01:01)");
    }
    VirtpciPciAddress slot;
    CHECK(plan && virtpci_slot_plan_slot(plan, &slot) == 0 && slot.bus == 1 && slot.slot == 0,
          "slot");

    int state = -1;
    char *why = (char *)"x";
    VirtpciPciAddress f1 = {0, 1, 0, 1};
    CHECK(virtpci_address_set_get_pluggability(set, &f1, &state, &why) == 0, "%s",
          virtpci_last_error_message());
    CHECK(state == VIRTPCI_PLUGGABLE_WITH_SLOT && why == NULL, "with slot: %d", state);

    /* 9 devices, or none. */
    const char *nine[9];
    for (int i = 0; i < 9; i++)
        nine[i] = devs[0];
    VirtpciSlotPlan *bad = NULL;
    CHECK(virtpci_address_set_plan_slot_attach(set, nine, 9, &bad) == -1 && bad == NULL, "9");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "9 code");
    CHECK(virtpci_address_set_plan_slot_attach(set, devs, 0, &bad) == -1, "0 devices");
    const char *unknown[1] = {"<frobnicator/>"};
    CHECK(virtpci_address_set_plan_slot_attach(set, unknown, 1, &bad) == -1, "unknown");
    CHECK(strstr(virtpci_last_error_message(), "does not use a PCI address") != NULL, "%s",
          virtpci_last_error_message());

    /* Detach the slot, then release: the slot is free again. */
    VirtpciSlotPlan *detach = NULL;
    CHECK(virtpci_address_set_plan_slot_detach(set, &f1, &detach) == 0, "%s",
          virtpci_last_error_message());
    const VirtpciSlotPlanItem *d = detach ? virtpci_slot_plan_items(detach, &n) : NULL;
    CHECK(d && n == 3 && d[0].address.function == 0, "function 0 first");
    CHECK(detach && virtpci_address_set_release_slot_plan(set, detach) == 0, "%s",
          virtpci_last_error_message());
    CHECK(virtpci_address_set_get_pluggability(set, &f1, &state, NULL) == -1, "gone");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_DEVICE_MISSING, "gone code");
    VirtpciSlotPlan *none = NULL;
    CHECK(virtpci_address_set_plan_slot_detach(set, &f1, &none) == -1 && none == NULL, "empty");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_DEVICE_MISSING, "empty code");

    /* A root port sits on pcie-root, which has no hotplug. */
    VirtpciPciAddress port = {0, 0, 1, 0};
    CHECK(virtpci_address_set_get_pluggability(set, &port, &state, &why) == 0, "%s",
          virtpci_last_error_message());
    CHECK(state == VIRTPCI_NOT_PLUGGABLE && why && strstr(why, "pcie-root"), "%d %s", state,
          why ? why : "(null)");
    free(why);
    CHECK(virtpci_address_set_plan_slot_detach(set, &port, &none) == -1, "root port refused");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_OPERATION_FAILED, "refusal code");

    virtpci_slot_plan_free(plan);
    virtpci_slot_plan_free(detach);
    virtpci_slot_plan_free(NULL);
    virtpci_address_set_free(set);
}

static int warnings_seen;
static char last_warning[1024];

static void log_cb(int level, const char *message, void *opaque)
{
    (void)opaque;
    if (level == VIRTPCI_LOG_WARNING) {
        warnings_seen++;
        snprintf(last_warning, sizeof(last_warning), "%s", message);
    }
}

static void test_function_zero(void)
{
    static const char *lone = DOM(
        NIC("52:54:00:00:00:01", "<address type='pci' domain='0' bus='0' slot='5' function='2'/>"));
    virtpci_set_log_callback(log_cb, NULL);
    char *out = NULL;
    CHECK(virtpci_domain_assign_pci_addresses(lone, 0, &out) == 0, "%s",
          virtpci_last_error_message());
    CHECK(warnings_seen == 1, "one warning: %d", warnings_seen);
    CHECK(strstr(last_warning, "guest PCI slot 0000:00:05 is used without function 0") &&
              strstr(last_warning, "Linux and Windows guests on x86"), "%s", last_warning);
    free(out);
    out = NULL;
    CHECK(virtpci_domain_assign_pci_addresses(lone, VIRTPCI_ASSIGN_STRICT_FUNCTION0, &out) == -1,
          "strict refuses on x86");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_CONFIG_UNSUPPORTED, "strict code");
    CHECK(out == NULL, "out unchanged");
    virtpci_set_log_callback(NULL, NULL);
}

/* s390x: a moved CCW device and a changed zPCI id are guest-visible changes. */
#define S390_DOM(devices)                                                                \
    "<domain type='qemu'><name>abi</name><memory>1048576</memory>"                       \
    "<os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os><devices>" devices \
    "<memballoon model='none'/></devices></domain>"
#define S390_DISK(devno)                                                                 \
    "<disk type='file' device='disk'><source file='/a.img'/><target dev='vda' bus='virtio'/>" \
    "<address type='ccw' cssid='0xfe' ssid='0x0' devno='" devno "'/></disk>"
#define S390_HOSTDEV(uid)                                                                \
    "<hostdev mode='subsystem' type='pci' managed='yes'><source>"                        \
    "<address domain='0' bus='1' slot='0' function='0'/></source>"                       \
    "<address type='pci' domain='0' bus='0' slot='1' function='0'><zpci uid='" uid "'/>"  \
    "</address></hostdev>"

static void test_abi_stability_s390(void)
{
    const char *old = S390_DOM(S390_DISK("0x0005") S390_HOSTDEV("1"));
    const char *new = S390_DOM(S390_DISK("0x0006") S390_HOSTDEV("3"));
    char *report = NULL;
    CHECK(virtpci_domain_check_abi_stability(old, old, VIRTPCI_ABI_STRICT, &report) == 0, "%s",
          virtpci_last_error_message());
    free(report);
    report = NULL;
    CHECK(virtpci_domain_check_abi_stability(old, new, 0, &report) == 0, "%s",
          virtpci_last_error_message());
    CHECK(report && strstr(report, "disk vda: address moved: fe.0.0005 -> fe.0.0006"), "%s",
          report ? report : "(null)");
    CHECK(report && strstr(report, "zPCI identifier changed (uid): 0x0001 -> 0x0003"), "%s",
          report ? report : "(null)");
    free(report);
    report = NULL;
    CHECK(virtpci_domain_check_abi_stability(old, new, VIRTPCI_ABI_STRICT, &report) == -1,
          "strict refuses");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_CONFIG_UNSUPPORTED, "code %d",
          virtpci_last_error_code());
    free(report);
}

int main(void)
{
    test_abi_stability();
    test_abi_stability_s390();
    test_slot_plans();
    test_function_zero();
    return check_exit_status("test-abi");
}
