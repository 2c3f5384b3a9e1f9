#!/usr/bin/env bash
# Stages the root filesystem of the Rivulet image: the rivulet binary, the shared libraries it
# loads (found with ldd), and the few files glibc reads at run time: /etc/nsswitch.conf (so host
# names resolve from /etc/hosts, then DNS: the compose service names come from Docker's embedded
# DNS server, named in the /etc/resolv.conf that Docker mounts into every container), /etc/passwd
# and /etc/group (the unprivileged user `rivulet`, uid/gid 65532) and the data directory.
#
#   deploy/stage-rootfs.sh <rivulet binary> <output dir>
#
# The output dir is the build context of deploy/Dockerfile. It is wiped first.
set -euo pipefail

binary="${1:?usage: stage-rootfs.sh <rivulet binary> <output dir>}"
out="${2:?usage: stage-rootfs.sh <rivulet binary> <output dir>}"
uid=65532

[[ -x "$binary" ]] || { echo "stage-rootfs: $binary is not an executable" >&2; exit 1; }
command -v ldd >/dev/null || { echo "stage-rootfs: ldd (libc-bin) is needed" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/rootfs/usr/local/bin" "$out/rootfs/etc" "$out/rootfs/tmp" "$out/data"
chmod 1777 "$out/rootfs/tmp"

# The binary, without its symbols (a debug build is ~240 MB with them).
cp "$binary" "$out/rootfs/usr/local/bin/rivulet"
if command -v strip >/dev/null; then
    strip --strip-all "$out/rootfs/usr/local/bin/rivulet"
fi
chmod 0755 "$out/rootfs/usr/local/bin/rivulet"

# Every shared object the dynamic linker would load, at the same path, symlinks resolved.
# `ldd` prints "name => /path (addr)" for libraries and "/path (addr)" for the loader.
libs="$(ldd "$binary" | awk '/=> \//{print $3} /^\t\//{print $1}')"
for lib in $libs; do
    mkdir -p "$out/rootfs$(dirname "$lib")"
    cp -L "$lib" "$out/rootfs$lib"
done
# glibc >= 2.34 has the `files` and `dns` NSS modules built in; older ones load them.
for nss in libnss_files.so.2 libnss_dns.so.2 libresolv.so.2; do
    for dir in /lib/x86_64-linux-gnu /lib64 /usr/lib/x86_64-linux-gnu; do
        if [[ -e "$dir/$nss" && ! -e "$out/rootfs$dir/$nss" ]]; then
            mkdir -p "$out/rootfs$dir"
            cp -L "$dir/$nss" "$out/rootfs$dir/$nss"
            break
        fi
    done
done

cat > "$out/rootfs/etc/nsswitch.conf" <<'NSS'
hosts: files dns
NSS
cat > "$out/rootfs/etc/passwd" <<PASSWD
root:x:0:0:root:/:/sbin/nologin
rivulet:x:$uid:$uid:rivulet:/var/lib/rivulet:/sbin/nologin
PASSWD
cat > "$out/rootfs/etc/group" <<GROUP
root:x:0:
rivulet:x:$uid:
GROUP

cp "$(dirname "$0")/Dockerfile" "$out/Dockerfile"
echo "staged $(du -sh "$out/rootfs" | cut -f1) in $out/rootfs"
