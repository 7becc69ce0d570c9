#!/bin/sh
# Wall time of chatmail-expire (dry run) and chatmail-fsreport beside the floor
# `find DIR -printf '%s %T@\n'` on the same tree, warm cache, rounds alternated.
# usage: run-bench.sh TREE_DIR [ROUNDS]   (TREE_DIR made by gen-tree; binaries from
# $BIN, default $CARGO_TARGET_DIR/release or target/release)
set -eu
tree=$1
rounds=${2:-3}
bin=${BIN:-${CARGO_TARGET_DIR:-$(dirname "$0")/../../target}/release}
t() { /usr/bin/time -f "%e s wall, %U s user, %S s sys :: $1" sh -c "$2" 2>&1 >/dev/null | tail -n 1; }
# Warm the cache.
find "$tree/mail" -printf '%s %T@\n' >/dev/null
i=0
while [ "$i" -lt "$rounds" ]; do
    t find "find '$tree/mail' -printf '%s %T@\n'"
    t chatmail-expire "'$bin/chatmail-expire' '$tree/chatmail.ini'"
    t chatmail-fsreport "'$bin/chatmail-fsreport' '$tree/chatmail.ini'"
    i=$((i + 1))
done
