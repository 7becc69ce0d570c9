# shellcheck shell=bash
# The checks of inside.sh, one function per behaviour under systemd.

SOCKET_SERVICES=(doveauth-http lastlogin chatmail-metadata filtermail)
SERVICES=("${SOCKET_SERVICES[@]}" filtermail-incoming filtermail-transport chatmail-exporter)
# What each daemon listens on once ready (ports of chatmail.ini's defaults).
declare -A LISTENS=([filtermail]=10080 [filtermail-incoming]=10081 [filtermail-transport]=10083
	[chatmail-exporter]=10089 [doveauth-http]=10084
	[lastlogin]=/run/chatmail-lastlogin/lastlogin.socket [chatmail-metadata]=/run/chatmail-metadata/metadata.socket)
PASSWORD=systemd-test-pw-1
# IP-only mail domain: addresses take the address literal.
A=aaaaaaaaa@[$DOMAIN]
B=bbbbbbbbb@[$DOMAIN]
# Another relay, as port 25 sees it (an IP-literal domain: no DKIM).
PEER="someone@[127.0.0.2]"

# matches TEXT GLOB
# shellcheck disable=SC2053 # a pattern
matches() { [[ $1 == $2 ]]; }
# admin_delete ADDR: the account is created by a login, then deleted with chatmail-admin.
admin_delete() { mail login "$1" "$PASSWORD" && chatmail-admin delete "$1" >/dev/null; }
# purge_reinstall: dpkg -P and dpkg -i again; the old account still logs in.
purge_reinstall() {
	dpkg -P chatmail-relay >/dev/null 2>&1 && install_package "$NEWER" && mail login "$A" "$PASSWORD"
}
# no_failures OUTPUT: the login loop's "ok N failed 0" with N > 0.
no_failures() { [[ $1 =~ ^ok\ [1-9][0-9]*\ failed\ 0$ ]]; }
# created ADDR [PASSWORD]: a login creates the account (its password file appears).
created() { mail login "$1" "${2:-$PASSWORD}" && test -s "$MAILBOXES/$1/password"; }
# refused ADDR: the login fails and creates nothing.
refused() { ! mail login "$1" "$PASSWORD" 2>/dev/null && test ! -e "$MAILBOXES/$1/password"; }
# delivered ADDR: a message is in ADDR's maildir (stored compressed; IMAP shows its text).
delivered() { find "$MAILBOXES/$1/new" "$MAILBOXES/$1/cur" -type f 2>/dev/null | grep -q .; }
main_pid() { systemctl show -P MainPID "$1.service"; }
active() { [[ $(systemctl is-active "$1") == active ]]; }
listening() {
	case $1 in
	/*) nc -zU "$1" >/dev/null 2>&1 ;;
	*) nc -z 127.0.0.1 "$1" >/dev/null 2>&1 ;;
	esac
}
# A drop-in for the test in /run (gone with the container), then daemon-reload.
test_dropin() { # test_dropin UNIT TEXT ("" removes it)
	local d=/run/systemd/system/$1.d
	if [[ -n $2 ]]; then
		mkdir -p "$d"
		printf '%s\n' "$2" >"$d/50-test.conf"
	else
		rm -rf "$d"
	fi
	systemctl daemon-reload
}

check_services() {
	local s
	for s in "${SERVICES[@]}"; do
		check "$s.service active, Type=$(systemctl show -P Type "$s.service")" \
			test "$(systemctl is-active "$s.service")/$(systemctl show -P Type "$s.service")" = active/notify
	done
	for s in "${SOCKET_SERVICES[@]}"; do check "$s.socket active" active "$s.socket"; done
	for s in chatmail-expire chatmail-fsreport; do check "$s.timer active" active "$s.timer"; done
}

# `systemctl start` returns once the daemon said READY=1, which it does after binding: the
# port or socket answers at once.
check_readiness() {
	local s t
	for s in "${SERVICES[@]}"; do
		systemctl stop "$s.service"
		t=$(date +%s%N)
		if systemctl start "$s.service" && active "$s.service" && listening "${LISTENS[$s]}"; then
			ok "systemctl start $s: ready and answering on ${LISTENS[$s]} ($((($(date +%s%N) - t) / 1000000)) ms)"
		else
			fail "systemctl start $s: $(systemctl is-active "$s.service"), ${LISTENS[$s]} $(listening "${LISTENS[$s]}" && echo answers || echo silent)"
		fi
	done
}

# A hung daemon (SIGSTOP) misses its watchdog pings and is restarted. The drop-in shortens
# the watchdog and restart delays for the test only.
check_watchdog() {
	local s=filtermail-incoming pid new i
	test_dropin "$s.service" $'[Service]\nWatchdogSec=2\nRestartSec=1\nTimeoutAbortSec=2'
	systemctl restart "$s.service"
	pid=$(main_pid "$s")
	sleep 4
	check "$s pings its watchdog (alive after 2 watchdog periods)" test "$(main_pid "$s")" = "$pid"
	kill -STOP "$pid"
	new=$pid
	for ((i = 0; i < 150; i++)); do
		new=$(main_pid "$s")
		[[ $new != "$pid" && $new != 0 ]] && active "$s.service" && break
		sleep 0.1
	done
	check "hung $s (SIGSTOP) restarted by the watchdog (pid $pid -> $new)" \
		bash -c "[[ $new != $pid && $new != 0 ]] && journalctl -b -u $s.service | grep -q 'Watchdog timeout'"
	test_dropin "$s.service" ""
	systemctl restart "$s.service"
}

# The daemon behind a socket unit starts on the first connection; restarts while clients
# keep connecting refuse none (the socket stays open, connections wait in its backlog).
check_socket_activation() {
	local s
	for s in "${SOCKET_SERVICES[@]}"; do
		systemctl stop "$s.service"
		if active "$s.service" || ! active "$s.socket"; then
			fail "$s: stopped service with its socket still listening"
			continue
		fi
		listening "${LISTENS[$s]}"
		check "$s.service started by the first connection to ${LISTENS[$s]}" wait_until 10 active "$s.service"
	done
	mail login "$A" "$PASSWORD" || fail "login of $A before the restarts"
	local stop=/tmp/logins.stop out
	rm -f "$stop"
	mail logins "[$DOMAIN]" "$PASSWORD" "$stop" >/tmp/logins.out 2>/tmp/logins.err &
	local loop=$!
	sleep 1
	for s in "${SOCKET_SERVICES[@]}" "${SOCKET_SERVICES[@]}"; do
		systemctl restart "$s.service"
		sleep 0.5
	done
	touch "$stop"
	wait "$loop"
	out=$(cat /tmp/logins.out)
	check "logins (each creating an account) while ${SOCKET_SERVICES[*]} restart twice: $out" \
		no_failures "$out"
	[[ -s /tmp/logins.err ]] && head -n 5 /tmp/logins.err
}

# Submission: cleartext refused, encrypted accepted and delivered; port 25 from outside; a
# login creating the account.
check_mail_flow() {
	local eml=$SRC/filtermail/tests/data
	check "a login creates $B" created "$B"
	local out
	out=$(mail send "$A" "$PASSWORD" "$B" "$eml/plain.eml")
	check "cleartext submission refused: $out" matches "$out" "*523*"
	check "encrypted submission accepted" mail send "$A" "$PASSWORD" "$B" "$eml/encrypted.eml"
	check "encrypted message delivered to $B's maildir" \
		wait_until 30 delivered "$B"
	check "$B fetches it over IMAP" mail fetch "$B" "$PASSWORD" "BEGIN PGP MESSAGE"
	check "port 25: encrypted mail from outside accepted" mail incoming "$PEER" "$B" "$eml/encrypted.eml"
	check "port 25: mailer-daemon message accepted" mail incoming "" "$B" "$eml/mailer-daemon.eml"
	out=$(mail incoming "$PEER" "$B" "$eml/plain.eml")
	check "port 25: cleartext from outside refused: $out" matches "$out" "*523*"
	# registration closed by the nocreate file: the login fails and doveauth says why
	local nocreate
	nocreate=$(sed -n 's/^nocreate_file *= *//p' "$INI")
	touch "$nocreate"
	check "no account while $nocreate exists" refused "ccccccccc@[$DOMAIN]"
	rm -f "$nocreate"
	# a deleted (tombstoned) address is not created again: "registration rejected: "
	local d="ddddddddd@[$DOMAIN]"
	check "chatmail-admin delete $d" admin_delete "$d"
	check "no account for the deleted $d" refused "$d"
}

# check_newemail: nginx serves /new as the reference's site does for a self-signed relay
# (fcgiwrap runs /usr/lib/cgi-bin/newemail.py, which the package points at
# chatmail-newemail, as www-data); the address and password it hands out log in and so
# create the account. In invite-only mode /new refuses without an invitation and, with one,
# has doveauth-http create the account at once.
check_newemail() {
	# shellcheck disable=SC2016 # an nginx variable, written as is
	echo 'limit_req_zone $binary_remote_addr zone=newaccount:10m rate=2r/s;' >/etc/nginx/conf.d/chatmail-new.conf
	cat >/etc/nginx/sites-enabled/default <<'SITE'
server {
	listen 127.0.0.1:80 default_server;
	location /new {
		limit_req zone=newaccount burst=5 nodelay;
		fastcgi_pass unix:/run/fcgiwrap.socket;
		include /etc/nginx/fastcgi_params;
		fastcgi_param SCRIPT_FILENAME /usr/lib/cgi-bin/newemail.py;
	}
}
SITE
	check "fcgiwrap.socket starts" systemctl enable --now fcgiwrap.socket
	check "nginx starts with the /new site" systemctl restart nginx.service
	local creds
	creds=$(mail new http://127.0.0.1/new)
	check "/new through nginx hands out an address of $DOMAIN: $creds" matches "$creds" "*@\\[$DOMAIN\\]\\ ?*"
	local addr=${creds%% *} password=${creds#* }
	check "the handed-out credentials log in and create $addr" created "$addr" "$password"
	chatmail-admin registration invite-only >/dev/null
	local out token
	out=$(mail new http://127.0.0.1/new)
	check "invite-only: /new without an invitation refused: $out" matches "$out" "refused: 403*"
	token=$(chatmail-admin invite create | sed -n 's/^invitation \([a-z0-9]*\) .*/\1/p')
	creds=$(mail new "http://127.0.0.1/new?invite=$token")
	addr=${creds%% *}
	check "invite-only: /new?invite=TOKEN created $addr before any login" test -s "$MAILBOXES/$addr/password"
	chatmail-admin registration open >/dev/null
}

# run_timer NAME: the timer fires (a drop-in makes it fire a second after it starts) and its
# service runs to success.
run_timer() {
	local t=$1 before
	before=$(systemctl show -P ExecMainExitTimestampMonotonic "$t.service")
	test_dropin "$t.timer" $'[Timer]\nOnActiveSec=1s'
	systemctl restart "$t.timer"
	wait_until 30 bash -c "[[ \$(systemctl show -P ExecMainExitTimestampMonotonic $t.service) != '$before' && \$(systemctl is-active $t.service) != activating ]]"
	local result
	result=$(systemctl show -P Result "$t.service")/$(systemctl show -P ExecMainStatus "$t.service")
	test_dropin "$t.timer" ""
	check "$t.timer fired, $t.service ran: $result" test "$result" = success/0
}

check_timers() {
	# An old message (past delete_mails_after) and a mailbox over its quota target.
	local cur=$MAILBOXES/$B/cur old big
	old=$cur/1600000000.M1P1.chatmail,S=100,W=100:2,S
	big=$cur/$(($(date +%s) - 2 * 86400)).M2P2.chatmail,S=1100000,W=1100000:2,S
	printf 'Subject: old\r\n\r\nold\r\n' >"$old"
	touch -d '30 days ago' "$old"
	head -c 1100000 /dev/zero >"$big"
	chown vmail:vmail "$old" "$big"
	run_timer chatmail-expire
	check "expire removed the message older than delete_mails_after" test ! -e "$old"
	check "expire's quota pass removed the oldest message of the mailbox over its quota" test ! -e "$big"
	check "expire wrote its textfile" test -s /var/lib/chatmail-metrics/expire.prom
	run_timer chatmail-fsreport
	check "fsreport wrote its textfile" test -s /var/lib/chatmail-metrics/fsreport.prom
}

# The sandbox in effect, seen from inside a service: a probe runs as its ExecStartPost= (same
# user, namespaces and filters) and tries to write into directories anyone may write
# (mode 1777), so only the sandbox can stop it. It reports to the journal.
PROBE_DIRS=(/etc/probe /usr/local/probe /var/lib/probe /run/probe /var/tmp/probe)
probe_service() { # probe_service SERVICE: the probe's report
	local s=$1 nonce=$RANDOM report="" i
	test_dropin "$s.service" $'[Service]\nExecStartPost=/usr/local/sbin/sandbox-probe '"$nonce ${PROBE_DIRS[*]} $MAILBOXES"
	systemctl restart "$s.service"
	for ((i = 0; i < 50; i++)); do
		report=$(journalctl -b -u "$s.service" -o cat | sed -n 's/^sandbox-probe: //p')
		[[ $report == *"begin $nonce"*Seccomp* ]] && break
		sleep 0.1
	done
	echo "${report##*"begin $nonce"}"
	test_dropin "$s.service" ""
	systemctl restart "$s.service"
}

check_sandbox() {
	local d report
	install -d -m 1777 "${PROBE_DIRS[@]}"
	touch /tmp/host-probe
	cat >/usr/local/sbin/sandbox-probe <<'PROBE'
#!/bin/sh
echo "sandbox-probe: begin $1"
shift
for d in "$@"; do
	if touch "$d/probe-$$" 2>/dev/null; then rm -f "$d/probe-$$"; echo "sandbox-probe: writes $d"; else echo "sandbox-probe: cannot write $d"; fi
done
echo "sandbox-probe: home: $(ls /home | tr '\n' ' ')"
test -e /tmp/host-probe && echo "sandbox-probe: shares /tmp" || echo "sandbox-probe: own /tmp"
echo "sandbox-probe: $(grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status | tr -s '\t\n' '  ')"
PROBE
	chmod 0755 /usr/local/sbin/sandbox-probe
	report=$(probe_service doveauth-http)
	echo "doveauth-http's probe: $(tr '\n' ';' <<<"$report")"
	for d in "${PROBE_DIRS[@]}"; do
		check "doveauth-http cannot write $d" grep -qx "cannot write $d" <<<"$report"
	done
	check "doveauth-http writes the mailbox tree" grep -qx "writes $MAILBOXES" <<<"$report"
	check "doveauth-http sees only vmail in /home" grep -qxE "home: vmail *" <<<"$report"
	check "doveauth-http has its own /tmp" grep -qx "own /tmp" <<<"$report"
	check "doveauth-http: no privileges ($(grep CapEff <<<"$report"))" \
		grep -q "CapEff: 0000000000000000 NoNewPrivs: 1 Seccomp: 2" <<<"$report"
	report=$(probe_service filtermail)
	echo "filtermail's probe: $(tr '\n' ';' <<<"$report")"
	check "filtermail cannot write /var/lib/probe" grep -qx "cannot write /var/lib/probe" <<<"$report"
	check "filtermail cannot write the mailbox tree" grep -qx "cannot write $MAILBOXES" <<<"$report"
	check "filtermail sees no home directory" grep -qxE "home: *" <<<"$report"
}

# `systemd-analyze security` of the running units against the offline rating: the same
# findings as `--offline=yes` on the installed files here, and the rating of
# scripts/check-units on the host. The one difference is PrivateMounts=, which the offline
# analysis rates as written (unset: 0.2) and a running systemd as the other namespacing
# options imply it (on).
failing_items() { awk '/^✗/ { print $2 }' | grep -vx 'PrivateMounts=' | sort | tr '\n' ' '; }
check_security() {
	local s live offline items_live items_offline
	for s in "${SERVICES[@]}" chatmail-expire chatmail-fsreport; do
		live=$(systemd-analyze security "$s.service" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
		offline=$(awk -v u="$s.service" '$1 == u { print $2 }' "$OFFLINE")
		items_live=$(systemd-analyze security "$s.service" 2>/dev/null | failing_items)
		items_offline=$(systemd-analyze security --offline=yes "$s.service" 2>/dev/null | failing_items)
		check "systemd-analyze security $s: live $live, offline $offline, the same findings live and offline" \
			awk -v l="$live" -v o="$offline" -v same="$([[ -n $items_live && $items_live == "$items_offline" ]] && echo 1)" \
			'BEGIN { exit !(same && l != "" && o != "" && o <= 2.0 && l <= o && o - l <= 0.21) }'
	done
}

check_journal() {
	local j
	j=$(journalctl -b --no-pager -o short)
	local line
	for line in ": Created address: $B" "registration rejected: " "Outgoing: Filtering encrypted mail." \
		"Rejected unencrypted mail" "Incoming: Filtering encrypted mail." "Incoming: Filtering unencrypted mail." \
		"Incoming: Filtering mailer-daemon message from" "quota-expire: removed 1 message(s) from $B"; do
		check "journal: '$line'" grep -qF -- "$line" <<<"$j"
	done
	local units=() s
	for s in "${SERVICES[@]}" chatmail-expire chatmail-fsreport; do units+=(-u "$s.service"); done
	local warnings
	warnings=$(journalctl -b --no-pager -o cat "${units[@]}" | grep -c warning)
	check "no lower-case 'warning' in the services' journal ($warnings)" test "$warnings" = 0
}

# dpkg -i of a newer version while logins go on: every service restarts, no login fails,
# the sockets stay as they were.
check_upgrade() {
	local s before=() sock_before=()
	for s in "${SERVICES[@]}"; do before+=("$(main_pid "$s")"); done
	for s in "${SOCKET_SERVICES[@]}"; do sock_before+=("$(systemctl show -P ActiveEnterTimestampMonotonic "$s.socket")"); done
	local stop=/tmp/upgrade.stop
	rm -f "$stop"
	mail logins "[$DOMAIN]" "$PASSWORD" "$stop" >/tmp/upgrade.out 2>/tmp/upgrade.err &
	local loop=$!
	mail sends "$A" "$PASSWORD" "$B" "$SRC/filtermail/tests/data/encrypted.eml" "$stop" >/tmp/upgrade-sends.out 2>/tmp/upgrade-sends.err &
	local sends=$!
	sleep 1
	check "dpkg -i $(basename "$NEWER") (upgrade)" install_package "$NEWER"
	sleep 1
	touch "$stop"
	wait "$loop" "$sends"
	local out
	out=$(cat /tmp/upgrade.out)
	check "logins during the upgrade: $out" no_failures "$out"
	out=$(cat /tmp/upgrade-sends.out)
	check "encrypted submissions during the upgrade: $out" no_failures "$out"
	[[ -s /tmp/upgrade-sends.err ]] && head -n 5 /tmp/upgrade-sends.err
	check "upgraded to $(dpkg-query -W -f='${Version}' chatmail-relay)" \
		test "$(dpkg-query -W -f='${Version}' chatmail-relay)" = "$(dpkg-deb -f "$NEWER" Version)"
	local i=0
	for s in "${SERVICES[@]}"; do
		check "$s restarted by the upgrade and active" bash -c "[[ $(main_pid "$s") != ${before[i]} ]] && [[ \$(systemctl is-active $s.service) == active ]]"
		i=$((i + 1))
	done
	i=0
	for s in "${SOCKET_SERVICES[@]}"; do
		check "$s.socket kept open through the upgrade" test "$(systemctl show -P ActiveEnterTimestampMonotonic "$s.socket")" = "${sock_before[i]}"
		i=$((i + 1))
	done
	check "encrypted submission after the upgrade" mail send "$A" "$PASSWORD" "$B" "$SRC/filtermail/tests/data/encrypted.eml"
}

data_digest() {
	(cd /home/vmail && find . -type f ! -name 'dovecot*' ! -name maildirsize -print0 | sort -z | xargs -0 sha256sum | sha256sum)
}

# dpkg -r: the replaced files and the reference's unit come back and run; mailboxes,
# accounts, chatmail.ini and the mail queue are as they were.
check_removal() {
	systemctl stop postfix.service dovecot.service
	local digest ini_digest queue
	digest=$(data_digest)
	ini_digest=$(sha256sum <"$INI")
	queue=$(find /var/spool/postfix/{incoming,active,deferred,hold,maildrop} -type f 2>/dev/null | sort | sha256sum)
	check "dpkg -r chatmail-relay" bash -c "DEBIAN_FRONTEND=noninteractive dpkg -r chatmail-relay >/tmp/dpkg-r.log 2>&1 || { cat /tmp/dpkg-r.log; false; }"
	check "the reference's doveauth is back" grep -q 'reference doveauth stand-in' /usr/local/lib/chatmaild/venv/bin/doveauth
	check "the reference's filtermail is back" grep -q 'reference filtermail stand-in' /usr/local/bin/filtermail
	check "the reference's doveauth.service is back, enabled and running" \
		bash -c "grep -q 'reference stand-in' /etc/systemd/system/doveauth.service && [[ \$(systemctl is-enabled doveauth.service) == enabled ]] && [[ \$(systemctl is-active doveauth.service) == active ]]"
	check "the package's units are gone" bash -c "! systemctl cat lastlogin.socket >/dev/null 2>&1 && [[ \$(systemctl is-active lastlogin.socket) != active ]]"
	check "mailboxes and accounts unchanged by the removal" test "$(data_digest)" = "$digest"
	check "chatmail.ini unchanged" test "$(sha256sum <"$INI")" = "$ini_digest"
	check "Postfix's queue unchanged" test "$(find /var/spool/postfix/{incoming,active,deferred,hold,maildrop} -type f 2>/dev/null | sort | sha256sum)" = "$queue"
	systemctl start postfix.service dovecot.service
}

check_reinstall() {
	check "dpkg -i $(basename "$NEWER") again" install_package "$NEWER"
	local s
	for s in "${SERVICES[@]}"; do check "$s active after the reinstall" active "$s.service"; done
	check "the reference's doveauth.service set aside again" bash -c "[[ \$(systemctl is-active doveauth.service) != active ]] && test ! -e /etc/systemd/system/doveauth.service"
	check "$A logs in with its old password (account kept)" mail login "$A" "$PASSWORD"
	check "$B still has its message" mail fetch "$B" "$PASSWORD" "BEGIN PGP MESSAGE"
	check "dpkg -P chatmail-relay then dpkg -i (purge keeps the data)" purge_reinstall
}
