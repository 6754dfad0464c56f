#!/usr/bin/env python3
"""The library exports exactly the symbols of the committed list, each declared in the header,
and carries the SONAME libvirtpci.so.0 and the NODELETE flag."""
import re
import subprocess
import sys


def main():
    lib, listing, header = sys.argv[1:4]
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True,
                         text=True).stdout
    exported = sorted(line.split()[-1] for line in out.splitlines() if line.strip())
    expected = sorted(open(listing).read().split())
    declared = set(re.findall(r"\b(virtpci_\w+)\s*\(", open(header).read()))
    ok = True
    for name in sorted(set(exported) - set(expected)):
        print("exported but not in %s: %s" % (listing, name))
        ok = False
    for name in sorted(set(expected) - set(exported)):
        print("listed but not exported: %s" % name)
        ok = False
    for name in exported:
        if not name.startswith("virtpci_"):
            print("exported symbol without the virtpci_ prefix: %s" % name)
            ok = False
        elif name not in declared:
            print("exported but not declared in the header: %s" % name)
            ok = False
    dynamic = subprocess.run(["readelf", "-d", lib], check=True, capture_output=True,
                             text=True).stdout
    if "Library soname: [libvirtpci.so.0]" not in dynamic:
        print("SONAME is not libvirtpci.so.0")
        ok = False
    if not re.search(r"FLAGS_1.*NODELETE", dynamic):
        print("library is not linked with -z nodelete")
        ok = False
    print("%d exported symbols%s" % (len(exported), "" if ok else ": MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
