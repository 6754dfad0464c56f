# tests/vm/lib.sh -- what the VM tests share: the Debian kernel and busybox fetched with
# `apt-get download` into a cache, and the initramfs built from them. Sourced by tests/vm/run
# and tests/vm/vf-net/run, which define log and die and set DEB_CACHE before calling these.

# The versioned kernel package that linux-image-amd64 stands for.
vm_kernel_package() {
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
          awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
    [ -n "$pkg" ] || die "cannot tell which kernel package linux-image-amd64 stands for"
    echo "$pkg"
}

# PACKAGE -> the newest cached .deb, downloading it when there is none
deb_of() {
    local f
    f=$(ls -1 "$DEB_CACHE/$1"_*.deb 2>/dev/null | sort | tail -n1)
    if [ -z "$f" ]; then
        log "apt-get download $1"
        # apt's sandbox user must be able to write the directory
        [ "$(id -u)" = 0 ] && chown _apt "$DEB_CACHE" 2>/dev/null || true
        (cd "$DEB_CACHE" && apt-get download -q "$1" >&2) || die "apt-get download $1 failed"
        f=$(ls -1 "$DEB_CACHE/$1"_*.deb 2>/dev/null | sort | tail -n1)
    fi
    [ -n "$f" ] || die "no .deb for $1"
    echo "$f"
}

# vm_unpack_kernel DIR "CONFIG..." MODULE_DIR...: unpack into DIR the kernel, its config,
# modules.builtin/order and only the module directories named (kernel/drivers/net, ...; not
# 400 MB of modules), and busybox (vm_unpack_busybox); refuse a kernel without each CONFIG_
# option; run depmod. Sets KVER, VMLINUZ and BUSYBOX.
vm_unpack_kernel() {
    local dir=$1 configs=$2 c
    shift 2
    local patterns=('./boot/vmlinuz-*' './boot/config-*' './lib/modules/*/modules.builtin'
                    './lib/modules/*/modules.order')
    for c in "$@"; do patterns+=("./lib/modules/*/$c/*"); done
    local kpkg kdeb
    mkdir -p "$DEB_CACHE" "$dir"
    kpkg=$(vm_kernel_package)
    kdeb=$(deb_of "$kpkg")
    dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$dir" --wildcards "${patterns[@]}"
    vm_unpack_busybox "$dir"
    KVER=$(ls "$dir/lib/modules" | head -n1)
    VMLINUZ=$dir/boot/vmlinuz-$KVER
    [ -f "$VMLINUZ" ] || die "no kernel in the unpacked package"
    for c in $configs; do
        grep -qE "^CONFIG_$c=[ym]" "$dir/boot/config-$KVER" || die "the guest kernel lacks CONFIG_$c"
    done
    "$BUSYBOX" depmod -b "$dir" "$KVER"
}

# vm_unpack_busybox DIR: Debian's busybox-static unpacked into DIR. Sets BUSYBOX.
vm_unpack_busybox() {
    mkdir -p "$DEB_CACHE" "$1"
    dpkg -x "$(deb_of busybox-static)" "$1"
    BUSYBOX=$1/bin/busybox
    [ -x "$BUSYBOX" ] || die "no busybox in the unpacked package"
}

# vm_initramfs_base IR KDIR MODULE...: the initramfs tree IR with busybox and its applets, and
# the modules named (with what they depend on) from the unpacked kernel KDIR, indexed by depmod.
vm_initramfs_base() {
    local ir=$1 kdir=$2 md=lib/modules/$KVER m mod line f
    shift 2
    vm_initramfs_busybox "$ir"
    mkdir -p "$ir/$md"
    for m in "$@"; do
        mod=${m//-/_}
        line=$(grep -E "(^|/)(${m}|${mod})\.ko(\.[a-z]+)?:" "$kdir/$md/modules.dep") || {
            grep -qE "/(${m}|${mod})\.ko" "$kdir/$md/modules.builtin" && continue
            die "module $m not found"
        }
        for f in ${line/:/}; do
            mkdir -p "$ir/$md/$(dirname "$f")"
            cp "$kdir/$md/$f" "$ir/$md/$f"
        done
    done
    cp "$kdir/$md/modules.builtin" "$kdir/$md/modules.order" "$ir/$md/"
    "$BUSYBOX" depmod -b "$ir" "$KVER"
}

# vm_initramfs_busybox IR: the initramfs tree IR with its directories, busybox and its applets.
vm_initramfs_busybox() {
    local ir=$1 applet
    mkdir -p "$ir"/{bin,sbin,etc,proc,sys,dev,tmp,run}
    cp "$BUSYBOX" "$ir/bin/busybox"
    for applet in $("$BUSYBOX" --list); do
        [ -e "$ir/bin/$applet" ] || ln -s busybox "$ir/bin/$applet"
    done
}

# vm_copy_libs IR SKIP_DIR PROGRAM...: the shared libraries of the programs (the loader
# included) into IR at the paths ldd names, except those under SKIP_DIR (may be empty).
vm_copy_libs() {
    local ir=$1 skip=$2 prog so
    shift 2
    for prog in "$@"; do
        ldd "$prog" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }'
    done | sort -u | while read -r so; do
        if [ -n "$skip" ]; then case $so in "$skip"/*) continue ;; esac; fi
        mkdir -p "$ir$(dirname "$so")"
        cp -L "$so" "$ir$so"
    done
}

# vm_initramfs_pack IR OUT: IR as a gzipped newc cpio archive.
vm_initramfs_pack() {
    (cd "$1" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1 > "$2")
}
