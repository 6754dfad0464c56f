/* The hostdev manager through the C API, on a simulated copy of the bundled quad-nic host
 * (a 4-function NIC in IOMMU group 6): prepare and re-attach, libvirt's messages, the whole-group
 * rule and its legacy flag, fault injection with rollback, node-device calls, the domain-XML
 * conveniences and the dry run, update-active, a restart on the same state directory, the
 * host reference held by the manager, and threads.
 *
 * Usage: test-hostdev VIRTPCI_CLI FIXTURES_DIR (the CLI materializes the fixture tree). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "virtpci.h"

static char tree[512];
static char state[600];

static VirtpciHostdev nic(unsigned int fn, int managed)
{
    VirtpciHostdev h;
    memset(&h, 0, sizeof(h));
    h.source.domain = 0;
    h.source.bus = 2;
    h.source.slot = 0;
    h.source.function = fn;
    h.managed = managed;
    h.unassigned = fn != 1;
    h.driver = NULL;
    return h;
}

/* The driver of 0000:02:00.<fn>, compared with want (NULL: unbound). */
static int driver_is(VirtpciHost *host, unsigned int fn, const char *want)
{
    VirtpciPciAddress a = {0, 2, 0, fn};
    char *drv = NULL;
    if (virtpci_host_get_driver(host, &a, &drv) < 0)
        return 0;
    int ok = (drv == NULL && want == NULL) || (drv && want && strcmp(drv, want) == 0);
    free(drv);
    return ok;
}

static int all_on(VirtpciHost *host, const char *want)
{
    for (unsigned int fn = 0; fn < 4; fn++)
        if (!driver_is(host, fn, want))
            return 0;
    return 1;
}

static void test_round_trip(VirtpciHost *host, VirtpciHostdevManager *mgr)
{
    VirtpciHostdev devs[4] = {nic(0, 1), nic(1, 1), nic(2, 1), nic(3, 1)};
    const unsigned char uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm1", uuid, devs, 4, 0) == 0, "%s",
          virtpci_last_error_message());
    CHECK(all_on(host, "vfio-pci"), "all on vfio-pci");

    VirtpciPciAddress a1 = {0, 2, 0, 1};
    char *drv = NULL, *dom = NULL;
    CHECK(virtpci_hostdev_get_owner(mgr, &a1, &drv, &dom) == 1, "active");
    CHECK_STR(drv, "QEMU");
    CHECK_STR(dom, "vm1");
    free(drv);
    virtpci_string_free(dom);

    /* Another domain: the sibling it would share is in use. */
    VirtpciHostdev other = nic(1, 1);
    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm2", NULL, &other, 1,
                                              VIRTPCI_HOSTDEV_LEGACY_GROUP_CHECK) == -1, "in use");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_OPERATION_INVALID, "code %d",
          virtpci_last_error_code());
    CHECK_STR(virtpci_last_error_message(),
              "Requested operation is not valid: PCI device 0000:02:00.1 is in use by driver QEMU, "
              "domain vm1");

    CHECK(virtpci_hostdev_reattach_pci_devices(mgr, "QEMU", "vm1", devs, 4) == 0, "%s",
          virtpci_last_error_message());
    CHECK(all_on(host, "tg3"), "all back on tg3");
    CHECK(virtpci_hostdev_get_owner(mgr, &a1, &drv, &dom) == 0 && drv == NULL && dom == NULL,
          "unowned");
}

static void test_checks(VirtpciHostdevManager *mgr)
{
    VirtpciHostdev one = nic(1, 1);
    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm1", NULL, &one, 1, 0) == -1, "S5");
    CHECK_STR(virtpci_last_error_message(),
              "Requested operation is not valid: All devices of the same IOMMU group 6 of the PCI "
              "device 0000:02:00.1 must belong to domain vm1: not declared: 0000:02:00.0, "
              "0000:02:00.2, 0000:02:00.3; declare each as a managed hostdev hidden from the guest "
              "with <address type='unassigned'/>, or use the legacy group check (libvirt 9.0's "
              "rule)");

    VirtpciHostdev um[4] = {nic(0, 0), nic(1, 0), nic(2, 0), nic(3, 0)};
    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm1", NULL, um, 4, 0) == -1, "unmanaged");
    CHECK_STR(virtpci_last_error_message(),
              "Requested operation is not valid: Unmanaged PCI device 0000:02:00.0 must be manually "
              "detached from the host");

    VirtpciHostdev devs[4] = {nic(0, 1), nic(1, 1), nic(2, 1), nic(3, 1)};
    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm1", NULL, devs, 4, 1u << 9) == -1,
          "unknown flag");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "flag code");
    CHECK_STR(virtpci_last_error_message(), "invalid argument: unsupported flags (0x200) in "
                                            "function virtpci_hostdev_prepare_pci_devices");
    CHECK(virtpci_hostdev_prepare_pci_devices(NULL, "QEMU", "vm1", NULL, devs, 4, 0) == -1, "NULL");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "NULL mgr");
    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", NULL, NULL, devs, 4, 0) == -1, "NULL dom");
    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm1", NULL, NULL, 2, 0) == -1,
          "NULL hostdevs with n > 0");
    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm1", NULL, NULL, 0, 0) == 0,
          "nothing to do");

    VirtpciHostdev xen = nic(0, 1);
    xen.driver = "xen";
    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm1", NULL, &xen, 1,
                                              VIRTPCI_HOSTDEV_LEGACY_GROUP_CHECK) == -1, "xen");
    CHECK_STR(virtpci_last_error_message(),
              "unsupported configuration: pci backend driver 'xen' is not supported");

    VirtpciHostdev missing = nic(0, 1);
    missing.source.bus = 9;
    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm1", NULL, &missing, 1, 0) == -1,
          "missing");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_SYSTEM_ERROR, "missing code");
    CHECK(strstr(virtpci_last_error_message(), "Device 0000:09:00.0 not found: could not access ")
              != NULL, "%s", virtpci_last_error_message());
}

static void test_faults(VirtpciHost *host, VirtpciHostdevManager *mgr)
{
    VirtpciHostdev devs[4] = {nic(0, 1), nic(1, 1), nic(2, 1), nic(3, 1)};
    /* 4 devices × 3 writes; each one fails in turn, and says it fired. */
    for (unsigned int k = 1; k <= 12; k++) {
        int fired = virtpci_host_faults_fired(host);
        CHECK(virtpci_host_inject_fault(host, NULL, k, 5 /* EIO */) == 0, "inject");
        CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm1", NULL, devs, 4, 0) == -1,
              "fault %u fails prepare", k);
        CHECK(virtpci_host_faults_fired(host) == fired + 1, "fault %u fired", k);
        CHECK(virtpci_host_clear_faults(host) == 0, "fault %u: nothing left armed", k);
        CHECK(all_on(host, "tg3"), "fault %u rolled back", k);
        VirtpciPciAddress a0 = {0, 2, 0, 0};
        char *d = NULL, *n = NULL;
        CHECK(virtpci_hostdev_get_owner(mgr, &a0, &d, &n) == 0, "fault %u: unbooked", k);
    }
    CHECK(virtpci_host_inject_fault(host, "unbind", 0, 5) == -1, "nth 0 refused");
    /* A fault that never fires is cleared, and counted as such. */
    CHECK(virtpci_host_inject_fault(host, "reset", 1000, 5) == 0, "inject");
    CHECK(virtpci_host_clear_faults(host) == 1, "one armed fault cleared");
    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm1", NULL, devs, 4, 0) == 0, "%s",
          virtpci_last_error_message());
    CHECK(virtpci_hostdev_reattach_pci_devices(mgr, "QEMU", "vm1", devs, 4) == 0, "%s",
          virtpci_last_error_message());
    CHECK(virtpci_host_clear_faults(NULL) == -1, "NULL host");
}

/* Every device the manager holds, and the error a free leaves alone. */
static void test_list_devices(VirtpciHost *host, VirtpciHostdevManager *mgr)
{
    VirtpciHostdev devs[4] = {nic(0, 1), nic(1, 1), nic(2, 1), nic(3, 1)};
    VirtpciHostdevStatus *list = NULL;
    size_t n = 99;
    CHECK(virtpci_hostdev_list_devices(mgr, &list, &n) == 0 && n == 0 && list == NULL, "empty");
    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm1", NULL, devs, 4, 0) == 0, "%s",
          virtpci_last_error_message());
    CHECK(virtpci_hostdev_list_devices(mgr, &list, &n) == 0 && n == 4, "%s",
          virtpci_last_error_message());
    for (size_t i = 0; list && i < n; i++) {
        CHECK(list[i].address.bus == 2 && list[i].address.function == i, "address %zu", i);
        CHECK_STR(list[i].drv_name, "QEMU");
        CHECK_STR(list[i].dom_name, "vm1");
        CHECK_STR(list[i].stub, "vfio-pci");
        CHECK(list[i].managed == 1 && list[i].interrupted == 0, "flags %zu", i);
    }
    /* An error, then frees: the error is still there. */
    CHECK(virtpci_hostdev_list_devices(mgr, NULL, &n) == -1, "NULL devices");
    virtpci_hostdev_status_list_free(list, n);
    virtpci_hostdev_status_list_free(NULL, 0);
    virtpci_hostdev_manager_free(NULL);
    virtpci_host_free(NULL);
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "code kept after frees");
    CHECK_STR(virtpci_last_error_message(),
              "invalid argument: devices in virtpci_hostdev_list_devices must not be NULL");

    CHECK(virtpci_hostdev_reattach_pci_devices(mgr, "QEMU", "vm1", devs, 3) == 0, "%s",
          virtpci_last_error_message());
    CHECK(virtpci_hostdev_list_devices(mgr, &list, &n) == 0 && n == 1, "one left");
    if (list && n == 1)
        CHECK(list[0].address.function == 3, "function 3 left");
    virtpci_hostdev_status_list_free(list, n);
    CHECK(virtpci_hostdev_reattach_pci_devices(mgr, "QEMU", "vm1", devs, 4) == 0, "%s",
          virtpci_last_error_message());
    CHECK(all_on(host, "tg3"), "all back");
}

/* What the CLI's groups, host show and status print, through the C API; and the host-critical
 * refusal naming the C flag that overrides it. */
static void test_reports(VirtpciHost *host, VirtpciHostdevManager *mgr)
{
    char *json = NULL;
    CHECK(virtpci_host_iommu_groups_json(host, &json) == 0, "%s", virtpci_last_error_message());
    CHECK(json && strstr(json, "{\"group\":6,\"devices\":[{\"address\":\"0000:02:00.0\"") != NULL,
          "group 6: %s", json ? json : "(null)");
    free(json);
    VirtpciPciAddress a0 = {0, 2, 0, 0};
    json = NULL;
    CHECK(virtpci_host_device_json(host, &a0, &json) == 0, "%s", virtpci_last_error_message());
    CHECK(json && strstr(json, "\"driver\":\"tg3\"") && strstr(json, "\"net\":[\"enp2s0f0\"]"),
          "device facts: %s", json ? json : "(null)");
    virtpci_string_free(json);

    VirtpciHostdev devs[4] = {nic(0, 1), nic(1, 1), nic(2, 1), nic(3, 1)};
    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm1", NULL, devs, 4, 0) == 0, "%s",
          virtpci_last_error_message());
    json = NULL;
    CHECK(virtpci_hostdev_status_json(mgr, &json) == 0, "%s", virtpci_last_error_message());
    CHECK(json && strstr(json, "\"domain\": \"vm1\"") && strstr(json, "\"bound_to\": \"vfio-pci\"")
              && strstr(json, "\"unheld_vfio\": []"),
          "status: %s", json ? json : "(null)");
    free(json);
    CHECK(virtpci_hostdev_reattach_pci_devices(mgr, "QEMU", "vm1", devs, 4) == 0, "%s",
          virtpci_last_error_message());

    /* The fixture's eno1 (00:19.0) carries the default route. */
    VirtpciHostdev eno1 = {{0, 0, 0x19, 0}, 1, 0, NULL};
    CHECK(virtpci_hostdev_prepare_pci_devices(mgr, "QEMU", "vm1", NULL, &eno1, 1, 0) == -1,
          "critical device detached");
    CHECK_STR(virtpci_last_error_message(),
              "Requested operation is not valid: PCI device 0000:00:19.0 is critical to the host: "
              "it holds network interface eno1, which carries the default route; refusing to "
              "detach it unless forced (VIRTPCI_HOSTDEV_FORCE overrides)");
}

static void test_node_device(VirtpciHost *host, VirtpciHostdevManager *mgr)
{
    VirtpciPciAddress a0 = {0, 2, 0, 0};
    char *d = NULL, *n = NULL;
    CHECK(virtpci_hostdev_pci_node_device_detach(mgr, &a0, NULL, 0) == 0, "%s",
          virtpci_last_error_message());
    CHECK(driver_is(host, 0, "vfio-pci"), "detached");
    CHECK(virtpci_hostdev_get_owner(mgr, &a0, &d, &n) == 2, "inactive");
    CHECK(virtpci_hostdev_pci_node_device_reset(mgr, &a0) == 0, "vfio-bound: nothing to do");
    CHECK(virtpci_hostdev_pci_node_device_reattach(mgr, &a0) == 0, "%s",
          virtpci_last_error_message());
    CHECK(driver_is(host, 0, "tg3"), "back on tg3");
    /* A PM reset of a tg3 function (no FLR), its config space restored. */
    CHECK(virtpci_hostdev_pci_node_device_reset(mgr, &a0) == 1, "PM reset: %s",
          virtpci_last_error_message());
    VirtpciPciAddress bridge = {0, 0, 0x1c, 0};
    CHECK(virtpci_hostdev_pci_node_device_reset(mgr, &bridge) == -1, "bridge");
    CHECK_STR(virtpci_last_error_message(),
              "internal error: Invalid attempt to reset PCI device 0000:00:1c.0. Only PCI endpoint "
              "devices can be reset");
}

static const char *DOM_XML =
    "<domain type='kvm'><name>xmlvm</name><devices>\n"
    "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
    "<address domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></source>"
    "<address type='unassigned'/></hostdev>\n"
    "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
    "<address domain='0x0000' bus='0x02' slot='0x00' function='0x1'/></source></hostdev>\n"
    "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
    "<address domain='0x0000' bus='0x02' slot='0x00' function='0x2'/></source>"
    "<address type='unassigned'/></hostdev>\n"
    "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
    "<address domain='0x0000' bus='0x02' slot='0x00' function='0x3'/></source>"
    "<address type='unassigned'/></hostdev>\n"
    "</devices></domain>";

static void test_domain_xml(VirtpciHost *host, VirtpciHostdevManager *mgr)
{
    char *json = NULL;
    CHECK(virtpci_hostdev_check_domain(mgr, "QEMU", DOM_XML, 0, &json) == 0, "%s",
          virtpci_last_error_message());
    CHECK(json && strstr(json, "\"ok\": true") && strstr(json, "\"action\": \"detach\""),
          "report");
    free(json);
    json = NULL;
    CHECK(all_on(host, "tg3"), "dry run changed nothing");

    CHECK(virtpci_hostdev_prepare_domain(mgr, "QEMU", DOM_XML, 0) == 0, "%s",
          virtpci_last_error_message());
    CHECK(all_on(host, "vfio-pci"), "prepared from XML");
    CHECK(virtpci_hostdev_check_domain(mgr, "QEMU", DOM_XML, 0, &json) == 1, "would fail now");
    CHECK(strstr(virtpci_last_error_message(), "is in use by driver QEMU, domain xmlvm") != NULL,
          "%s", virtpci_last_error_message());
    free(json);

    /* A restarted daemon: a new manager on the same state directory, and update-active. */
    VirtpciHostdevManager *again = virtpci_hostdev_manager_new(host, state);
    CHECK(again != NULL, "%s", virtpci_last_error_message());
    VirtpciHostdev devs[4] = {nic(0, 1), nic(1, 1), nic(2, 1), nic(3, 1)};
    CHECK(virtpci_hostdev_update_active_pci_devices(again, "QEMU", "xmlvm", devs, 4) == 0, "%s",
          virtpci_last_error_message());
    CHECK(virtpci_hostdev_update_active_pci_devices(again, "QEMU", "other", devs, 1) == -1,
          "owned by xmlvm");
    CHECK(virtpci_hostdev_reattach_domain(again, "QEMU", DOM_XML) == 0, "%s",
          virtpci_last_error_message());
    CHECK(all_on(host, "tg3"), "re-attached from XML by the new manager");
    virtpci_hostdev_manager_free(again);

    CHECK(virtpci_hostdev_prepare_domain(mgr, "QEMU", "<domain>", 0) == -1, "bad XML");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_XML_ERROR, "XML code");
}

/* <interface type='hostdev'> on the simulated SR-IOV server (materialized into `dir`): a PF is
 * refused with libvirt's words and nothing moves; a VF with a MAC and a VLAN is prepared and
 * given back (the MAC/VLAN themselves are checked by the Rust tests and `virtpci host show`). */
static void test_sriov_interface(const char *dir, const char *state_dir)
{
    VirtpciHost *host = virtpci_host_open_simulated(dir);
    CHECK(host != NULL, "%s", virtpci_last_error_message());
    VirtpciHostdevManager *mgr = host ? virtpci_hostdev_manager_new(host, state_dir) : NULL;
    CHECK(mgr != NULL, "%s", virtpci_last_error_message());
    if (!mgr) {
        virtpci_host_free(host);
        return;
    }
    static const char *pf_xml =
        "<domain type='kvm'><name>netvm</name><devices>"
        "<interface type='hostdev' managed='yes'><source>"
        "<address type='pci' domain='0' bus='0x3b' slot='0' function='0'/></source>"
        "<mac address='52:54:00:aa:bb:cc'/></interface></devices></domain>";
    CHECK(virtpci_hostdev_prepare_domain(mgr, "QEMU", pf_xml, 0) == -1, "PF refused");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_CONFIG_UNSUPPORTED, "PF code %d",
          (int)virtpci_last_error_code());
    CHECK(strcmp(virtpci_last_error_message(),
                 "unsupported configuration: Interface type hostdev is currently supported on "
                 "SR-IOV Virtual Functions only") == 0,
          "%s", virtpci_last_error_message());
    char *drv = NULL;
    VirtpciPciAddress pf = {0, 0x3b, 0, 0};
    CHECK(virtpci_host_get_driver(host, &pf, &drv) == 0 && drv && strcmp(drv, "i40e") == 0,
          "the PF did not move");
    free(drv);

    static const char *vf_xml =
        "<domain type='kvm'><name>netvm</name><devices>"
        "<interface type='hostdev' managed='yes'><source>"
        "<address type='pci' domain='0' bus='0x3b' slot='2' function='2'/></source>"
        "<mac address='52:54:00:aa:bb:cc'/><vlan><tag id='42'/></vlan></interface>"
        "</devices></domain>";
    CHECK(virtpci_hostdev_prepare_domain(mgr, "QEMU", vf_xml, 0) == 0, "%s",
          virtpci_last_error_message());
    CHECK(virtpci_hostdev_reattach_domain(mgr, "QEMU", vf_xml) == 0, "%s",
          virtpci_last_error_message());
    virtpci_hostdev_manager_free(mgr);
    virtpci_host_free(host);
}

struct worker {
    VirtpciHostdevManager *mgr;
    char dom[16];
    int won;
    int failed;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    VirtpciHostdev devs[4] = {nic(0, 1), nic(1, 1), nic(2, 1), nic(3, 1)};
    for (int i = 0; i < 15; i++) {
        if (virtpci_hostdev_prepare_pci_devices(w->mgr, "QEMU", w->dom, NULL, devs, 4, 0) < 0) {
            if (virtpci_last_error_code() != VIRTPCI_ERR_OPERATION_INVALID)
                w->failed++;
            continue;
        }
        w->won++;
        VirtpciPciAddress a = {0, 2, 0, 3};
        char *d = NULL, *n = NULL;
        if (virtpci_hostdev_get_owner(w->mgr, &a, &d, &n) != 1 || !n || strcmp(n, w->dom) != 0)
            w->failed++;
        free(d);
        free(n);
        if (virtpci_hostdev_reattach_pci_devices(w->mgr, "QEMU", w->dom, devs, 4) < 0)
            w->failed++;
    }
    return NULL;
}

static void test_threads(VirtpciHost *host, VirtpciHostdevManager *mgr)
{
    struct worker workers[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        workers[i].mgr = mgr;
        snprintf(workers[i].dom, sizeof(workers[i].dom), "t%d", i);
        workers[i].won = workers[i].failed = 0;
        pthread_create(&threads[i], NULL, worker_main, &workers[i]);
    }
    int won = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        CHECK(workers[i].failed == 0, "worker %d: %d failures", i, workers[i].failed);
        won += workers[i].won;
    }
    CHECK(won > 0, "someone prepared");
    CHECK(all_on(host, "tg3"), "all back after the threads");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s VIRTPCI_CLI FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    char base[] = "/tmp/virtpci-c-hostdev-XXXXXX";
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(tree, sizeof(tree), "%s/tree", base);
    snprintf(state, sizeof(state), "%s/state", base);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s' host materialize '%s/quad-nic.json' '%s'", argv[1], argv[2],
             tree);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot materialize the fixture: %s\n", cmd);
        return 2;
    }

    VirtpciHost *host = virtpci_host_open_simulated(tree);
    CHECK(host != NULL, "%s", virtpci_last_error_message());
    VirtpciHostdevManager *mgr = virtpci_hostdev_manager_new(host, state);
    CHECK(mgr != NULL, "%s", virtpci_last_error_message());
    CHECK(virtpci_hostdev_manager_new(NULL, state) == NULL, "NULL host");
    CHECK(virtpci_hostdev_manager_new(host, "/proc/virtpci-cannot-exist") == NULL, "bad dir");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_SYSTEM_ERROR, "state dir code");

    if (host && mgr) {
        test_round_trip(host, mgr);
        test_checks(mgr);
        test_faults(host, mgr);
        test_list_devices(host, mgr);
        test_node_device(host, mgr);
        test_reports(host, mgr);
        test_domain_xml(host, mgr);
        test_threads(host, mgr);
    }

    char sriov_tree[600], sriov_state[600];
    snprintf(sriov_tree, sizeof(sriov_tree), "%s/sriov", base);
    snprintf(sriov_state, sizeof(sriov_state), "%s/sriov-state", base);
    snprintf(cmd, sizeof(cmd), "'%s' host materialize '%s/sriov-server.json' '%s'", argv[1],
             argv[2], sriov_tree);
    CHECK(system(cmd) == 0, "materialize %s", cmd);
    test_sriov_interface(sriov_tree, sriov_state);

    /* The manager keeps the host alive after its handle is released. */
    VirtpciHost *second = virtpci_host_open_simulated(tree);
    VirtpciHostdevManager *owner = virtpci_hostdev_manager_new(second, state);
    virtpci_host_free(second);
    VirtpciHostdev devs[4] = {nic(0, 1), nic(1, 1), nic(2, 1), nic(3, 1)};
    CHECK(virtpci_hostdev_prepare_pci_devices(owner, "QEMU", "late", NULL, devs, 4, 0) == 0, "%s",
          virtpci_last_error_message());
    CHECK(virtpci_hostdev_reattach_pci_devices(owner, "QEMU", "late", devs, 4) == 0, "%s",
          virtpci_last_error_message());
    virtpci_hostdev_manager_free(owner);

    virtpci_hostdev_manager_free(mgr);
    virtpci_hostdev_manager_free(NULL);
    virtpci_host_free(host);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", base);
    return check_exit_status("test-hostdev");
}
