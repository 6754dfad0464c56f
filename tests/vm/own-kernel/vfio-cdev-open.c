/* vfio-cdev-open -- open a VFIO device cdev the way a VMM does with iommufd, on the guest
 * kernel of tests/vm/own-kernel (static; built against that kernel's own UAPI headers).
 *
 *   vfio-cdev-open /dev/vfio/devices/vfioN VENDOR DEVICE
 *
 * Opens /dev/iommu and the cdev, binds the device to the iommufd (VFIO_DEVICE_BIND_IOMMUFD),
 * allocates an IO address space and attaches the device to it (VFIO_DEVICE_ATTACH_IOMMUFD_PT),
 * then reads the vendor and device IDs from the config-space region through the device fd
 * and compares them with VENDOR and DEVICE (hex). Exit 0 when every step worked, 1 naming the
 * step that failed. What it proves: the node virtpci reported is the device's, and the kernel
 * lets a user of iommufd open it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int fail(const char *step)
{
    fprintf(stderr, "vfio-cdev-open: %s: %s\n", step, strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: vfio-cdev-open /dev/vfio/devices/vfioN VENDOR DEVICE\n");
        return 2;
    }
    unsigned long want_vendor = strtoul(argv[2], NULL, 16);
    unsigned long want_device = strtoul(argv[3], NULL, 16);

    int iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
    if (iommufd < 0)
        return fail("open /dev/iommu");
    int dev = open(argv[1], O_RDWR | O_CLOEXEC);
    if (dev < 0)
        return fail(argv[1]);

    struct vfio_device_bind_iommufd bind = {
        .argsz = sizeof(bind),
        .iommufd = iommufd,
    };
    if (ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0)
        return fail("VFIO_DEVICE_BIND_IOMMUFD");

    struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
    if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &ioas) < 0)
        return fail("IOMMU_IOAS_ALLOC");
    struct vfio_device_attach_iommufd_pt attach = {
        .argsz = sizeof(attach),
        .pt_id = ioas.out_ioas_id,
    };
    if (ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) < 0)
        return fail("VFIO_DEVICE_ATTACH_IOMMUFD_PT");

    struct vfio_device_info info = { .argsz = sizeof(info) };
    if (ioctl(dev, VFIO_DEVICE_GET_INFO, &info) < 0)
        return fail("VFIO_DEVICE_GET_INFO");
    if (!(info.flags & VFIO_DEVICE_FLAGS_PCI)) {
        fprintf(stderr, "vfio-cdev-open: %s is not a PCI device (flags 0x%x)\n", argv[1],
                info.flags);
        return 1;
    }
    struct vfio_region_info reg = {
        .argsz = sizeof(reg),
        .index = VFIO_PCI_CONFIG_REGION_INDEX,
    };
    if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &reg) < 0)
        return fail("VFIO_DEVICE_GET_REGION_INFO (config space)");
    uint16_t ids[2];
    if (pread(dev, ids, sizeof(ids), (off_t)reg.offset) != (ssize_t)sizeof(ids))
        return fail("reading config space");
    printf("%s: bound to iommufd as device %u, attached to IOAS %u, %u regions, %u irqs, "
           "config space %04x:%04x\n",
           argv[1], bind.out_devid, ioas.out_ioas_id, info.num_regions, info.num_irqs,
           ids[0], ids[1]);
    if (ids[0] != want_vendor || ids[1] != want_device) {
        fprintf(stderr, "vfio-cdev-open: config space says %04x:%04x, expected %04lx:%04lx\n",
                ids[0], ids[1], want_vendor, want_device);
        return 1;
    }
    close(dev);
    close(iommufd);
    return 0;
}
