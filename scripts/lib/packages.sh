# shellcheck shell=bash
# shellcheck disable=SC2034 # the lists are read by the scripts that source this file
# The Debian packages of the project, in one place, and how they are installed.
# Needs common.sh.

# What a local relay runs (scripts/relay installs them; the Debian 13 root of
# scripts/debian13 is built with them): Postfix, Dovecot with Lua auth, nginx and fcgiwrap
# for the newemail CGI, openssl for the certificate. (The Debian 13 root's stamp lists them
# in this order: a new order rebuilds it.)
RELAY_PACKAGES=(dovecot-core dovecot-imapd dovecot-lmtpd dovecot-auth-lua postfix nginx fcgiwrap openssl ca-certificates)
# The commands scripts/relay itself uses besides coreutils (ss, ps, ip), where a minimal root
# lacks them.
RELAY_TOOL_PACKAGES=(procps iproute2)
# Building the workspace (Rust itself comes from rustup): a C compiler and SQLite for
# rusqlite.
BUILD_PACKAGES=(build-essential pkg-config libsqlite3-dev)
# The end-to-end tests' Python virtualenv (pytest and a Delta Chat client).
E2E_PACKAGES=(python3 python3-venv)
# The rest of scripts/test: systemd-analyze (scripts/check-units), debootstrap (the Debian
# 13 root), strace (tests/tests/durability.rs), prometheus and its promtool
# (scripts/check-alerts, tests/e2e/test_prometheus.py), mtail (tests/e2e/test_mtail.py),
# man-db (tests/tests/manual.rs renders the man pages), systemd-container and lintian (the
# package under a real systemd, scripts/systemd-test, and its check in scripts/build-deb).
TEST_PACKAGES=(systemd debootstrap strace prometheus mtail man-db systemd-container lintian)

pkg_installed() {
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# apt_install PACKAGE...: install the missing ones without starting their services (the
# distribution's Postfix and Dovecot would take the mail ports a local relay needs), and
# without Postfix writing /etc/postfix/main.cf. CHATMAIL_NO_APT=1 turns a missing package
# into an error.
apt_install() {
	local missing=() p
	for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	[[ -n ${CHATMAIL_NO_APT:-} ]] && die "missing Debian packages: ${missing[*]} (CHATMAIL_NO_APT is set)"
	command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get: install them by hand"
	say "installing Debian packages: ${missing[*]}"
	local guard=""
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		guard=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\n# installed by %s during apt-get; removed afterwards\nexit 101\n' "$(basename "$0")" >"$guard"
		chmod 0755 "$guard"
	fi
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
	local rc=0
	{ DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" ||
		{ DEBIAN_FRONTEND=noninteractive apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }; } >&2 || rc=$?
	[[ -n $guard ]] && rm -f "$guard"
	[[ $rc -eq 0 ]] || die "apt-get install failed"
}
