/* The host API: IOMMU group number, iteration with early stop, group address lists, the
 * simulated host, fault injection arguments, bad input, and one handle shared by threads.
 *
 * Usage: test-host VIRTPCI_CLI FIXTURE.json PYTHON GEN_SYSFS.py
 * A bundled fixture is materialized with `virtpci host materialize`, and a second tree is made by
 * the independent generator tests/gen_sysfs.py; both live in a temporary directory removed at
 * the end. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "virtpci.h"

extern char **environ;

static int run(char *const argv[])
{
    pid_t pid;
    int status;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static VirtpciPciAddress A(unsigned d, unsigned b, unsigned s, unsigned f)
{
    VirtpciPciAddress a = {d, b, s, f};
    return a;
}

struct collect {
    VirtpciPciAddress seen[32];
    int n;
    int stop_at; /* return 42 when this many were seen; 0 = never */
};

static int collect_cb(const VirtpciPciAddress *addr, void *opaque)
{
    struct collect *c = opaque;
    if (c->n < 32)
        c->seen[c->n] = *addr;
    c->n++;
    return (c->stop_at && c->n == c->stop_at) ? 42 : 0;
}

static int same(VirtpciPciAddress a, VirtpciPciAddress b)
{
    return a.domain == b.domain && a.bus == b.bus && a.slot == b.slot && a.function == b.function;
}

static void test_bundled_tree(const char *root)
{
    VirtpciHost *host = virtpci_host_open(root);
    CHECK(host != NULL, "open %s: %s", root, virtpci_last_error_message());
    if (!host)
        return;

    VirtpciPciAddress nic2 = A(0, 2, 0, 2);
    CHECK(virtpci_pci_address_get_iommu_group_num(host, &nic2) == 6, "group of 02:00.2: %s",
          virtpci_last_error_message());
    VirtpciPciAddress hb = A(0, 0, 0, 0);
    CHECK(virtpci_pci_address_get_iommu_group_num(host, &hb) == 0, "group of 00:00.0");

    /* The whole group, orig included, in address order. */
    struct collect c = {0};
    CHECK(virtpci_pci_address_iommu_group_iterate(host, &nic2, collect_cb, &c) == 0, "iterate");
    CHECK(c.n == 4, "4 members, got %d", c.n);
    for (int f = 0; f < 4 && f < c.n; f++)
        CHECK(same(c.seen[f], A(0, 2, 0, (unsigned)f)), "member %d", f);

    /* A callback that stops early: its value comes back, no more calls. */
    struct collect stop = {.stop_at = 2};
    CHECK(virtpci_pci_address_iommu_group_iterate(host, &nic2, collect_cb, &stop) == 42, "42");
    CHECK(stop.n == 2, "stopped after 2 calls, made %d", stop.n);
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_OK, "no error set by an early stop");

    VirtpciPciAddress *list = NULL;
    size_t n = 0;
    CHECK(virtpci_pci_address_get_iommu_group_addresses(host, &nic2, &list, &n) == 0, "list");
    CHECK(n == 4 && list != NULL, "n=%zu", n);
    if (list && n == 4)
        CHECK(same(list[0], A(0, 2, 0, 0)) && same(list[3], A(0, 2, 0, 3)), "list order");
    virtpci_pci_address_list_free(list);
    virtpci_pci_address_list_free(NULL);

    char *drv = NULL;
    CHECK(virtpci_host_get_driver(host, &nic2, &drv) == 0, "driver");
    CHECK_STR(drv, "tg3");
    free(drv);
    VirtpciPciAddress lpc = A(0, 0, 0x1f, 0);
    drv = (char *)"unchanged";
    CHECK(virtpci_host_get_driver(host, &lpc, &drv) == 0 && drv == NULL, "unbound: NULL");

    /* Bad input. */
    VirtpciPciAddress missing = A(0, 9, 0, 0);
    CHECK(virtpci_pci_address_get_iommu_group_num(host, &missing) == -1, "missing device");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_DEVICE_MISSING, "code %d",
          virtpci_last_error_code());
    CHECK(strstr(virtpci_last_error_message(), "0000:09:00.0") != NULL, "%s",
          virtpci_last_error_message());
    VirtpciPciAddress bad = A(0, 0, 0x20, 0);
    CHECK(virtpci_pci_address_get_iommu_group_num(host, &bad) == -1, "slot 0x20");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "invalid arg");
    CHECK(virtpci_pci_address_get_iommu_group_num(NULL, &nic2) == -1, "NULL host");
    CHECK(strstr(virtpci_last_error_message(), "host in") != NULL, "%s",
          virtpci_last_error_message());
    CHECK(virtpci_pci_address_get_iommu_group_num(host, NULL) == -1, "NULL addr");
    CHECK(virtpci_pci_address_iommu_group_iterate(host, &nic2, NULL, NULL) == -1, "NULL cb");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "NULL cb code");
    CHECK(virtpci_pci_address_iommu_group_iterate(host, &missing, collect_cb, &c) == -1, "iter");
    list = (VirtpciPciAddress *)&c;
    n = 99;
    CHECK(virtpci_pci_address_get_iommu_group_addresses(host, &missing, &list, &n) == -1, "list");
    CHECK(list == (VirtpciPciAddress *)&c && n == 99, "outputs untouched on error");
    CHECK(virtpci_pci_address_get_iommu_group_addresses(host, &nic2, NULL, &n) == -1, "NULL out");
    CHECK(virtpci_host_inject_fault(host, "bogus", 1, EIO) == -1, "unknown kind");
    CHECK(virtpci_host_inject_fault(host, "bind", 0, EIO) == -1, "nth 0");
    CHECK(virtpci_host_inject_fault(host, "bind", 1, EIO) == 0, "valid fault");
    CHECK(virtpci_host_inject_fault(host, NULL, 3, EPERM) == 0, "any kind");
    virtpci_host_free(host);
}

static void test_generated_tree(const char *root)
{
    VirtpciHost *host = virtpci_host_open(root);
    CHECK(host != NULL, "open generated: %s", virtpci_last_error_message());
    if (!host)
        return;
    /* Conventional PCI behind the PCIe-to-PCI bridge: the bridge shares the group. */
    VirtpciPciAddress rtl = A(0, 7, 1, 0);
    CHECK(virtpci_pci_address_get_iommu_group_num(host, &rtl) == 9, "group 9");
    struct collect c = {0};
    CHECK(virtpci_pci_address_iommu_group_iterate(host, &rtl, collect_cb, &c) == 0, "iterate");
    CHECK(c.n == 4, "4 members, got %d", c.n);
    if (c.n == 4) {
        CHECK(same(c.seen[0], A(0, 6, 0, 0)), "bridge first");
        CHECK(same(c.seen[1], A(0, 7, 0, 0)), "e1000");
        CHECK(same(c.seen[2], A(0, 7, 1, 0)), "rtl8139");
        CHECK(same(c.seen[3], A(0, 7, 2, 0)), "emu10k1");
    }
    /* GPU + audio behind the root port without ACS. */
    VirtpciPciAddress gpu = A(0, 1, 0, 0);
    struct collect g = {0};
    CHECK(virtpci_pci_address_iommu_group_iterate(host, &gpu, collect_cb, &g) == 0, "gpu");
    CHECK(g.n == 3 && same(g.seen[0], A(0, 0, 1, 0)), "port, GPU, audio: %d", g.n);
    /* No group: -2, no callback, empty list. */
    VirtpciPciAddress vmd = A(1, 1, 0, 0);
    CHECK(virtpci_pci_address_get_iommu_group_num(host, &vmd) == -2, "no group");
    struct collect none = {0};
    CHECK(virtpci_pci_address_iommu_group_iterate(host, &vmd, collect_cb, &none) == 0, "0");
    CHECK(none.n == 0, "no callback");
    VirtpciPciAddress *list = (VirtpciPciAddress *)&none;
    size_t n = 7;
    CHECK(virtpci_pci_address_get_iommu_group_addresses(host, &vmd, &list, &n) == 0, "empty");
    CHECK(list == NULL && n == 0, "NULL, 0");
    virtpci_host_free(host);
}

static void test_simulated(const char *root)
{
    CHECK(virtpci_host_open_simulated(NULL) == NULL, "NULL root");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "code");
    VirtpciHost *host = virtpci_host_open_simulated(root);
    CHECK(host != NULL, "open simulated: %s", virtpci_last_error_message());
    if (!host)
        return;
    VirtpciPciAddress nic = A(0, 2, 0, 1);
    char *drv = NULL;
    CHECK(virtpci_host_get_driver(host, &nic, &drv) == 0, "driver");
    CHECK_STR(drv, "tg3");
    free(drv);
    CHECK(virtpci_pci_address_get_iommu_group_num(host, &nic) == 6, "group");
    virtpci_host_free(host);
}

static void touch(const char *root, const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "create %s", path);
    if (f)
        fclose(f);
}

/* Modules, the VFIO device cdev and reset methods on a simulated copy of the fixture whose
 * kernel has iommufd and VFIO device cdevs. */
static void test_vfio_and_modules(const char *root, const char *state)
{
    char path[512];
    snprintf(path, sizeof path, "mkdir -p %s/.virtpci-sim/dev/vfio/devices", root);
    CHECK(system(path) == 0, "mkdir");
    touch(root, ".virtpci-sim/dev/iommu");
    VirtpciHost *host = virtpci_host_open_simulated(root);
    CHECK(host != NULL, "open simulated: %s", virtpci_last_error_message());
    if (!host)
        return;
    VirtpciPciAddress nic = A(0, 2, 0, 1);
    CHECK(virtpci_host_set_modules_dir(host, "/nonexistent/lib/modules/0.0") == 0, "modules dir");
    CHECK(virtpci_host_set_modules_dir(host, NULL) == 0, "default modules dir");
    CHECK(virtpci_host_set_module_loading(host, 0) == 0, "forbid loading");

    /* Not on VFIO yet: no cdev. */
    char *dir = NULL, *node = NULL;
    CHECK(virtpci_host_get_vfio_cdev(host, &nic, &dir, &node) < 0, "no cdev before detach");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_OPERATION_FAILED, "operation failed");

    VirtpciHostdevManager *mgr = virtpci_hostdev_manager_new(host, state);
    CHECK(mgr != NULL, "manager: %s", virtpci_last_error_message());
    CHECK(virtpci_hostdev_pci_node_device_detach(mgr, &nic, NULL, 0) == 0, "detach: %s",
          virtpci_last_error_message());
    CHECK(virtpci_host_get_vfio_cdev(host, &nic, &dir, &node) == 0, "cdev: %s",
          virtpci_last_error_message());
    snprintf(path, sizeof path, "%s/.virtpci-sim/dev/vfio/devices/vfio", root);
    CHECK(node != NULL && strncmp(node, path, strlen(path)) == 0, "node %s", node ? node : "(null)");
    CHECK(dir != NULL && strstr(dir, "/vfio-dev/vfio") != NULL, "dir %s", dir ? dir : "(null)");
    free(dir);
    free(node);
    node = NULL;
    CHECK(virtpci_host_get_vfio_cdev(host, &nic, NULL, &node) == 0, "node only");
    free(node);
    CHECK(virtpci_hostdev_pci_node_device_reattach(mgr, &nic) == 0, "reattach: %s",
          virtpci_last_error_message());
    virtpci_hostdev_manager_free(mgr);

    /* The NIC offers "pm bus": choose bus, refuse flr, back to the default. */
    CHECK(virtpci_host_set_reset_methods(host, &nic, "bus") == 0, "bus: %s",
          virtpci_last_error_message());
    CHECK(virtpci_host_set_reset_methods(host, &nic, "flr") < 0, "flr is not offered");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_INVALID_ARG, "invalid arg");
    CHECK(strstr(virtpci_last_error_message(), "it offers: bus") != NULL, "%s",
          virtpci_last_error_message());
    CHECK(virtpci_host_set_reset_methods(host, &nic, NULL) == 0, "default");
    CHECK(virtpci_host_set_reset_methods(host, &nic, "bus pm") == 0, "both, reordered: %s",
          virtpci_last_error_message());
    virtpci_host_free(host);
}

struct thread_arg {
    VirtpciHost *host;
    int failures;
};

static void *thread_main(void *p)
{
    struct thread_arg *t = p;
    VirtpciPciAddress nic = A(0, 2, 0, 3);
    for (int i = 0; i < 200; i++) {
        struct collect c = {0};
        if (virtpci_pci_address_iommu_group_iterate(t->host, &nic, collect_cb, &c) != 0 ||
            c.n != 4)
            t->failures++;
        VirtpciPciAddress *list = NULL;
        size_t n = 0;
        if (virtpci_pci_address_get_iommu_group_addresses(t->host, &nic, &list, &n) != 0 || n != 4)
            t->failures++;
        virtpci_pci_address_list_free(list);
    }
    return NULL;
}

static void test_threads(const char *root)
{
    VirtpciHost *host = virtpci_host_open(root);
    CHECK(host != NULL, "open");
    if (!host)
        return;
    pthread_t th[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i].host = host;
        args[i].failures = 0;
        CHECK(pthread_create(&th[i], NULL, thread_main, &args[i]) == 0, "thread");
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].failures == 0, "thread %d failures %d", i, args[i].failures);
    }
    virtpci_host_free(host);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s VIRTPCI_CLI FIXTURE.json PYTHON GEN_SYSFS.py\n", argv[0]);
        return 2;
    }
    char tmp[] = "/tmp/virtpci-ctest-host-XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 2;
    }
    char bundled[256], generated[256];
    snprintf(bundled, sizeof bundled, "%s/bundled", tmp);
    snprintf(generated, sizeof generated, "%s/generated", tmp);

    char *materialize[] = {argv[1], "host", "materialize", argv[2], bundled, NULL};
    CHECK(run(materialize) == 0, "virtpci host materialize");
    char *generate[] = {argv[3], argv[4], generated, NULL};
    CHECK(run(generate) == 0, "gen_sysfs.py");

    CHECK(virtpci_host_open("/nonexistent/virtpci-sysfs") == NULL, "bad root");
    CHECK(virtpci_last_error_code() == VIRTPCI_ERR_SYSTEM_ERROR, "system error");
    virtpci_host_free(NULL);

    test_bundled_tree(bundled);
    test_generated_tree(generated);
    test_simulated(bundled);
    test_threads(bundled);
    char state[300];
    snprintf(state, sizeof state, "%s/state", tmp);
    test_vfio_and_modules(bundled, state);

    char *cleanup[] = {"rm", "-rf", tmp, NULL};
    run(cleanup);
    return check_exit_status("test-host");
}
