#!/usr/bin/env python3
"""meson install step for what cargo built: the library under its versioned file name with the
SONAME and development links, and the CLI."""
import os
import shutil
import sys


def main():
    lib, cli, libdir, bindir, version, soversion = sys.argv[1:7]
    destdir = os.environ.get("DESTDIR", "")
    prefix = os.environ["MESON_INSTALL_PREFIX"]

    def target(sub):
        path = sub if os.path.isabs(sub) else os.path.join(prefix, sub)
        full = destdir + path if destdir else path
        os.makedirs(full, exist_ok=True)
        return full

    lib_dir = target(libdir)
    real = "libvirtpci.so." + version
    shutil.copy2(lib, os.path.join(lib_dir, real))
    for name, points_to in (("libvirtpci.so." + soversion, real),
                            ("libvirtpci.so", "libvirtpci.so." + soversion)):
        path = os.path.join(lib_dir, name)
        if os.path.lexists(path):
            os.remove(path)
        os.symlink(points_to, path)
    shutil.copy2(cli, os.path.join(target(bindir), "virtpci"))
    print("Installed %s/%s (+ links) and %s/virtpci" % (lib_dir, real, target(bindir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
