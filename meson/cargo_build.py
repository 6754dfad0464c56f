#!/usr/bin/env python3
"""Build the virtpci cdylib and CLI with cargo and copy them into meson's build directory.

Files are copied only when they changed, so meson does not relink the C tests needlessly. The
SONAME link (libvirtpci.so.0 -> libvirtpci.so) is made beside the library so that test programs
linked in the build tree find it at run time.
"""
import argparse
import filecmp
import os
import shutil
import subprocess
import sys


def copy_if_changed(src, dst):
    if not os.path.exists(dst) or not filecmp.cmp(src, dst, shallow=False):
        shutil.copy2(src, dst + ".tmp")
        os.replace(dst + ".tmp", dst)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cargo", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--target-dir", required=True)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--soname", required=True)
    ap.add_argument("--out-dir", required=True)
    a = ap.parse_args()
    cmd = [a.cargo, "build", "--manifest-path", a.manifest, "--target-dir", a.target_dir,
           "--profile", a.profile, "--locked", "-p", "virtpci", "--lib", "--bin", "virtpci"]
    if subprocess.call(cmd) != 0:
        return 1
    profile_dir = "debug" if a.profile == "dev" else a.profile
    built = os.path.join(a.target_dir, profile_dir)
    copy_if_changed(os.path.join(built, "libvirtpci.so"), os.path.join(a.out_dir, "libvirtpci.so"))
    copy_if_changed(os.path.join(built, "virtpci"), os.path.join(a.out_dir, "virtpci"))
    link = os.path.join(a.out_dir, a.soname)
    if not os.path.islink(link):
        if os.path.lexists(link):
            os.remove(link)
        os.symlink("libvirtpci.so", link)
    return 0


if __name__ == "__main__":
    sys.exit(main())
