# shellcheck shell=bash
# shellcheck disable=SC2154 # the configuration's variables come from relay-config.sh's load
# The servers of the local relay, for scripts/relay: the workspace's daemons (chatmaild's
# table, through chatmail-render daemons), Dovecot, Postfix, and nginx with fcgiwrap in
# front of the newemail CGI. Needs common.sh, relay-processes.sh, and the configuration
# loaded by relay-config.sh.

# The ports the templates give Postfix (smtp, submissions, submission), Dovecot (imap,
# imaps) and nginx.
POSTFIX_PORTS=(25 465 587)
DOVECOT_PORTS=(143 993)
HTTPS_PORT=443
# fcgiwrap runs as www-data (like nginx's workers).
WEB_USER=www-data

postfix_pid() { if [[ -f $POSTFIX_QUEUE_DIR/pid/master.pid ]]; then tr -d ' ' <"$POSTFIX_QUEUE_DIR/pid/master.pid"; fi; }
dovecot_pid() { if [[ -f $DOVECOT_BASE_DIR/master.pid ]]; then cat "$DOVECOT_BASE_DIR/master.pid"; fi; }
nginx_pid() { if [[ -f $NGINX_PID ]]; then cat "$NGINX_PID"; fi; }

# Every daemon of the table, in its order (the dict services first: Dovecot must never see
# a missing socket).
start_daemons() {
	local name
	for name in "${DAEMONS[@]}"; do
		start_one_daemon "$name" || die "stopping: run scripts/relay stop to clean up"
	done
}

# start_one_daemon NAME: the command line of each daemon, as its unit has it.
start_one_daemon() {
	local metrics=CHATMAIL_METRICS_SOCKET=${METRICS_SOCKET[$1]}
	case $1 in
	doveauth)
		if [[ $AUTH_MODE == lua ]]; then
			start_daemon doveauth port_open "$DOVEAUTH_HTTP_PORT" -- "$metrics" "$BIN_DIR/doveauth" "$INI"
		else
			start_daemon doveauth socket_exists "$DOVEAUTH_SOCKET" -- "$BIN_DIR/doveauth" "$DOVEAUTH_SOCKET" "$INI"
		fi
		;;
	lastlogin) start_daemon lastlogin socket_exists "$LASTLOGIN_SOCKET" -- "$BIN_DIR/lastlogin" "$LASTLOGIN_SOCKET" "$INI" ;;
	chatmail-metadata) start_daemon chatmail-metadata socket_exists "$METADATA_SOCKET" -- "$BIN_DIR/chatmail-metadata" "$METADATA_SOCKET" "$INI" ;;
	filtermail) start_daemon filtermail port_open "$FILTERMAIL_SMTP_PORT" -- "$metrics" "$BIN_DIR/filtermail" "$INI" outgoing ;;
	filtermail-incoming) start_daemon filtermail-incoming port_open "$FILTERMAIL_SMTP_PORT_INCOMING" -- "$metrics" "$BIN_DIR/filtermail" "$INI" incoming ;;
	filtermail-transport)
		# Transport mode only matters for mail to other relays; a filtermail without it is no
		# reason to fail a loopback relay.
		# (filtermail exits 1 after its usage text: read the text, not the pipeline's status.)
		local usage=""
		[[ -x $BIN_DIR/filtermail ]] && usage=$("$BIN_DIR/filtermail" 2>&1 </dev/null || true)
		if [[ -x $BIN_DIR/filtermail && $usage != *transport* ]]; then
			say "skipping filtermail-transport: this filtermail has no transport mode; mail to other relays stays queued"
			return 0
		fi
		start_daemon filtermail-transport port_open "$FILTERMAIL_LMTP_PORT_TRANSPORT" -- "$metrics" "$BIN_DIR/filtermail" "$INI" transport
		;;
	chatmail-exporter)
		# One /metrics for all of them (127.0.0.1:metrics_port), as chatmail-exporter.service.
		local sources=() name
		for name in "${DAEMONS[@]}"; do
			[[ -n ${METRICS_SOCKET[$name]} ]] && sources+=(--service "$name=${METRICS_SOCKET[$name]}")
		done
		start_daemon chatmail-exporter port_open "$METRICS_PORT" -- "$BIN_DIR/chatmail-exporter" "$INI" "${sources[@]}" \
			--textfile "$TEXTFILE_DIR/fsreport.prom" --textfile "$TEXTFILE_DIR/expire.prom"
		;;
	*) die "no command line for daemon $1" ;;
	esac
}

start_postfix() {
	if pid_alive "$(postfix_pid)"; then
		postfix -c "$POSTFIX_CONF_DIR" reload </dev/null >>"$POSTFIX_LOG_FILE" 2>&1 || true
		say "postfix is already running (configuration reloaded)"
		return 0
	fi
	if ! postfix -c "$POSTFIX_CONF_DIR" start </dev/null >>"$POSTFIX_LOG_FILE" 2>&1; then
		tail -n 5 "$POSTFIX_LOG_FILE" >&2
		die "postfix did not start (log: $POSTFIX_LOG_FILE)"
	fi
	wait_for "postfix on ports ${POSTFIX_PORTS[*]}" 30 all_ports_open "${POSTFIX_PORTS[@]}" || die "postfix is not listening (log: $POSTFIX_LOG_FILE)"
	say "postfix is up (config $POSTFIX_CONF_DIR)"
}

start_dovecot() {
	if pid_alive "$(dovecot_pid)"; then
		doveadm -c "$DOVECOT_CONF" reload </dev/null >>"$DOVECOT_LOG_FILE" 2>&1 || true
		say "dovecot is already running (configuration reloaded)"
		return 0
	fi
	doveconf -c "$DOVECOT_CONF" -n >/dev/null || die "dovecot rejects $DOVECOT_CONF"
	# Dovecot's master keeps its stderr open: never hand it our terminal or pipe.
	if ! dovecot -c "$DOVECOT_CONF" </dev/null >>"$DOVECOT_LOG_FILE" 2>&1; then
		tail -n 5 "$DOVECOT_LOG_FILE" >&2
		die "dovecot did not start (log: $DOVECOT_LOG_FILE)"
	fi
	wait_for "dovecot on ports ${DOVECOT_PORTS[*]}" 30 all_ports_open "${DOVECOT_PORTS[@]}" || die "dovecot is not listening (log: $DOVECOT_LOG_FILE)"
	say "dovecot is up (config $DOVECOT_CONF)"
}

# nginx in front of the newemail CGI (which needs doveauth's /create: start it after doveauth).
start_web() {
	if ! pid_alive "$(pid_of fcgiwrap)"; then
		rm -f "$FCGIWRAP_SOCKET"
	fi
	# One process (no -c: prefork children would outlive a stopped parent).
	DAEMON_USER=$WEB_USER start_daemon fcgiwrap socket_exists "$FCGIWRAP_SOCKET" -- "$(command -v fcgiwrap || echo /usr/sbin/fcgiwrap)" -s "unix:$FCGIWRAP_SOCKET" ||
		die "stopping: run scripts/relay stop to clean up"
	if pid_alive "$(nginx_pid)"; then
		nginx -c "$NGINX_CONF" -e "$NGINX_ERROR_LOG" -s reload </dev/null >>"$NGINX_ERROR_LOG" 2>&1 || true
		say "nginx is already running (configuration reloaded)"
		return 0
	fi
	if port_open "$HTTPS_PORT"; then
		die "port $HTTPS_PORT is in use by another program: $(port_owners "$HTTPS_PORT")"
	fi
	if ! nginx -t -q -c "$NGINX_CONF" -e "$NGINX_ERROR_LOG" </dev/null >>"$NGINX_ERROR_LOG" 2>&1; then
		tail -n 5 "$NGINX_ERROR_LOG" >&2
		die "nginx rejects $NGINX_CONF"
	fi
	nginx -c "$NGINX_CONF" -e "$NGINX_ERROR_LOG" </dev/null >>"$NGINX_ERROR_LOG" 2>&1 || die "nginx did not start (log: $NGINX_ERROR_LOG)"
	wait_for "nginx on port $HTTPS_PORT" 20 port_open "$HTTPS_PORT" || die "nginx is not listening (log: $NGINX_ERROR_LOG)"
	say "nginx is up (config $NGINX_CONF, newemail at https://$MAIL_DOMAIN_BARE/new)"
}

# Postfix listens only on addresses of this machine's interfaces (inet_interfaces), and the
# loopback interface has just 127.0.0.1 (the rest of 127.0.0.0/8 is routed to it, which is
# enough for everything else). A relay on another loopback address adds that address to lo
# (remembered in $RUN/loopback_address and removed again by `stop`); needs CAP_NET_ADMIN.
add_loopback_address() {
	ip -4 -o addr show dev lo | grep -q " inet $LISTEN/" && return 0
	ip addr add "$LISTEN/32" dev lo || die "cannot add $LISTEN to the loopback interface (ip addr add: needs CAP_NET_ADMIN)"
	echo "$LISTEN" >"$RUN/loopback_address"
	say "added $LISTEN to the loopback interface"
}

remove_loopback_address() {
	[[ -s $RUN/loopback_address ]] || return 0
	local addr
	addr=$(<"$RUN/loopback_address")
	ip addr del "$addr/32" dev lo 2>/dev/null || true
	rm -f "$RUN/loopback_address"
	say "removed $addr from the loopback interface"
}

# The distribution's own mail services hold the same ports; stop them when systemd runs them.
free_mail_ports() {
	local p busy=() ports=("${POSTFIX_PORTS[@]}" "${DOVECOT_PORTS[@]}")
	# Our own Postfix and Dovecot are running: the ports are ours.
	if pid_alive "$(postfix_pid)" || pid_alive "$(dovecot_pid)"; then
		return 0
	fi
	for p in "${ports[@]}"; do port_open "$p" && busy+=("$p"); done
	[[ ${#busy[@]} -eq 0 ]] && return 0
	if [[ -d /run/systemd/system ]]; then
		local unit
		for unit in postfix.service dovecot.service; do
			if systemctl is-active --quiet "$unit"; then
				say "stopping the system's $unit: it holds mail ports this relay needs (systemctl start $unit to get it back)"
				systemctl stop "$unit"
			fi
		done
	fi
	busy=()
	for p in "${ports[@]}"; do port_open "$p" && busy+=("$p"); done
	[[ ${#busy[@]} -eq 0 ]] || die "ports ${busy[*]} are in use by another program: $(port_owners "${busy[@]}")"
}
