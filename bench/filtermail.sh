#!/bin/sh
# Throughput, latency and peak memory of filtermail (outgoing mode, encrypted mail) against
# the floor: the same load generator straight to its own SMTP sink, in the same run.
# Usage: bench/filtermail.sh [MESSAGES_PER_RUN]
set -eu
N=${1:-4000}
root=$(cd "$(dirname "$0")/.." && pwd)
T=${CARGO_TARGET_DIR:-$root/target-filtermail}
cargo build --release -q -p filtermail -p filtermail-load
LOAD=$T/release/filtermail-load
FM=$T/release/filtermail
EML=$root/filtermail/tests/data/encrypted.eml
dir=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
SINK=12525
FMP=12526

"$LOAD" sink $SINK & pids="$pids $!"
start_filter() {
    cat >"$dir/chatmail.ini" <<INI
[params]
mail_domain = chat.example.org
filtermail_smtp_port = $FMP
postfix_reinject_port = $SINK
max_user_send_per_minute = 100000000
max_user_send_burst_size = 100000000
mailboxes_dir = $dir
INI
    rm -f "$dir/filtermail.log"; : >"$dir/filtermail.log"
    "$FM" "$dir/chatmail.ini" outgoing 2>"$dir/filtermail.log" & fpid=$!
    pids="$pids $fpid"
    until grep -q loop "$dir/filtermail.log"; do sleep 0.05; done
}
start_filter

echo "## throughput ($N messages per run, one SMTP session per message)"
for n in 1 8 64; do
    printf 'floor  '; "$LOAD" send $SINK "$EML" $n "$N"
    printf 'filter '; "$LOAD" send $FMP "$EML" $n "$N"
done

# A ~20 MB encrypted message (PKESK + SEIPD of 15 MB, armored).
python3 - "$EML" "$dir/big.eml" <<'PY'
import base64, os, sys
src = open(sys.argv[1]).read().replace("\r", "")
head, _, _ = src.partition("-----BEGIN PGP MESSAGE-----")
pkesk = bytes([0xC1, 10]) + os.urandom(10)
body = os.urandom(15 * 1024 * 1024)
seipd = bytes([0xD2, 255]) + len(body).to_bytes(4, "big") + body
b64 = base64.b64encode(pkesk + seipd).decode()
lines = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
tail = "\n\n--YFrteb74qSXmggbOxZL9dRnhymywAi--\n"
open(sys.argv[2], "w").write(head + "-----BEGIN PGP MESSAGE-----\n\n" + lines + "\n-----END PGP MESSAGE-----\n" + tail)
PY
echo "## peak memory with a $(($(stat -c %s "$dir/big.eml") / 1048576)) MiB message"
for n in 1 8; do
    kill "$fpid"; wait "$fpid" 2>/dev/null || true
    start_filter
    base=$(awk '/VmRSS/ {print $2}' /proc/$fpid/status)
    "$LOAD" send $FMP "$dir/big.eml" $n $n >/dev/null
    peak=$(awk '/VmHWM/ {print $2}' /proc/$fpid/status)
    echo "senders=$n idle_rss=${base}KiB peak_rss=${peak}KiB per_message=$(( (peak - base) / n ))KiB"
done
