#!/bin/bash
# The package under a real systemd: run by scripts/systemd-test inside a booted Debian
# container (systemd as PID 1, Postfix, Dovecot and nginx from Debian), as root.
#
#   inside.sh DEB NEWER_DEB OFFLINE_SECURITY
#
# Sets up a relay the way a deployment does (chatmail.ini and the Postfix/Dovecot
# configuration rendered by the package's chatmail-render, a stand-in for the reference's
# doveauth), installs DEB with dpkg, checks the services, the watchdog, socket activation,
# the timers, the sandbox, the mail flow, /new through nginx and the journal, upgrades to NEWER_DEB while logins
# go on, removes the package (the stand-in comes back, no data is lost) and installs it
# again. OFFLINE_SECURITY holds `UNIT LEVEL` lines of scripts/check-units for comparison.
# Prints "ok: ..." or "FAIL: ..." per check; exits 1 if any failed.
set -uo pipefail
DEB=$1 NEWER=$2 OFFLINE=$3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)

FAILS=0
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
# check WHAT CMD...: CMD's status decides.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
# wait_until SECONDS CMD...: CMD succeeds within SECONDS.
wait_until() {
	local n=$(($1 * 10))
	shift
	while ((n-- > 0)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

mail() { python3 "$HERE/mail.py" "$@"; }
DOMAIN=127.0.0.1
MAILBOXES=/home/vmail/mail/$DOMAIN
# shellcheck source=setup.sh
source "$HERE/setup.sh"
# shellcheck source=checks.sh
source "$HERE/checks.sh"

setup_relay "$DEB"
reference_standin
check "dpkg -i $(basename "$DEB")" install_package "$DEB"
check_services
check_readiness
check_watchdog
check_socket_activation
check_mail_flow
check_newemail
check_timers
check_sandbox
check_security
check_journal
check_upgrade
check_removal
check_reinstall
echo "$FAILS failed"
[[ $FAILS -eq 0 ]]
