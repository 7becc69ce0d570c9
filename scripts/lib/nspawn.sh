# shellcheck shell=bash
# Debian roots booted with systemd as PID 1 (systemd-nspawn --boot) on a host without systemd,
# for the tests of the package under a real systemd (scripts/systemd-test). Needs common.sh
# and packages.sh. Each root is made once with debootstrap and kept under NSPAWN_DIR; a
# changed package list rebuilds it. Flags and limits: systemd/README.md.

NSPAWN_DIR=${CHATMAIL_NSPAWN_DIR:-/var/lib/chatmail-test/nspawn}
# The root's packages: systemd itself, what the relay runs (the operator's `apt-get install`,
# done here once because a booted container has no network), and the test client's Python.
NSPAWN_PACKAGES=(systemd systemd-sysv dbus adduser netcat-openbsd python3-minimal libpython3-stdlib
	"${RELAY_PACKAGES[@]}" "${RELAY_TOOL_PACKAGES[@]}")

# The Debian mirror this machine's apt uses.
apt_mirror() {
	local m
	m=$(awk '/^deb / && $2 ~ /^http/ && $2 ~ /debian\/?$/ { print $2; exit }' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
	[[ -n $m ]] || m=$(awk '/^URIs:/ && $2 ~ /^http/ && $2 ~ /debian\/?$/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	printf '%s' "${m:-http://deb.debian.org/debian}"
}

# nspawn_ensure SUITE: the root for SUITE (bookworm, trixie), built unless current; prints its path.
nspawn_ensure() {
	local suite=$1 root=$NSPAWN_DIR/$1
	local packages stamp
	packages=$(IFS=,; echo "${NSPAWN_PACKAGES[*]}")
	stamp="$suite $packages v1"
	if [[ -f $root/.chatmail-stamp && $(<"$root/.chatmail-stamp") == "$stamp" ]]; then
		printf '%s' "$root"
		return 0
	fi
	command -v debootstrap >/dev/null || apt_install debootstrap
	local new=$root.new
	rm -rf --one-file-system "$new"
	mkdir -p "$new/usr/sbin"
	# Nothing starts while debootstrap installs (there is no systemd in the chroot); removed
	# afterwards, so that inside the booted container dpkg starts services as on a host.
	printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
	chmod 0755 "$new/usr/sbin/policy-rc.d"
	say "building the $suite root in $new (debootstrap, about 1-2 minutes)"
	if ! debootstrap --variant=minbase --include="$packages" "$suite" "$new" "$(apt_mirror)" >"$new.log" 2>&1; then
		tail -n 30 "$new.log" >&2
		die "debootstrap failed (log: $new.log)"
	fi
	rm -f "$new/usr/sbin/policy-rc.d" "$new.log"
	echo "chatmail-$suite" >"$new/etc/hostname"
	rm -f "$new/etc/machine-id"
	systemd-machine-id-setup --root="$new" >/dev/null
	chroot "$new" passwd -d root >/dev/null
	echo "$stamp" >"$new/.chatmail-stamp"
	rm -rf --one-file-system "$root"
	mv "$new" "$root"
	printf '%s' "$root"
}

# nspawn_boot NAME ROOT [NSPAWN_ARGS...]: boots ROOT as container NAME (own network namespace,
# writes to a tmpfs overlay, so the root stays as built), sets NSPAWN_PID (nspawn) and
# NSPAWN_INIT (its systemd, a host pid) and waits until the system is up.
nspawn_boot() {
	local name=$1 root=$2 h
	shift 2
	for h in systemd unified; do
		[[ -d /sys/fs/cgroup/$h ]] && mkdir -p "/sys/fs/cgroup/$h/chatmail-$name"
	done
	(
		for h in systemd unified; do
			[[ -d /sys/fs/cgroup/$h/chatmail-$name ]] && echo "$BASHPID" >"/sys/fs/cgroup/$h/chatmail-$name/cgroup.procs"
		done
		export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
		exec systemd-nspawn --boot --directory="$root" --machine="chatmail-$name" --volatile=overlay \
			--register=no --keep-unit --console=read-only --system-call-filter=bpf --private-network "$@"
	) >"$NSPAWN_DIR/$name.log" 2>&1 </dev/null &
	NSPAWN_PID=$!
	NSPAWN_INIT=""
	local i
	for ((i = 0; i < 300; i++)); do
		NSPAWN_INIT=$(pgrep -P "$NSPAWN_PID" -x systemd || true)
		[[ -n $NSPAWN_INIT ]] && break
		kill -0 "$NSPAWN_PID" 2>/dev/null || break
		sleep 0.1
	done
	[[ -n $NSPAWN_INIT ]] || { tail -n 20 "$NSPAWN_DIR/$name.log" >&2; die "the $name container did not boot"; }
	local s
	for ((i = 0; i < 600; i++)); do
		s=$(IN systemctl is-system-running 2>/dev/null || true)
		[[ $s == running || $s == degraded ]] && return 0
		sleep 0.1
	done
	die "the $name container is not up (state: $s)"
}

# IN CMD [ARGS...]: CMD inside the booted container.
IN() { nsenter --target="$NSPAWN_INIT" --all /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root "$@"; }

# nspawn_stop NAME: orderly poweroff, then the container's cgroups go.
nspawn_stop() {
	local name=$1 h i
	if [[ -n ${NSPAWN_INIT:-} ]]; then IN systemctl poweroff >/dev/null 2>&1 || true; fi
	for ((i = 0; i < 100; i++)); do
		kill -0 "$NSPAWN_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$NSPAWN_PID" 2>/dev/null && kill -TERM "$NSPAWN_PID"
	[[ -n ${NSPAWN_INIT:-} ]] && kill -0 "$NSPAWN_INIT" 2>/dev/null && kill -KILL "$NSPAWN_INIT"
	wait "$NSPAWN_PID" 2>/dev/null || true
	for h in systemd unified; do
		[[ -d /sys/fs/cgroup/$h/chatmail-$name ]] && find "/sys/fs/cgroup/$h/chatmail-$name" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
	NSPAWN_INIT=""
	return 0
}
