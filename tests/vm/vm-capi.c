/* vm-capi: the C API of libvirtpci on a real kernel, driven by tests/vm/guest-checks.
 *
 *   vm-capi groups
 *       For every PCI device (in address order): "ADDRESS group=N members=A,B,..." from
 *       virtpci_pci_address_get_iommu_group_num() and virtpci_pci_address_iommu_group_iterate(),
 *       or "ADDRESS group=none".
 *   vm-capi prepare STATE_DIR DRIVER DOMAIN [u:]ADDRESS...
 *   vm-capi reattach STATE_DIR DRIVER DOMAIN [u:]ADDRESS...
 *       virtpci_hostdev_prepare_pci_devices() / virtpci_hostdev_reattach_pci_devices() with
 *       managed VFIO hostdevs; "u:" marks one <address type='unassigned'/>.
 *   vm-capi prepare-xml STATE_DIR DRIVER FILE
 *   vm-capi reattach-xml STATE_DIR DRIVER FILE
 *       virtpci_hostdev_prepare_domain() / virtpci_hostdev_reattach_domain().
 *   vm-capi owner STATE_DIR ADDRESS
 *       virtpci_hostdev_get_owner(): "active DRIVER DOMAIN", "inactive" or "none".
 *
 * Errors are printed as "error: MESSAGE (code N)" on standard error; exit status 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtpci.h"

static int fail(const char *what)
{
    fprintf(stderr, "error: %s: %s (code %d)\n", what, virtpci_last_error_message(),
            virtpci_last_error_code());
    return 1;
}

static int parse_address(const char *text, VirtpciPciAddress *addr)
{
    char tail;

    if (sscanf(text, "%x:%x:%x.%x%c", &addr->domain, &addr->bus, &addr->slot, &addr->function,
               &tail) != 4) {
        fprintf(stderr, "error: bad PCI address '%s'\n", text);
        return -1;
    }
    return 0;
}

static void format_address(const VirtpciPciAddress *a, char *buf, size_t size)
{
    snprintf(buf, size, "%04x:%02x:%02x.%x", a->domain, a->bus, a->slot, a->function);
}

static int print_member(const VirtpciPciAddress *addr, void *opaque)
{
    int *first = opaque;
    char text[32];

    format_address(addr, text, sizeof text);
    printf("%s%s", *first ? "" : ",", text);
    *first = 0;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_groups(void)
{
    VirtpciHost *host = virtpci_host_open(NULL);
    DIR *dir;
    struct dirent *e;
    char *names[1024];
    size_t n = 0, i;
    int rc = 0;

    if (!host)
        return fail("virtpci_host_open");
    dir = opendir("/sys/bus/pci/devices");
    if (!dir) {
        perror("/sys/bus/pci/devices");
        return 1;
    }
    while ((e = readdir(dir)) != NULL && n < sizeof names / sizeof names[0])
        if (e->d_name[0] != '.')
            names[n++] = strdup(e->d_name);
    closedir(dir);
    qsort(names, n, sizeof names[0], by_name);

    for (i = 0; i < n; i++) {
        VirtpciPciAddress addr;
        int group, first = 1;

        if (parse_address(names[i], &addr) < 0) {
            rc = 1;
            continue;
        }
        group = virtpci_pci_address_get_iommu_group_num(host, &addr);
        if (group == -1) {
            rc = fail(names[i]);
            continue;
        }
        if (group == -2) {
            printf("%s group=none\n", names[i]);
            continue;
        }
        printf("%s group=%d members=", names[i], group);
        if (virtpci_pci_address_iommu_group_iterate(host, &addr, print_member, &first) != 0) {
            printf("\n");
            rc = fail(names[i]);
            continue;
        }
        printf("\n");
    }
    for (i = 0; i < n; i++)
        free(names[i]);
    virtpci_host_free(host);
    return rc;
}

static VirtpciHostdevManager *open_manager(const char *state_dir)
{
    VirtpciHost *host = virtpci_host_open(NULL);
    VirtpciHostdevManager *mgr;

    if (!host) {
        fail("virtpci_host_open");
        return NULL;
    }
    /* VIRTPCI_VM_NO_MODULE_LOADING=1: the daemon forbids loading modules. */
    const char *no_load = getenv("VIRTPCI_VM_NO_MODULE_LOADING");
    if (no_load && strcmp(no_load, "1") == 0 && virtpci_host_set_module_loading(host, 0) < 0) {
        fail("virtpci_host_set_module_loading");
        virtpci_host_free(host);
        return NULL;
    }
    mgr = virtpci_hostdev_manager_new(host, state_dir);
    virtpci_host_free(host); /* the manager keeps its own reference */
    if (!mgr)
        fail("virtpci_hostdev_manager_new");
    return mgr;
}

static int cmd_devices(int prepare, char **argv, int argc)
{
    const char *state_dir = argv[0], *drv = argv[1], *dom = argv[2];
    VirtpciHostdev *devs;
    VirtpciHostdevManager *mgr;
    int n = argc - 3, i, rc;

    devs = calloc((size_t)n, sizeof *devs);
    if (!devs)
        return 1;
    for (i = 0; i < n; i++) {
        const char *text = argv[3 + i];

        if (strncmp(text, "u:", 2) == 0) {
            devs[i].unassigned = 1;
            text += 2;
        }
        if (parse_address(text, &devs[i].source) < 0)
            return 1;
        devs[i].managed = 1;
        devs[i].driver = NULL; /* vfio-pci */
    }
    mgr = open_manager(state_dir);
    if (!mgr)
        return 1;
    if (prepare)
        rc = virtpci_hostdev_prepare_pci_devices(mgr, drv, dom, NULL, devs, (size_t)n, 0);
    else
        rc = virtpci_hostdev_reattach_pci_devices(mgr, drv, dom, devs, (size_t)n);
    if (rc != 0)
        rc = fail(prepare ? "virtpci_hostdev_prepare_pci_devices"
                          : "virtpci_hostdev_reattach_pci_devices");
    virtpci_hostdev_manager_free(mgr);
    free(devs);
    return rc;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long size;

    if (!f) {
        perror(path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)size + 1);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static int cmd_xml(int prepare, const char *state_dir, const char *drv, const char *file)
{
    char *xml = read_file(file);
    VirtpciHostdevManager *mgr;
    int rc;

    if (!xml)
        return 1;
    mgr = open_manager(state_dir);
    if (!mgr)
        return 1;
    if (prepare)
        rc = virtpci_hostdev_prepare_domain(mgr, drv, xml, 0);
    else
        rc = virtpci_hostdev_reattach_domain(mgr, drv, xml);
    if (rc != 0)
        rc = fail(prepare ? "virtpci_hostdev_prepare_domain" : "virtpci_hostdev_reattach_domain");
    virtpci_hostdev_manager_free(mgr);
    free(xml);
    return rc;
}

static int cmd_owner(const char *state_dir, const char *text)
{
    VirtpciPciAddress addr;
    VirtpciHostdevManager *mgr;
    char *drv = NULL, *dom = NULL;
    int rc;

    if (parse_address(text, &addr) < 0)
        return 1;
    mgr = open_manager(state_dir);
    if (!mgr)
        return 1;
    rc = virtpci_hostdev_get_owner(mgr, &addr, &drv, &dom);
    if (rc == 1)
        printf("active %s %s\n", drv, dom);
    else if (rc == 2)
        printf("inactive\n");
    else if (rc == 0)
        printf("none\n");
    virtpci_string_free(drv);
    virtpci_string_free(dom);
    virtpci_hostdev_manager_free(mgr);
    return rc < 0 ? fail("virtpci_hostdev_get_owner") : 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";

    if (strcmp(cmd, "groups") == 0 && argc == 2)
        return cmd_groups();
    if ((strcmp(cmd, "prepare") == 0 || strcmp(cmd, "reattach") == 0) && argc >= 6)
        return cmd_devices(strcmp(cmd, "prepare") == 0, argv + 2, argc - 2);
    if ((strcmp(cmd, "prepare-xml") == 0 || strcmp(cmd, "reattach-xml") == 0) && argc == 5)
        return cmd_xml(strcmp(cmd, "prepare-xml") == 0, argv[2], argv[3], argv[4]);
    if (strcmp(cmd, "owner") == 0 && argc == 4)
        return cmd_owner(argv[2], argv[3]);
    fprintf(stderr, "usage: vm-capi groups | prepare|reattach STATE DRIVER DOMAIN [u:]ADDR... |\n"
                    "       prepare-xml|reattach-xml STATE DRIVER FILE | owner STATE ADDR\n");
    return 2;
}
