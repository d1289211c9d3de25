#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Idempotent setup: apt packages, bindgen-cli, virtme-ng, the Linux 7.3 source and the
# kernel builds. Each step is skipped when already done.  Usage: setup.sh [debug] [release]
set -euo pipefail
. "$(dirname "$0")/env.sh"

variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(debug release)

APT_PKGS=(rustc-web rust-web-src clang-22 lld-22 llvm-22 libclang-22-dev flex bison bc
	libelf-dev libssl-dev cpio kmod xz-utils qemu-system-x86 busybox-static udev
	python3-venv gcc make rust-web-clippy dkms)

step_apt() {
	local missing=()
	for p in "${APT_PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	step "apt: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || die "step apt: apt-get update failed"
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "step apt: apt-get install ${missing[*]} failed"
}

step_bindgen() {
	[ -x "$CODA_CACHE/bindgen/bin/bindgen" ] &&
		"$CODA_CACHE/bindgen/bin/bindgen" --version | grep -q 0.72.1 && return 0
	step "bindgen-cli 0.72.1"
	cargo install bindgen-cli --version 0.72.1 --locked --root "$CODA_CACHE/bindgen" -q ||
		die "step bindgen: cargo install bindgen-cli failed"
}

step_vng() {
	[ -x "$CODA_CACHE/venv/bin/vng" ] && return 0
	step "virtme-ng"
	python3 -m venv "$CODA_CACHE/venv" || die "step virtme-ng: python3 -m venv failed"
	"$CODA_CACHE/venv/bin/pip" install -q virtme-ng==1.42 ||
		die "step virtme-ng: pip install virtme-ng failed"
}

# Linux 7.3 from trixie-backports through a private apt configuration: the machine's own
# apt sources stay untouched.
step_source() {
	[ -f "$KSRC/Makefile" ] && [ -f "$CODA_CACHE/src/version" ] && return 0
	step "Linux $KVER_SERIES source"
	local a=$CODA_CACHE/apt uri
	uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
	[ -n "$uri" ] || uri=http://deb.debian.org/debian
	mkdir -p "$a/sources" "$a/lists/partial" "$a/cache/archives/partial" "$CODA_CACHE/src"
	cat >"$a/sources/debian.sources" <<SRC
Types: deb
URIs: $uri
Suites: trixie-backports trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	local apto=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$a/sources"
		-o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache")
	apt-get "${apto[@]}" update -qq || die "step source: private apt-get update failed"
	(cd "$a" && rm -f linux-source-*.deb &&
		apt-get "${apto[@]}" download "linux-source-$KVER_SERIES" 2>&1 | grep -v unsandboxed) ||
		true
	local deb
	deb=$(ls "$a"/linux-source-"$KVER_SERIES"_*.deb 2>/dev/null | head -1)
	[ -n "$deb" ] || die "step source: apt-get download linux-source-$KVER_SERIES failed"
	rm -rf "$a/x" "$KSRC"
	dpkg-deb -x "$deb" "$a/x" || die "step source: dpkg-deb -x failed"
	tar -C "$CODA_CACHE/src" -xf "$a/x/usr/src/linux-source-$KVER_SERIES.tar.xz" ||
		die "step source: untar failed"
	rm -rf "$a/x"
	dpkg-deb -f "$deb" Version >"$CODA_CACHE/src/version"
}

# progress LABEL LOG CMD...: runs CMD with its output in LOG and, every PROGRESS_SECS
# (60) seconds, prints one line: the build steps kbuild has reported (its CC, RUSTC, LD
# ... lines), of the count the last full run of LABEL reported once there was one, and
# the time elapsed. Returns CMD's status.
progress() {
	local label=$1 log=$2 pid rc n last=$SECONDS start=$SECONDS total=
	local count=$CODA_CACHE/progress-$label.count
	shift 2
	[ -f "$count" ] && total=$(cat "$count")
	"$@" >"$log" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 2
		[ $((SECONDS - last)) -ge "${PROGRESS_SECS:-60}" ] || continue
		last=$SECONDS
		n=$(grep -cE '^  [A-Z]' "$log")
		printf '    %s: %d%s build steps, %d s\n' "$label" "$n" "${total:+ of ~$total}" \
			$((SECONDS - start)) >&2
	done
	wait "$pid"
	rc=$?
	[ "$rc" = 0 ] && grep -cE '^  [A-Z]' "$log" >"$count"
	printf '    %s: done in %d s (exit %d)\n' "$label" $((SECONDS - start)) "$rc" >&2
	return "$rc"
}

# phase NAME CMD...: runs CMD and records how long it took, for the summary at the end.
phase_times=()
phase() {
	local name=$1 t=$SECONDS
	shift
	"$@"
	phase_times+=("$name $((SECONDS - t)) s")
}

# Every CONFIG_X=y/m a fragment asks for must be in the final .config.
check_config() {
	local dir=$1 frag=$2 line opt val
	while read -r line; do
		case $line in CONFIG_*=*) ;; *) continue ;; esac
		opt=${line%%=*} val=${line#*=}
		grep -qx "$opt=$val" "$dir/.config" ||
			die "kernel config: $opt=$val was requested but is not in $dir/.config (a dependency is missing)"
	done <"$frag"
}

step_kernel() {
	local variant=$1 dir frag
	dir=$(kbuild_dir "$variant")
	[ -f "$dir/.built" ] && return 0
	step "kernel build ($variant) in $dir"
	mkdir -p "$dir"
	frag=$dir/fragment.config
	cat "$REPO_ROOT/config/base.config" "$REPO_ROOT/config/$variant.config" >"$frag"
	make -s -C "$KSRC" O="$dir" "${KMAKE_VARS[@]}" KCONFIG_ALLCONFIG="$frag" allnoconfig \
		>"$dir/config.log" 2>&1 || die "step kernel ($variant): allnoconfig failed, see $dir/config.log"
	check_config "$dir" "$frag"
	progress "kernel-$variant" "$dir/build.log" \
		make -C "$KSRC" O="$dir" "${KMAKE_VARS[@]}" -j"$(nproc)" bzImage modules ||
		{ tail -30 "$dir/build.log" >&2; die "step kernel ($variant): build failed, see $dir/build.log"; }
	touch "$dir/.built"
	# Keep only the newest build of each variant.
	find "$CODA_CACHE/kbuild" -maxdepth 1 -name "$variant-*" ! -path "$dir" -exec rm -rf {} +
}

phase apt step_apt
phase bindgen step_bindgen
phase virtme-ng step_vng
phase source step_source
make -s -C "$KSRC" "${KMAKE_VARS[@]}" rustavailable >/dev/null 2>&1 ||
	die "step rustavailable: the kernel does not accept this Rust toolchain: run make -C $KSRC ${KMAKE_VARS[*]} rustavailable"
for v in "${variants[@]}"; do phase "kernel-$v" step_kernel "$v"; done
printf 'setup phases: %s\n' "$(IFS=,; echo "${phase_times[*]}" | sed 's/,/, /g')" >&2
