#!/usr/bin/env python3
"""Install the build into a temporary DESTDIR, then compile and run c-tests/consumer/consumer.c
exactly as an outside project would: with `pkg-config --cflags --libs virtpci`, and via dlopen.
Also check the installed man pages (`man -l` renders them, when man is there) and the bash
completion (bash parses it, and it completes the subcommands)."""
import os
import shutil
import subprocess
import sys
import tempfile


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def main():
    meson, build_dir, source, prefix, libdir, mandir, datadir = sys.argv[1:8]
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
        return check_docs(dest + os.path.join(prefix, mandir, "man1"),
                          dest + os.path.join(prefix, datadir, "bash-completion", "completions"))
    return 0


def check_docs(man1, completions):
    for page in ("virtpci.1", "virtpci-check.1", "virtpci-nodedev-detach.1"):
        path = os.path.join(man1, page)
        with open(path) as f:
            if ".TH " not in f.read():
                print("not a man page:", path)
                return 1
        if shutil.which("man"):
            text = subprocess.run(["man", "-l", path], capture_output=True, text=True,
                                  env=dict(os.environ, MANPAGER="cat", MANWIDTH="80"),
                                  check=True).stdout
            if "virtpci" not in text:
                print("man -l %s shows no virtpci:\n%s" % (path, text))
                return 1
    script = os.path.join(completions, "virtpci")
    probe = ('source %s; COMP_WORDS=(virtpci nodedev-); COMP_CWORD=1; _virtpci virtpci nodedev- virtpci;'
             ' printf "%%s\\n" "${COMPREPLY[@]}"' % script)
    got = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout
    if "nodedev-detach" not in got.split():
        print("bash completion of 'virtpci nodedev-' gave:", got)
        return 1
    print("man pages in %s and bash completion %s: ok" % (man1, script))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as e:
        print("failed:", e)
        sys.exit(1)
