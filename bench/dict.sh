#!/usr/bin/env bash
# Measures doveauth and lastlogin beside the floor (a trivial dict server on the same
# kind of socket), in one run. Usage: bench/dict.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
target=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p doveauth -p lastlogin -p dict-load
bin=$target/release
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
mkdir "$dir/mail"
cat > "$dir/chatmail.ini" <<INI
[params]
mail_domain = bench.example.org
mailboxes_dir = $dir/mail
passdb_path = $dir/passdb.sqlite
max_load_1m = 1000
min_free_disk_space = 1M
min_available_memory = 1M
max_creations_per_minute = 0
INI
"$bin/dict-load" floor "$dir/floor.socket" & 
"$bin/doveauth" "$dir/auth.socket" "$dir/chatmail.ini" 2>/dev/null &
"$bin/lastlogin" "$dir/lastlogin.socket" "$dir/chatmail.ini" 2>/dev/null &
for s in floor auth lastlogin; do
  for _ in $(seq 100); do [ -S "$dir/$s.socket" ] && break; sleep 0.05; done
done
user=benchuser@bench.example.org
"$bin/dict-load" run "$dir/auth.socket" --conns 1 --seconds 1 \
  --request "Lshared/passdb/secret-password\"$user\\t$user" >/dev/null
echo "## existing-user passdb lookups"
for c in 1 8 64; do
  echo -n "floor     "; "$bin/dict-load" run "$dir/floor.socket" --conns $c --seconds "$secs" --request "Lshared/passdb/secret-password\"$user\\t$user"
  echo -n "doveauth  "; "$bin/dict-load" run "$dir/auth.socket" --conns $c --seconds "$secs" --request "Lshared/passdb/secret-password\"$user\\t$user"
done
echo "## account creation (unique addresses)"
for c in 1 8 64; do
  echo -n "doveauth  "; "$bin/dict-load" run "$dir/auth.socket" --conns $c --seconds "$secs" --request "Lshared/passdb/secret-password\"{n}@bench.example.org\\tx"
  rm -rf "$dir"/mail/[0-9]*@bench.example.org
done
echo "## lastlogin transactions (B, S, C per request)"
for c in 1 8 64; do
  echo -n "floor     "; "$bin/dict-load" run "$dir/floor.socket" --conns $c --seconds "$secs" --request "C1"
  echo -n "lastlogin "; "$bin/dict-load" run "$dir/lastlogin.socket" --conns $c --seconds "$secs" --request "B1\\t$user\\nS1\\tshared/last-login/$user\\t1700000123\\nC1"
done
