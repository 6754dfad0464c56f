#!/usr/bin/env python3
"""meson install step for what cargo built: the library under its versioned file name with the
SONAME and development links, the CLI, and the CLI's man pages and bash completion (which the
CLI generates from its own option definitions)."""
import os
import shutil
import subprocess
import sys


def main():
    lib, cli, libdir, bindir, version, soversion, mandir, datadir = sys.argv[1:9]
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
    man1 = target(os.path.join(mandir, "man1"))
    completions = target(os.path.join(datadir, "bash-completion", "completions"))
    subprocess.run([cli, "generate-docs", "--man-dir", man1, "--bash-completion-dir", completions],
                   check=True)
    print("Installed %s/%s (+ links), %s/virtpci, man pages in %s, bash completion in %s"
          % (lib_dir, real, target(bindir), man1, completions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
