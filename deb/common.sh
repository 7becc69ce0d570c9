# The maintainer scripts' shared part (prepended to each by scripts/build-deb, after the
# generated lists BINS, VENV_BINS, LOCAL_BINS, UNIT_FILES, DROPINS).
LIB=/usr/lib/chatmail-relay/bin
VENV=/usr/local/lib/chatmaild/venv/bin
SAVE=/var/lib/chatmail-relay/replaced
# The files the package replaces: the reference deployment's entry points (NAME in the
# virtualenv, filtermail and chatmail-admin in /usr/local/bin, the newemail CGI) become links
# to this package's binaries.
links() {
	local b
	for b in $VENV_BINS; do echo "$VENV/$b $LIB/$b"; done
	for b in $LOCAL_BINS; do echo "/usr/local/bin/$b $LIB/$b"; done
	echo "/usr/lib/cgi-bin/newemail.py $LIB/chatmail-newemail"
}
# Units in /etc/systemd/system take precedence over the package's; a deployment's ones with
# the same names are moved aside so the package's apply.
shadowing_units() {
	local u
	for u in $UNIT_FILES $DROPINS; do echo "/etc/systemd/system/$u"; done
}
systemd_running() { [ -d /run/systemd/system ]; }
say() { echo "chatmail-relay: $*" >&2; }
