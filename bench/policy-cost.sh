#!/bin/sh
# Instructions per message of filtermail's encryption policy (check_outgoing and
# check_incoming of filtermail/examples/policy_cost.rs), counted by callgrind: this checkout
# against BASE (a commit), same example, same inputs, so the ratio is exact whatever else
# the machine does. Usage: bench/policy-cost.sh BASE [ITERATIONS]
set -eu
BASE=$1
N=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
T=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$root" worktree add --detach "$work/base" "$BASE" >/dev/null 2>&1
cp "$root/filtermail/examples/policy_cost.rs" "$work/base/filtermail/examples/"
(cd "$root" && cargo build --release -q -p filtermail --example policy_cost)
(cd "$work/base" && CARGO_TARGET_DIR=$T/policy-cost-base cargo build --release -q -p filtermail --example policy_cost)
ir() { # binary eml kib iterations -> instructions of the whole run
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$1" "$2" "$3" "$4" >/dev/null 2>"$work/cg.log"
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/cg.log"
}
count() { # binary eml kib -> instructions per check (set-up, counted by a run of 0, excluded)
    echo $((($(ir "$1" "$2" "$3" "$N") - $(ir "$1" "$2" "$3" 0)) / (2 * N)))
}
EML=$root/filtermail/tests/data/encrypted.eml
printf '| message | base instructions/check | this instructions/check | ratio |\n|---|---:|---:|---:|\n'
for kib in 0 64 1024; do
    b=$(count "$T/policy-cost-base/release/examples/policy_cost" "$EML" "$kib")
    h=$(count "$T/release/examples/policy_cost" "$EML" "$kib")
    printf '| encrypted, payload %s KiB | %s | %s | %s |\n' "$kib" "$b" "$h" "$(echo "scale=3; $h / $b" | bc)"
done
