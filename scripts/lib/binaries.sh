# shellcheck shell=bash
# shellcheck disable=SC2034 # the lists are read by the scripts that source this file
# The workspace's binaries, in one place: which there are, where a deployment puts them,
# and how they are built. Needs common.sh; REPO is the repository.

# Installed where the Python chatmaild's virtualenv had its entry points, which the units
# and a deployment's configuration name (SPEC §10.1).
VENV_BINS=(doveauth lastlogin chatmail-metadata chatmail-expire chatmail-quota-expire chatmail-fsreport chatmail-newemail chatmail-exporter)
# Installed in /usr/local/bin: filtermail where the reference's is, and the operator's CLI.
LOCAL_BINS=(filtermail chatmail-admin)
# The one other binary, chatmail-render, is the local relay's configuration tool: scripts/relay
# runs it from the build and nothing installs it.

# The cargo profile's output directory.
target_dir() { # target_dir PROFILE
	printf '%s/%s' "${CARGO_TARGET_DIR:-$REPO/target}" "$1"
}

# cargo_build PROFILE [PACKAGE]: cargo build of every binary of the workspace (or of one
# package), in PROFILE (debug or release).
cargo_build() {
	local flags=()
	[[ $1 == release ]] && flags+=(--release)
	if [[ -n ${2:-} ]]; then flags+=(-p "$2"); else flags+=(--workspace); fi
	say "building (cargo build ${flags[*]} --bins)"
	(cd "$REPO" && cargo build "${flags[@]}" --bins)
}

workspace_members() {
	sed -n '/^members *= *\[/,/\]/p' "$REPO/Cargo.toml" | grep -o '"[^"]*"' | tr -d '"'
}

# cargo_build_each PROFILE: each member on its own, so one that does not build costs only
# its own binaries.
cargo_build_each() {
	local member name
	for member in $(workspace_members); do
		name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$REPO/$member/Cargo.toml" | head -n1)
		[[ -n $name ]] || continue
		cargo_build "$1" "$name" || say "warning: package $name does not build; its binaries are skipped"
	done
}

find_cargo() {
	if command -v cargo >/dev/null; then return 0; fi
	if [[ -x $HOME/.cargo/bin/cargo ]]; then
		export PATH=$HOME/.cargo/bin:$PATH
		return 0
	fi
	return 1
}

# Rust from rustup: Debian's own rustc is too old for this edition-2024 workspace.
install_rust() {
	find_cargo && return 0
	[[ -n ${CHATMAIL_NO_APT:-} ]] && die "cargo not found; install Rust (https://rustup.rs) or set CHATMAIL_NO_BUILD=1"
	apt_install curl ca-certificates
	say "installing Rust with rustup (minimal profile)"
	curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >&2
	find_cargo || die "rustup did not install cargo"
}

# find_binary NAME DIR...: the first executable NAME in the DIRs (nothing if none).
find_binary() {
	local name=$1 d
	shift
	for d in "$@"; do
		[[ -x $d/$name ]] && { printf '%s' "$d/$name"; return 0; }
	done
	return 0
}

# install_file MODE SOURCE TARGET: replace TARGET atomically, so a running process keeps
# its old file until it restarts.
install_file() {
	install -d -m 0755 "$(dirname "$3")"
	install -m "$1" "$2" "$3.new"
	mv -f "$3.new" "$3"
}
