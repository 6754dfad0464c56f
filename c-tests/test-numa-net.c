/* Host-NUMA mirroring through VirtpciAssignOptions.numa_host, a VF's MAC/VLAN given with
 * virtpci_hostdev_prepare_pci_devices_with_net(), and whole-group help with
 * virtpci_domain_add_missing_group_members(), on simulated copies of the bundled hosts.
 *
 * Usage: test-numa-net VIRTPCI_CLI FIXTURES_DIR (the CLI materializes the fixture trees). */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "virtpci.h"

static char warning[1024];

static void keep_warning(int level, const char *message, void *opaque)
{
    (void)opaque;
    if (level == VIRTPCI_LOG_WARNING)
        snprintf(warning, sizeof(warning), "%s", message);
}

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* The VF net table line the simulated kernel keeps for VF `index` of PF 3b:00.0, or "". */
static void vf_net_line(const char *tree, int index, char *out, size_t size)
{
    char path[700], line[256], prefix[64];
    snprintf(path, sizeof(path), "%s/.virtpci-sim/vf-net", tree);
    snprintf(prefix, sizeof(prefix), "0000:3b:00.0 %d ", index);
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, size, "%s", line + strlen(prefix));
        }
    fclose(f);
}

static void test_mirroring(const char *tree)
{
    VirtpciHost *host = virtpci_host_open_simulated(tree);
    CHECK(host != NULL, "%s", virtpci_last_error_message());
    if (!host)
        return;
    static const char *two_cells =
        "<domain type='kvm'><name>m</name><os><type arch='x86_64' machine='q35'>hvm</type></os>"
        "<cpu><numa><cell id='0' cpus='0' memory='262144' unit='KiB'/>"
        "<cell id='1' cpus='1' memory='262144' unit='KiB'/></numa></cpu><devices>"
        "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
        "<address domain='0' bus='0xd8' slot='0' function='0'/></source></hostdev>"
        "</devices></domain>";
    VirtpciAssignOptions o;
    memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    o.hotplug_ports = -1;
    o.numa_host = host;
    char *out = NULL;
    CHECK(virtpci_domain_assign_pci_addresses_with_options(two_cells, &o, &out) == 0, "%s",
          virtpci_last_error_message());
    /* The NIC sits on host node 1: behind a pxb-pcie on guest node 1. */
    CHECK(out && strstr(out, "model='pcie-expander-bus'") && strstr(out, "<node>1</node>"),
          "%s", out ? out : "(null)");
    CHECK(out && !strstr(out, "<node>0</node>"), "%s", out ? out : "(null)");
    free(out);
    out = NULL;

    /* An older caller's struct (no numa_host): no mirroring. */
    o.size = offsetof(VirtpciAssignOptions, numa_host);
    CHECK(virtpci_domain_assign_pci_addresses_with_options(two_cells, &o, &out) == 0, "%s",
          virtpci_last_error_message());
    CHECK(out && !strstr(out, "expander"), "%s", out ? out : "(null)");
    free(out);
    out = NULL;

    /* One cell: host node 1 has no guest cell, so a warning names the device. */
    static const char *one_cell =
        "<domain type='kvm'><name>m</name><os><type arch='x86_64' machine='pc'>hvm</type></os>"
        "<cpu><numa><cell id='0' cpus='0' memory='262144' unit='KiB'/></numa></cpu><devices>"
        "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
        "<address domain='0' bus='0xd8' slot='0' function='0'/></source></hostdev>"
        "</devices></domain>";
    o.size = sizeof(o);
    warning[0] = '\0';
    virtpci_set_log_callback(keep_warning, NULL);
    CHECK(virtpci_domain_assign_pci_addresses_with_options(one_cell, &o, &out) == 0, "%s",
          virtpci_last_error_message());
    virtpci_set_log_callback(NULL, NULL);
    CHECK(out && !strstr(out, "expander"), "%s", out ? out : "(null)");
    CHECK(strstr(warning, "host device 0000:d8:00.0") &&
              strstr(warning, "placed without NUMA mirroring"),
          "warning: %s", warning);
    free(out);
    out = NULL;

    /* pseries: the same handle gives libvirt's isolation groups. 3b:00.0 (IOMMU group 21)
     * and d8:00.0 (group 41) each get a PHB of their own; the disk stays on PHB 0. */
    static const char *pseries =
        "<domain type='kvm'><name>p</name><os><type arch='ppc64' machine='pseries'>hvm</type>"
        "</os><devices><disk type='file' device='disk'><source file='/a.img'/>"
        "<target dev='vda' bus='virtio'/></disk>"
        "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
        "<address domain='0' bus='0x3b' slot='0' function='0'/></source></hostdev>"
        "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
        "<address domain='0' bus='0xd8' slot='0' function='0'/></source></hostdev>"
        "<controller type='usb' model='none'/><memballoon model='none'/>"
        "</devices></domain>";
    CHECK(virtpci_domain_assign_pci_addresses_with_options(pseries, &o, &out) == 0, "%s",
          virtpci_last_error_message());
    CHECK(out && count(out, "<model name='spapr-pci-host-bridge'/>") == 3, "%s",
          out ? out : "(null)");
    CHECK(out && strstr(out, "bus='0x3b' slot='0' function='0'/></source>"
                             "<address type='pci' domain='0x0000' bus='0x01' slot='0x01'"),
          "%s", out ? out : "(null)");
    CHECK(out && strstr(out, "bus='0xd8' slot='0' function='0'/></source>"
                             "<address type='pci' domain='0x0000' bus='0x02' slot='0x01'"),
          "%s", out ? out : "(null)");
    free(out);
    virtpci_host_free(host);
}

static void test_vf_net(const char *tree, const char *state)
{
    VirtpciHost *host = virtpci_host_open_simulated(tree);
    VirtpciHostdevManager *mgr = host ? virtpci_hostdev_manager_new(host, state) : NULL;
    CHECK(mgr != NULL, "%s", virtpci_last_error_message());
    if (!mgr) {
        virtpci_host_free(host);
        return;
    }
    char before[128], during[128], after[128];
    vf_net_line(tree, 6, before, sizeof(before));

    /* A PF given as an interface: libvirt's refusal, nothing booked. */
    VirtpciHostdev pf = { { 0, 0x3b, 0, 0 }, 1, 0, NULL };
    VirtpciHostdevNet pf_net = { { 0, 0x3b, 0, 0 }, "52:54:00:aa:bb:cc", -1 };
    CHECK(virtpci_hostdev_prepare_pci_devices_with_net(mgr, "QEMU", "netvm", NULL, &pf, 1, &pf_net,
                                                       1, 0) == -1,
          "PF refused");
    CHECK_STR(virtpci_last_error_message(),
              "unsupported configuration: Interface type hostdev is currently supported on "
              "SR-IOV Virtual Functions only");

    /* VF 6 (3b:02.6) with a MAC and VLAN 42. */
    VirtpciHostdev vf = { { 0, 0x3b, 2, 6 }, 1, 0, NULL };
    VirtpciHostdevNet vf_net = { { 0, 0x3b, 2, 6 }, "52:54:00:aa:bb:cc", 42 };
    CHECK(virtpci_hostdev_prepare_pci_devices_with_net(mgr, "QEMU", "netvm", NULL, &vf, 1, &vf_net,
                                                       1, 0) == 0,
          "%s", virtpci_last_error_message());
    vf_net_line(tree, 6, during, sizeof(during));
    CHECK_STR(during, "52:54:00:aa:bb:cc 42");
    CHECK(virtpci_hostdev_reattach_pci_devices(mgr, "QEMU", "netvm", &vf, 1) == 0, "%s",
          virtpci_last_error_message());
    vf_net_line(tree, 6, after, sizeof(after));
    /* What the PF held before: a VF never set holds the zero MAC and no VLAN. */
    CHECK(strcmp(after, before) == 0 || (before[0] == '\0' &&
                                          strcmp(after, "00:00:00:00:00:00 0") == 0),
          "before \"%s\", after \"%s\"", before, after);

    /* A multicast MAC: libvirt's words, nothing moves. */
    VirtpciHostdevNet multicast = { { 0, 0x3b, 2, 6 }, "01:00:5e:00:00:01", -1 };
    CHECK(virtpci_hostdev_prepare_pci_devices_with_net(mgr, "QEMU", "netvm", NULL, &vf, 1,
                                                       &multicast, 1, 0) == -1,
          "multicast refused");
    CHECK_STR(virtpci_last_error_message(),
              "XML error: expected unicast mac address, found multicast '01:00:5e:00:00:01'");
    char *drv = NULL, *dom = NULL;
    CHECK(virtpci_hostdev_get_owner(mgr, &vf.source, &drv, &dom) == 0 && dom == NULL,
          "nobody owns the VF");
    free(drv);
    free(dom);
    virtpci_hostdev_manager_free(mgr);
    virtpci_host_free(host);
}

static void test_group_fix(const char *tree)
{
    VirtpciHost *host = virtpci_host_open_simulated(tree);
    CHECK(host != NULL, "%s", virtpci_last_error_message());
    if (!host)
        return;
    /* quad-nic: 02:00.0-3 share IOMMU group 6. */
    static const char *one_port =
        "<domain type='kvm'>\n  <name>fix</name>\n  <devices>\n"
        "    <hostdev mode='subsystem' type='pci' managed='yes'>\n"
        "      <source><address domain='0' bus='0x02' slot='0' function='0'/></source>\n"
        "    </hostdev>\n  </devices>\n</domain>\n";
    char *fixed = NULL;
    CHECK(virtpci_domain_add_missing_group_members(host, one_port, 0, &fixed) == 0, "%s",
          virtpci_last_error_message());
    CHECK(fixed && count(fixed, "<address type='unassigned'/>") == 3, "%s",
          fixed ? fixed : "(null)");
    CHECK(fixed && strstr(fixed, "function='0x3'"), "%s", fixed ? fixed : "(null)");
    /* Everything before the additions is kept byte for byte. */
    size_t keep = strlen(one_port) - strlen("  </devices>\n</domain>\n");
    CHECK(fixed && strncmp(fixed, one_port, keep) == 0, "%s", fixed ? fixed : "(null)");
    /* A complete domain comes back unchanged. */
    char *again = NULL;
    if (fixed) {
        CHECK(virtpci_domain_add_missing_group_members(host, fixed, 0, &again) == 0, "%s",
              virtpci_last_error_message());
        CHECK(again && strcmp(again, fixed) == 0, "%s", again ? again : "(null)");
    }
    free(again);
    free(fixed);
    virtpci_host_free(host);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s VIRTPCI_CLI FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    char base[] = "/tmp/virtpci-c-numa-net-XXXXXX";
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 2;
    }
    char sriov[600], quad[600], state[600], cmd[2048];
    snprintf(sriov, sizeof(sriov), "%s/sriov", base);
    snprintf(quad, sizeof(quad), "%s/quad", base);
    snprintf(state, sizeof(state), "%s/state", base);
    snprintf(cmd, sizeof(cmd), "'%s' host materialize '%s/sriov-server.json' '%s' && "
                               "'%s' host materialize '%s/quad-nic.json' '%s'",
             argv[1], argv[2], sriov, argv[1], argv[2], quad);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot materialize the fixtures: %s\n", cmd);
        return 2;
    }
    test_mirroring(sriov);
    test_vf_net(sriov, state);
    test_group_fix(quad);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", base);
    return check_exit_status("test-numa-net");
}
