# shellcheck shell=bash
# Processes of the local relay, for scripts/relay: pid files, readiness checks, starting a
# daemon as an unprivileged user, stopping a group of processes. Needs common.sh and RUN,
# LOG_DIR.

pid_alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }
pid_of() { if [[ -f $RUN/$1.pid ]]; then cat "$RUN/$1.pid"; fi; }

# port_open PORT: something listens on TCP PORT of this relay's address ($LISTEN, once the
# configuration is loaded), or of every address; another local relay's listener on its own
# address does not count. Reads /proc instead of connecting, so readiness checks leave no
# "lost connection" lines in the mail logs.
port_open() {
	local port f files=() ours=""
	port=$(printf '%04X' "$1")
	# /proc/net/tcp writes an IPv4 address as one little-endian hex word.
	if [[ ${LISTEN:-} =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
		ours=$(printf '%02X%02X%02X%02X' "${BASH_REMATCH[4]}" "${BASH_REMATCH[3]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[1]}")
	fi
	for f in /proc/net/tcp /proc/net/tcp6; do [[ -r $f ]] && files+=("$f"); done
	awk -v port="$port" -v ours="$ours" '
		$4 == "0A" {
			split($2, a, ":")
			if (a[2] != port) next
			if (ours == "" || a[1] == ours || a[1] ~ /^0+$/ || a[1] == "0000000000000000FFFF0000" ours) found = 1
		}
		END { exit !found }' "${files[@]}"
}

all_ports_open() {
	local p
	for p in "$@"; do port_open "$p" || return 1; done
}

socket_exists() { [[ -S $1 ]]; }

# The listeners on PORT..., for an error message.
port_owners() {
	ss -ltnp 2>/dev/null | grep -E ":($(IFS='|'; echo "$*")) " | tr -s ' ' | cut -d' ' -f4,6 | tr '\n' ' '
}

# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds (status 2: give up).
wait_for() {
	local what=$1 secs=$2 i
	shift 2
	local rc
	for ((i = 0; i < secs * 10; i++)); do
		rc=0
		"$@" || rc=$?
		[[ $rc -eq 0 ]] && return 0
		[[ $rc -eq 2 ]] && return 1
		sleep 0.1
	done
	say "error: timed out after ${secs}s waiting for $what"
	return 1
}

daemon_ready() {
	local pid=$1
	shift
	if ! pid_alive "$pid"; then
		say "error: process $pid exited"
		return 2
	fi
	"$@"
}

# start_daemon NAME READY-CHECK... -- [VAR=VALUE...] COMMAND...: run COMMAND as $DAEMON_USER
# (default vmail) in its own session with the VAR=VALUE settings in its environment, stderr to
# $LOG_DIR/NAME.log, pid in $RUN/NAME.pid, then wait until READY-CHECK succeeds. A COMMAND
# that was not built is skipped (and named in SKIPPED).
start_daemon() {
	local name=$1
	shift
	local check=() settings=()
	while [[ $1 != -- ]]; do check+=("$1"); shift; done
	shift
	while [[ $1 =~ ^[A-Z_][A-Z0-9_]*= ]]; do settings+=("$1"); shift; done
	if pid_alive "$(pid_of "$name")"; then
		say "$name is already running"
		return 0
	fi
	if [[ ! -x $1 ]]; then
		say "skipping $name: $(basename "$1") has not been built (yet)"
		SKIPPED+=("$name")
		return 0
	fi
	{ printf -- '--- %s starting %s\n' "$(date -u +%FT%TZ)" "$name"; } >>"$LOG_DIR/$name.log"
	# UMask=0077 as in the units: files and sockets private to vmail.
	local user=${DAEMON_USER:-vmail}
	(cd / && umask 077 && exec setsid setpriv --reuid="$user" --regid="$user" --init-groups --inh-caps=-all \
		env RUST_LOG="${RUST_LOG:-info}" "${settings[@]}" "$@" </dev/null >>"$LOG_DIR/$name.log" 2>&1) &
	echo $! >"$RUN/$name.pid"
	local pid=$!
	if ! wait_for "$name" 20 daemon_ready "$pid" "${check[@]}"; then
		tail -n 20 "$LOG_DIR/$name.log" >&2 || true
		say "error: $name did not start (log: $LOG_DIR/$name.log)"
		return 1
	fi
	say "$name is up (pid $pid)"
}

# stop_all NAME=PID...: SIGTERM to all at once, then wait (10 s) for all; stragglers get SIGKILL.
stop_all() {
	local item names=() pids=() i k
	for item in "$@"; do
		pid_alive "${item#*=}" || continue
		names+=("${item%%=*}")
		pids+=("${item#*=}")
		kill -TERM "${item#*=}" 2>/dev/null || true
	done
	for ((i = 0; i < 100; i++)); do
		local alive=0
		for k in "${!pids[@]}"; do pid_alive "${pids[$k]}" && alive=1; done
		[[ $alive -eq 0 ]] && break
		sleep 0.1
	done
	for k in "${!pids[@]}"; do
		if pid_alive "${pids[$k]}"; then
			say "${names[$k]} (pid ${pids[$k]}) did not stop within 10s; killing it"
			kill -KILL "${pids[$k]}" 2>/dev/null || true
		else
			say "stopped ${names[$k]}"
		fi
	done
}
