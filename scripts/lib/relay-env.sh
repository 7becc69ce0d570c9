# shellcheck shell=bash
# shellcheck disable=SC2034 # read by the scripts that source this file
# The local relay's settings from its environment (documented in scripts/relay): its three
# directories, everything else in them being chatmail-render's layout; the cargo profile
# and where the binaries are; Dovecot's auth mode. Needs binaries.sh and REPO.

RUN=${CHATMAIL_RELAY_RUN:-/run/chatmail-local}
# A running relay remembers its state directory, so stop/status find it whatever the default.
if [[ -z ${CHATMAIL_RELAY_DIR:-} && -s $RUN/state_dir ]]; then
	STATE=$(<"$RUN/state_dir")
else
	STATE=${CHATMAIL_RELAY_DIR:-/var/lib/chatmail-local}
fi
SOCKET_ROOT=${CHATMAIL_SOCKET_ROOT:-/run}
TEMPLATES=$REPO/relay
PROFILE=${CHATMAIL_PROFILE:-debug}
AUTH_MODE=${CHATMAIL_RELAY_AUTH:-lua}
IFS=: read -r -a BIN_DIRS <<<"${CHATMAIL_BIN_DIRS:-$(target_dir "$PROFILE")}"
