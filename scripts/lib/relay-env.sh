# shellcheck shell=bash
# shellcheck disable=SC2034 # read by the scripts that source this file
# The local relay's settings from its environment (documented in scripts/relay): which relay
# of this machine it is, its three directories, everything else in them being
# chatmail-render's layout; the cargo profile and where the binaries are; Dovecot's auth
# mode. Needs common.sh, binaries.sh and REPO.

# Relay N of this machine listens on 127.0.0.N (chatmail-render's layout); relay 1 is the
# default one. The others get directories of their own, suffixed with -N.
INSTANCE=${CHATMAIL_RELAY_INSTANCE-1}
[[ $INSTANCE =~ ^[1-9][0-9]{0,2}$ && $INSTANCE -le 254 ]] || die "instance $INSTANCE: expected a number from 1 to 254"
if [[ $INSTANCE == 1 ]]; then SUFFIX=""; else SUFFIX=-$INSTANCE; fi
RUN=${CHATMAIL_RELAY_RUN:-/run/chatmail-local$SUFFIX}
# A running relay remembers its state directory, so stop/status find it whatever the default.
if [[ -z ${CHATMAIL_RELAY_DIR:-} && -s $RUN/state_dir ]]; then
	STATE=$(<"$RUN/state_dir")
else
	STATE=${CHATMAIL_RELAY_DIR:-/var/lib/chatmail-local$SUFFIX}
fi
# Relay 1's daemons have their sockets where a deployed relay has them (/run/doveauth, ...);
# another relay's are in its run directory.
if [[ $INSTANCE == 1 ]]; then
	SOCKET_ROOT=${CHATMAIL_SOCKET_ROOT:-/run}
else
	SOCKET_ROOT=${CHATMAIL_SOCKET_ROOT:-$RUN/services}
fi
TEMPLATES=$REPO/relay
PROFILE=${CHATMAIL_PROFILE:-debug}
AUTH_MODE=${CHATMAIL_RELAY_AUTH:-lua}
IFS=: read -r -a BIN_DIRS <<<"${CHATMAIL_BIN_DIRS:-$(target_dir "$PROFILE")}"
