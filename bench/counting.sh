#!/usr/bin/env bash
# What counting costs: doveauth and filtermail built without metrics (BEFORE) and with them
# (AFTER), each beside the floor, in one run, in alternating order.
#
#   bench/counting.sh BEFORE_DIR AFTER_DIR [ROUNDS] [SECONDS] [MESSAGES]
#
# Each *_DIR holds release builds of doveauth, filtermail, dict-load and filtermail-load
# (e.g. `git archive <commit> | tar -x -C /tmp/before`, then `cargo build --release -p ...`
# there and here; cargo reuses the dependencies of a shared CARGO_TARGET_DIR but may take
# the other tree's workspace crates for fresh: `cargo clean --release -p doveauth -p
# filtermail -p chatmaild` between the two builds). The load generators of AFTER_DIR drive
# both. Prints one line per measurement; BENCHMARKS.md takes the medians.
set -euo pipefail
before=$1 after=$2
rounds=${3:-3} secs=${4:-3} msgs=${5:-2000}
load=$after/dict-load
fload=$after/filtermail-load
eml=$(cd "$(dirname "$0")/.." && pwd)/filtermail/tests/data/encrypted.eml
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
mkdir "$dir/mail"
cat >"$dir/chatmail.ini" <<INI
[params]
mail_domain = bench.example.org
mailboxes_dir = $dir/mail
passdb_path = $dir/passdb.sqlite
max_load_1m = 1000
min_free_disk_space = 1M
min_available_memory = 1M
max_creations_per_minute = 0
filtermail_smtp_port = 12536
postfix_reinject_port = 12535
max_user_send_per_minute = 100000000
max_user_send_burst_size = 100000000
INI
cp "$dir/chatmail.ini" "$dir/chatmail2.ini"
sed -i 's/^filtermail_smtp_port = .*/filtermail_smtp_port = 12537/' "$dir/chatmail2.ini"

"$load" floor "$dir/floor.socket" &
"$before/doveauth" "$dir/before.socket" "$dir/chatmail.ini" 2>/dev/null &
CHATMAIL_METRICS_SOCKET=$dir/after-metrics.socket "$after/doveauth" "$dir/after.socket" "$dir/chatmail.ini" 2>/dev/null &
"$fload" sink 12535 &
"$before/filtermail" "$dir/chatmail.ini" outgoing 2>"$dir/fm-before.log" &
fm_before=$!
CHATMAIL_METRICS_SOCKET=$dir/fm-metrics.socket "$after/filtermail" "$dir/chatmail2.ini" outgoing 2>"$dir/fm-after.log" &
fm_after=$!
for s in floor before after; do
	for _ in $(seq 100); do [[ -S $dir/$s.socket ]] && break; sleep 0.05; done
done
until grep -q loop "$dir/fm-before.log" && grep -q loop "$dir/fm-after.log"; do sleep 0.05; done

user=benchuser@bench.example.org
lookup="Lshared/passdb/secret-password\"$user\\t$user"
"$load" run "$dir/after.socket" --conns 1 --seconds 1 --request "$lookup" >/dev/null

# cpu PID: utime+stime in clock ticks.
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

for r in $(seq "$rounds"); do
	order=(before after)
	((r % 2 == 0)) && order=(after before)
	for c in 1 8 64; do
		echo "dict-lookup round=$r floor $("$load" run "$dir/floor.socket" --conns $c --seconds "$secs" --request "$lookup")"
		for v in "${order[@]}"; do
			echo "dict-lookup round=$r $v $("$load" run "$dir/$v.socket" --conns $c --seconds "$secs" --request "$lookup")"
		done
	done
	for v in "${order[@]}"; do
		echo "dict-create round=$r $v $("$load" run "$dir/$v.socket" --conns 8 --seconds "$secs" --request "Lshared/passdb/secret-password\"{n}@bench.example.org\\tx")"
		rm -rf "$dir"/mail/[0-9]*@bench.example.org
	done
	for n in 1 8 64; do
		echo "filter round=$r floor $("$fload" send 12535 "$eml" $n "$msgs")"
		for v in "${order[@]}"; do
			port=12536 pid=$fm_before
			[[ $v == after ]] && port=12537 pid=$fm_after
			t0=$(cpu $pid)
			out=$("$fload" send $port "$eml" $n "$msgs")
			t1=$(cpu $pid)
			echo "filter round=$r $v $out cpu_us_per_msg=$(((t1 - t0) * 1000000 / $(getconf CLK_TCK) / msgs))"
		done
	done
done
