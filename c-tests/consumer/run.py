#!/usr/bin/env python3
"""Install the build into a temporary DESTDIR, then compile and run c-tests/consumer/consumer.c
exactly as an outside project would: with `pkg-config --cflags --libs virtpci`, and via dlopen."""
import os
import shutil
import subprocess
import sys
import tempfile


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def main():
    meson, build_dir, source, prefix, libdir = sys.argv[1:6]
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory(prefix="virtpci-consumer-") as dest:
        run([meson, "install", "-C", build_dir, "--no-rebuild", "--quiet", "--destdir", dest])
        lib_dir = dest + os.path.join(prefix, libdir)
        env = dict(os.environ,
                   PKG_CONFIG_LIBDIR=os.path.join(lib_dir, "pkgconfig"),
                   PKG_CONFIG_SYSROOT_DIR=dest)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "virtpci"], env=env,
                               check=True, capture_output=True, text=True).stdout.split()
        print("pkg-config:", " ".join(flags))
        for name in ("libvirtpci.so", "libvirtpci.so.0"):
            if not os.path.islink(os.path.join(lib_dir, name)):
                print("missing link", name)
                return 1
        exe = os.path.join(dest, "consumer")
        run([cc, "-std=c11", "-Wall", "-Werror", source, "-o", exe] + flags)
        exe_dl = os.path.join(dest, "consumer-dlopen")
        run([cc, "-std=c11", "-Wall", "-Werror", "-DCONSUMER_DLOPEN", source, "-o", exe_dl]
            + [f for f in flags if f.startswith("-I")] + ["-ldl"])
        run_env = dict(os.environ, LD_LIBRARY_PATH=lib_dir)
        ldd = subprocess.run(["ldd", exe], env=run_env, capture_output=True, text=True).stdout
        if "libvirtpci.so.0 => " + lib_dir not in ldd:
            print("consumer is not linked against the installed libvirtpci.so.0:\n" + ldd)
            return 1
        run([exe], env=run_env)
        run([exe_dl], env=run_env)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as e:
        print("failed:", e)
        sys.exit(1)
