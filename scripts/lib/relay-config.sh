# shellcheck shell=bash
# The local relay's configuration, for scripts/relay: every path, value and rendered file
# comes from chatmail-render (chatmail-render/), which reads chatmail.ini with the services'
# own parser and renders relay/. Nothing here reads chatmail.ini or fills a template.
# Needs common.sh and binaries.sh; INSTANCE, STATE, RUN, SOCKET_ROOT, AUTH_MODE, BIN_DIRS,
# TEMPLATES.

# The chatmail-render of this build.
render_tool() {
	local tool
	tool=$(find_binary chatmail-render "${BIN_DIRS[@]}")
	[[ -n $tool ]] || die "chatmail-render is not built (looked in ${BIN_DIRS[*]}): run cargo build, or set CHATMAIL_BIN_DIRS"
	printf '%s' "$tool"
}

# chatmail_render COMMAND [ARGS...]: chatmail-render for this relay.
chatmail_render() {
	local tool
	tool=$(render_tool) || exit 1
	"$tool" --instance "$INSTANCE" --state "$STATE" --run "$RUN" --socket-root "$SOCKET_ROOT" --templates "$TEMPLATES" \
		--auth "$AUTH_MODE" --auth-cache-ttl "${CHATMAIL_AUTH_CACHE_TTL:-0}" "$@"
}

# load COMMAND: its NAME=VALUE lines become shell variables (POSTFIX_QUEUE_DIR, MAIL_DOMAIN,
# ...; `chatmail-render ... vars` lists them all).
load() {
	local out line name
	out=$(chatmail_render "$1") || die "chatmail-render $1 failed (CHATMAIL_RELAY_AUTH=$AUTH_MODE, state $STATE)"
	while IFS= read -r line; do
		name=${line%%=*}
		[[ $name =~ ^[A-Z][A-Z0-9_]*$ ]] || die "chatmail-render $1: unexpected line: $line"
		printf -v "$name" '%s' "${line#*=}"
	done <<<"$out"
}

# The relay's files and directories (no chatmail.ini needed).
load_paths() { load paths; }

# Everything the templates get: chatmail.ini as the services read it, the Dovecot series.
load_settings() { load vars; }

# DAEMONS (start order) and each one's metrics socket, METRICS_SOCKET[NAME] ("" if none),
# from chatmaild's table of the daemons.
load_daemons() {
	local out name socket
	out=$(chatmail_render daemons) || die "chatmail-render daemons failed"
	DAEMONS=()
	declare -gA METRICS_SOCKET=()
	while IFS=$'\t' read -r name socket; do
		DAEMONS+=("$name")
		[[ $socket == - ]] && socket=""
		METRICS_SOCKET[$name]=$socket
	done <<<"$out"
}

# A new chatmail.ini (kept afterwards): a loopback relay in IP-only mode, with the settings
# of CHATMAIL_NOTIFICATION_URL and CHATMAIL_INI_SET.
write_ini() {
	[[ -f $INI ]] && return 0
	say "writing $INI (loopback relay $INSTANCE, mail_domain = 127.0.0.$INSTANCE)"
	local settings=() extra kv
	[[ -n ${CHATMAIL_NOTIFICATION_URL:-} ]] && settings+=(--set "notification_url=$CHATMAIL_NOTIFICATION_URL")
	if [[ -n ${CHATMAIL_INI_SET:-} ]]; then
		read -r -a extra <<<"$CHATMAIL_INI_SET"
		for kv in "${extra[@]}"; do settings+=(--set "$kv"); done
	fi
	chatmail_render ini "${settings[@]}" || die "cannot write $INI"
}

make_certificate() {
	[[ -s $TLS_CERT && -s $TLS_KEY ]] && return 0
	say "generating a self-signed certificate for $MAIL_DOMAIN_BARE"
	install -d -m 0755 "$(dirname "$TLS_CERT")"
	local san="DNS:localhost"
	if [[ -n $IPV4_RELAY ]]; then san="IP:$MAIL_DOMAIN_BARE,$san"; else san="DNS:$MAIL_DOMAIN_BARE,$san"; fi
	(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
		-subj "/CN=$MAIL_DOMAIN_BARE" -addext "subjectAltName=$san" \
		-keyout "$TLS_KEY" -out "$TLS_CERT" 2>/dev/null) || die "openssl could not create the certificate"
	chmod 0644 "$TLS_CERT"
	chmod 0600 "$TLS_KEY"
}

# The directories the servers and daemons write, with their owners.
prepare_dirs() {
	install -d -m 0755 "$STATE" "$RUN" "$LOG_DIR" "$DOVECOT_STATE_DIR"
	install -d -m 0755 -o root -g root "$POSTFIX_QUEUE_DIR"
	install -d -m 0700 -o postfix -g postfix "$POSTFIX_DATA_DIR"
	install -d -m 0755 "$(dirname "$MAILBOXES_DIR")"
	install -d -m 0700 -o vmail -g vmail "$MAILBOXES_DIR"
	local name
	for name in "${DAEMONS[@]}"; do
		[[ -n ${METRICS_SOCKET[$name]} ]] && install -d -m 0755 -o vmail -g vmail "$(dirname "${METRICS_SOCKET[$name]}")"
	done
	install -d -m 0755 -o vmail -g vmail "$TEXTFILE_DIR"
	install -d -m 0700 -o "$WEB_USER" -g "$WEB_USER" "$NGINX_TEMP_DIR" "$FCGIWRAP_DIR"
	touch "$POSTFIX_LOG_FILE"
	echo "$STATE" >"$RUN/state_dir"
}

# Postfix, Dovecot and nginx configuration, rendered from relay/.
render_configs() {
	chatmail_render render || die "cannot render the configuration"
}
