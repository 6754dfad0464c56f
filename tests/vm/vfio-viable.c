/* vfio-viable GROUP [ADDRESS...]
 *
 * Asks VFIO itself, independently of virtpci, whether the IOMMU group GROUP can be used:
 * opens /dev/vfio/GROUP and reads VFIO_GROUP_GET_STATUS. When the group is viable it goes
 * on as a hypervisor would: puts the group in a container, selects the type 1 IOMMU, and
 * opens each ADDRESS given through VFIO_GROUP_GET_DEVICE_FD, reading its vendor and device
 * ids from the config region.
 *
 * Prints one line per step. Exit status: 0 viable (and every step worked), 1 not viable,
 * 2 any error (no such group, ioctl failure).
 *
 * Built static: it runs in the test guest, whose initramfs has no C library of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int fail(const char *what)
{
    fprintf(stderr, "vfio-viable: %s: %s\n", what, strerror(errno));
    return 2;
}

int main(int argc, char **argv)
{
    char path[64];
    struct vfio_group_status status;
    int container, group, i;

    if (argc < 2) {
        fprintf(stderr, "usage: vfio-viable GROUP [ADDRESS...]\n");
        return 2;
    }
    snprintf(path, sizeof path, "/dev/vfio/%s", argv[1]);
    group = open(path, O_RDWR | O_CLOEXEC);
    if (group < 0)
        return fail(path);

    memset(&status, 0, sizeof status);
    status.argsz = sizeof status;
    if (ioctl(group, VFIO_GROUP_GET_STATUS, &status) < 0)
        return fail("VFIO_GROUP_GET_STATUS");
    if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        printf("vfio-viable: group %s is not viable (flags 0x%x)\n", argv[1], status.flags);
        return 1;
    }
    printf("vfio-viable: group %s is viable\n", argv[1]);

    container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
    if (container < 0)
        return fail("/dev/vfio/vfio");
    if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
        fprintf(stderr, "vfio-viable: unexpected VFIO API version\n");
        return 2;
    }
    if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) < 0)
        return fail("VFIO_GROUP_SET_CONTAINER");
    if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0 &&
        ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) < 0)
        return fail("VFIO_SET_IOMMU");
    printf("vfio-viable: group %s attached to a type 1 container\n", argv[1]);

    for (i = 2; i < argc; i++) {
        struct vfio_region_info cfg;
        uint16_t ids[2];
        int dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, argv[i]);

        if (dev < 0)
            return fail(argv[i]);
        memset(&cfg, 0, sizeof cfg);
        cfg.argsz = sizeof cfg;
        cfg.index = VFIO_PCI_CONFIG_REGION_INDEX;
        if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0)
            return fail("VFIO_DEVICE_GET_REGION_INFO");
        if (pread(dev, ids, sizeof ids, (off_t)cfg.offset) != (ssize_t)sizeof ids)
            return fail("reading config space through VFIO");
        printf("vfio-viable: device %s opened through VFIO, ids %04x:%04x\n", argv[i], ids[0],
               ids[1]);
        close(dev);
    }
    close(group);
    close(container);
    return 0;
}
