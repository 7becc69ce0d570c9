# shellcheck shell=bash
# The relay of inside.sh, set up as a deployment does: chatmail.ini, the TLS certificate and
# Postfix/Dovecot's configuration (rendered by chatmail-render from the package's templates,
# before the package is installed, as a deployment's files exist before it), then Debian's
# postfix and dovecot units restarted with it.

SITE=/var/lib/chatmail-site
INI=/usr/local/lib/chatmaild/chatmail.ini

setup_relay() {
	local deb=$1 x=/tmp/chatmail-pkg
	rm -rf "$x"
	dpkg-deb -x "$deb" "$x"
	render() {
		"$x/usr/lib/chatmail-relay/bin/chatmail-render" --state "$SITE" --run /run/chatmail-site \
			--socket-root /run --templates "$x/usr/share/chatmail-relay/relay" "$@"
	}
	install -d -m 0755 "$SITE" /usr/local/lib/chatmaild
	# A small quota, so that the expiry timer's quota pass has work (check_timers); a send
	# rate that submissions in a loop stay within (check_upgrade).
	render ini --set "mailboxes_dir=$MAILBOXES" --set max_mailbox_size=1M \
		--set max_user_send_per_minute=6000 --set max_user_send_burst_size=1000 || fail "chatmail-render ini"
	render render || fail "chatmail-render render"
	install -m 0644 "$SITE/chatmail.ini" "$INI"
	site_certificate
	site_dovecot
	site_postfix
	getent passwd vmail >/dev/null || useradd --system --home-dir /home/vmail --no-create-home --shell /usr/sbin/nologin --user-group vmail
	install -d -m 0700 -o vmail -g vmail /home/vmail /home/vmail/mail "$MAILBOXES"
	systemctl restart postfix.service dovecot.service || fail "postfix and dovecot start with the relay's configuration"
}

site_certificate() {
	install -d -m 0755 "$SITE/tls"
	(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
		-subj "/CN=$DOMAIN" -addext "subjectAltName=IP:$DOMAIN" \
		-keyout "$SITE/tls/key.pem" -out "$SITE/tls/cert.pem" 2>/dev/null)
	chmod 0644 "$SITE/tls/cert.pem"
}

# Dovecot reads the rendered files where a deployment puts them (/etc/dovecot), with
# Debian's directories: its base directory, Postfix's queue for the LMTP and SASL sockets,
# logs to the journal, the quota warning script at the deployment's path.
site_dovecot() {
	local f
	for f in "$SITE"/dovecot/*; do
		sed -e "s#$SITE/dovecot/#/etc/dovecot/#g" -e "s#/run/chatmail-site/dovecot#/run/dovecot#" \
			-e "s#$SITE/spool/#/var/spool/postfix/#g" -e "s#^log_path = .*#log_path = syslog#" \
			-e "s#$SITE/bin/#/usr/local/lib/chatmaild/venv/bin/#g" "$f" >"/etc/dovecot/$(basename "$f")"
	done
	install -d -m 0755 "$SITE/dovecot-state"
}

# Postfix's files in /etc/postfix, its queue where Debian keeps it.
site_postfix() {
	local f
	for f in "$SITE"/postfix/*; do
		sed -e "s#$SITE/postfix/#/etc/postfix/#g" "$f" >"/etc/postfix/$(basename "$f")"
	done
	postconf -e queue_directory=/var/spool/postfix data_directory=/var/lib/postfix \
		maillog_file= syslog_name=postfix
	postconf -X maillog_file 2>/dev/null || true
}

# What the reference deployment leaves for the package to replace: its doveauth (here a
# stand-in that only runs) with its unit, enabled and running, and its filtermail.
reference_standin() {
	install -d -m 0755 /usr/local/lib/chatmaild/venv/bin /usr/local/bin
	printf '#!/bin/sh\n# reference doveauth stand-in\nexec sleep infinity\n' >/usr/local/lib/chatmaild/venv/bin/doveauth
	printf '#!/bin/sh\n# reference filtermail stand-in\nexec sleep infinity\n' >/usr/local/bin/filtermail
	chmod 0755 /usr/local/lib/chatmaild/venv/bin/doveauth /usr/local/bin/filtermail
	cat >/etc/systemd/system/doveauth.service <<UNIT
[Unit]
Description=Chatmail dict authentication proxy for dovecot (reference stand-in)

[Service]
ExecStart=/usr/local/lib/chatmaild/venv/bin/doveauth /run/doveauth/doveauth.socket $INI
Restart=always
User=vmail
RuntimeDirectory=doveauth

[Install]
WantedBy=multi-user.target
UNIT
	systemctl daemon-reload
	systemctl enable --now doveauth.service >/dev/null 2>&1 || fail "the reference stand-in starts"
}

install_package() {
	DEBIAN_FRONTEND=noninteractive dpkg -i "$1" >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; return 1; }
}
