# shellcheck shell=bash
# shellcheck disable=SC2154 # the configuration's variables come from relay-config.sh's load
# Logins for the local relay, for scripts/relay. Needs the configuration loaded by
# relay-config.sh (`load_settings`).

random_string() { # random_string ALPHABET LENGTH
	local out=""
	while [[ ${#out} -lt $2 ]]; do
		out+=$(head -c 256 /dev/urandom | LC_ALL=C tr -dc "$1" || true)
	done
	printf '%s' "${out:0:$2}"
}

# A new login. The account itself is created by doveauth on the first login (SPEC §3.4);
# `doveadm auth test` performs that login now, which also proves the auth chain works.
print_account() {
	local min=$USERNAME_MIN_LENGTH max=$USERNAME_MAX_LENGTH pwmin=$PASSWORD_MIN_LENGTH
	local local_part password addr url
	local_part=$(random_string 'a-z0-9' "$max")
	# Letters and digits only, so the dclogin: URL needs no percent-encoding.
	password=$(random_string 'A-Za-z0-9' "$((pwmin > 20 ? pwmin : 20))")
	addr="$local_part@$MAIL_DOMAIN"
	if [[ -n $IPV4_RELAY ]]; then
		url="dclogin:$addr?p=$password&v=1&ih=$IPV4_RELAY&sh=$IPV4_RELAY&ic=3"
	else
		url="dclogin:$addr?p=$password&v=1&ic=3"
	fi
	local lengths="$min to $max"
	[[ $min == "$max" ]] && lengths=$max
	local created="no (log in once to create it)"
	if doveadm -c "$DOVECOT_CONF" auth test "$addr" "$password" >/dev/null 2>&1; then
		created=yes
	fi
	cat <<EOT

  address:   $addr
  password:  $password
  created:   $created
  dclogin:   $url

  IMAP $MAIL_DOMAIN_BARE:993 (TLS) or :143 (STARTTLS), SMTP :465 (TLS) or :587 (STARTTLS).
  The certificate is self-signed: $TLS_CERT
  New accounts over HTTPS (the newemail CGI, POST): https://$MAIL_DOMAIN_BARE/new; invitations
  (chatmail-admin invite create) are dcaccount:https://$MAIL_DOMAIN_BARE/new?invite=TOKEN.
  Any name of $lengths characters from a-z0-9 at $MAIL_DOMAIN works, with a password of at
  least $pwmin characters: the first login creates the account.
EOT
}
