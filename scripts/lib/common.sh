# shellcheck shell=bash
# Sourced by every script: messages prefixed with the script's name, the root check, and the
# system user vmail the services run as.

say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# need_root WHY: exit unless running as root.
need_root() {
	[[ $(id -u) -eq 0 ]] || die "run as root ($1)"
}

# The system user the services, the mailboxes and Dovecot's mail processes belong to.
ensure_vmail() {
	if ! getent passwd vmail >/dev/null; then
		say "creating system user vmail"
		useradd --system --create-home --home-dir /home/vmail --shell /usr/sbin/nologin --user-group vmail
	fi
}
