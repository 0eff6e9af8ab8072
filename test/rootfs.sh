#!/usr/bin/env bash
# rootfs.sh DIR - build a minimal busybox root filesystem for runc in DIR.
#
#   DIR/bin/busybox                    a copy of the host's static /bin/busybox
#   DIR/bin/<applet> -> busybox        RELATIVE links, one per `busybox --list`
#   DIR/{etc,proc,sys,dev,tmp,root}    mount points and basics
#   DIR/var/credentials-fetcher/krbdir where the hook mounts the tickets
#   DIR/etc/passwd, DIR/etc/group      root, app (uid 1000), other (uid 1001)
#
# Idempotent: a second run changes nothing (and is fast).
set -euo pipefail

DIR=${1:?usage: $0 DIR}
BUSYBOX=${BUSYBOX:-/bin/busybox}

die() { printf 'rootfs: ERROR: %s\n' "$*" >&2; exit 1; }

[[ -x $BUSYBOX ]] || die "$BUSYBOX not found (apt-get install busybox-static)"
# The rootfs has no libc: a dynamically linked busybox (Debian's "busybox"
# package) would fail inside the container with "no such file or directory".
# (ldd fails with "not a dynamic executable" on a static binary)
if ldd "$BUSYBOX" >/dev/null 2>&1; then
	die "$BUSYBOX is dynamically linked; install busybox-static"
fi

mkdir -p "$DIR"/{bin,etc,proc,sys,dev,tmp,root,var/credentials-fetcher/krbdir,home/app,home/other}
chmod 1777 "$DIR/tmp"
chmod 0700 "$DIR/root"
chown 1000:1000 "$DIR/home/app"
chown 1001:1001 "$DIR/home/other"

# write_if_changed PATH MODE: content from stdin (keeps mtime when unchanged)
write_if_changed() {
	local path=$1 mode=$2 new old=
	IFS= read -r -d '' new || true
	[[ -f $path ]] && { IFS= read -r -d '' old <"$path" || true; }
	if [[ ! -f $path || $old != "$new" ]]; then
		printf '%s' "$new" >"$path.tmp.$$"
		mv -f "$path.tmp.$$" "$path"
	fi
	chmod "$mode" "$path"
}

if ! cmp -s "$BUSYBOX" "$DIR/bin/busybox"; then
	cp "$BUSYBOX" "$DIR/bin/busybox.tmp.$$"
	mv -f "$DIR/bin/busybox.tmp.$$" "$DIR/bin/busybox"
fi
chmod 0755 "$DIR/bin/busybox"

# Relative links, so they resolve inside the container (after pivot_root) and
# on the host alike. Links that point elsewhere are replaced; correct ones are
# left alone (no process per applet: there are ~400).
find "$DIR/bin" -maxdepth 1 -type l ! -lname busybox -delete
while IFS= read -r applet; do
	[[ -n $applet && $applet != busybox && $applet != */* ]] || continue
	[[ -L $DIR/bin/$applet ]] || ln -sfn busybox "$DIR/bin/$applet"
done < <("$BUSYBOX" --list)

write_if_changed "$DIR/etc/passwd" 0644 <<-'EOF'
	root:x:0:0:root:/root:/bin/sh
	app:x:1000:1000:app:/home/app:/bin/sh
	other:x:1001:1001:other:/home/other:/bin/sh
	nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF

write_if_changed "$DIR/etc/group" 0644 <<-'EOF'
	root:x:0:
	app:x:1000:
	other:x:1001:
	nogroup:x:65534:
EOF
