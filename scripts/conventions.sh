#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Host checks of the kernel tree's conventions (scripts/test.sh runs them), one TAP line
# each: kbuild's own `make -C KDIR M=DIR` builds the module; DKMS builds and installs both
# modules (the guest then loads them: tests/guest-install.sh); `make rust-analyzer`'s
# rust-project.json is sound and rust-analyzer analyses it; checkpatch.pl of the fetched
# kernel passes fs/coda-rs/shim.c, coda_rs.h and fs-coda.patch without errors; every
# source and script file has an SPDX line; get_maintainer.pl finds every file in
# MAINTAINERS.
# usage: scripts/conventions.sh KDIR OUTDIR   (OUTDIR/dkms/modules: the DKMS install tree)
set -uo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"
kdir=${1:?usage: $0 KDIR OUTDIR} out=${2:?usage: $0 KDIR OUTDIR}
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
rel=$(cat "$kdir/include/config/kernel.release")
fails=0
pass() { echo "ok - $1"; }
fail() { fails=$((fails + 1)); echo "not ok - $1"; shift; [ $# -gt 0 ] && printf '#   %s\n' "$@"; }
# result NAME LOG STATUS: pass or fail, with the log's tail on failure.
result() {
	if [ "$3" = 0 ]; then pass "$1"; else fail "$1" "see $2" "$(tail -5 "$2" 2>/dev/null)"; fi
}

# --- kbuild's own invocation, on a copy of the module's sources (make dkms-src's list)
make -s dkms-src DESTDIR="$out/copy" >"$out/copy.log" 2>&1
src=$out/copy/usr/src/coda-psdev-$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' dkms.conf)
make -C "$kdir" M="$src" "${KMAKE_VARS[@]}" modules >"$out/kbuild-m.log" 2>&1 &&
	[ "$(modinfo -F name "$src/coda_psdev.ko")" = coda_psdev ]
result "make -C KDIR M=\$PWD builds coda_psdev.ko (kbuild's convention)" "$out/kbuild-m.log" $?

# --- DKMS: add, build, install against the kernel build tree, in private trees
d=$out/dkms
mkdir -p "$d/tree" "$d/modules/$rel"
t=(--sourcetree "$out/copy/usr/src" --dkmstree "$d/tree" --installtree "$d/modules")
ver=${src##*coda-psdev-}
{
	dkms add -m coda-psdev -v "$ver" "${t[@]}" &&
		dkms build -m coda-psdev -v "$ver" -k "$rel" --kernelsourcedir "$kdir" "${t[@]}" &&
		dkms install -m coda-psdev -v "$ver" -k "$rel" --kernelsourcedir "$kdir" --no-depmod "${t[@]}"
} >"$d/dkms.log" 2>&1
result "dkms add, build, install coda-psdev/$ver for $rel (--kernelsourcedir)" "$d/dkms.log" $?
dm=$d/modules/$rel/updates/dkms
[ -f "$dm/coda_psdev.ko" ] && [ "$(modinfo -F depends "$dm/coda_rs_fs.ko" 2>/dev/null)" = coda_psdev ] &&
	dkms status -m coda-psdev "${t[@]}" 2>&1 | grep -q "$rel, .*: installed"
result "dkms installed coda_psdev.ko and coda_rs_fs.ko (which depends on it)" "$d/dkms.log" $?

# --- rust-analyzer: the project file make rust-analyzer writes, then rust-analyzer on it
make -s KDIR="$kdir" rust-analyzer >"$out/rust-analyzer.log" 2>&1 &&
	python3 - >>"$out/rust-analyzer.log" 2>&1 <<'EOF'
import json, os, sys
p = json.load(open("rust-project.json"))
crates, bad = p["crates"], []
for i, c in enumerate(crates):
    root = c["root_module"] if os.path.isabs(c["root_module"]) else os.path.abspath(c["root_module"])
    if not os.path.isfile(root):
        bad.append(f"crate {c.get('display_name')}: no root module {root}")
    for dep in c["deps"]:
        if not 0 <= dep["crate"] < i:
            bad.append(f"crate {c.get('display_name')}: dependency index {dep['crate']} out of order")
# The generator scans the tree, results/ included (this script's own source copy there).
ours = [c for c in crates if c.get("display_name") == "coda_psdev"
        and os.path.abspath(c["root_module"]) == os.path.abspath("coda_psdev.rs")]
if len(ours) != 1:
    bad.append("no crate coda_psdev rooted at coda_psdev.rs")
else:
    deps = {crates[d["crate"]].get("display_name") for d in ours[0]["deps"]}
    for want in ("core", "kernel", "zerocopy"):
        if want not in deps:
            bad.append(f"coda_psdev does not depend on {want}")
    if "CONFIG_RUST" not in ours[0].get("cfg", []):
        bad.append("coda_psdev lacks the kernel's cfg (CONFIG_RUST)")
if not os.path.isdir(os.path.join(p.get("sysroot", ""), "lib/rustlib/src/rust/library/core")):
    bad.append(f"sysroot {p.get('sysroot')} has no core library source")
print("\n".join(bad) or f"rust-project.json: {len(crates)} crates, all roots present")
sys.exit(1 if bad else 0)
EOF
result "make rust-analyzer: rust-project.json names existing roots, ordered deps, coda_psdev on kernel" \
	"$out/rust-analyzer.log" $?
ra=$HOME/.cargo/bin/rust-analyzer
if ! "$ra" --version >/dev/null 2>&1; then
	rustup component add rust-analyzer >>"$out/rust-analyzer.log" 2>&1
fi
# Type inference over every crate of the project, ours included: a project file that lost
# a crate, a cfg or an edition leaves types unknown (1% here; the bound is 5%) or panics.
timeout 600 "$ra" analysis-stats --skip-mir-stats --skip-data-layout --skip-const-eval . 2>&1 |
	tr '\r' '\n' | grep -vE '^[0-9]+/[0-9]+ |processing' >"$out/analysis-stats.log"
ra_rc=${PIPESTATUS[0]}
unknown=$(sed -n 's/.*??ty: [0-9]* (\([0-9]*\)%).*/\1/p' "$out/analysis-stats.log" | tail -1)
[ "$ra_rc" = 0 ] && grep -q 'panics: 0$' "$out/analysis-stats.log" && [ -n "$unknown" ] &&
	[ "$unknown" -lt 5 ] && grep -q 'crates: [1-9]' "$out/analysis-stats.log"
result "rust-analyzer analysis-stats: no panic, ${unknown:-?}% unknown types (under 5%)" \
	"$out/analysis-stats.log" $?

# --- checkpatch.pl of the fetched kernel (a tracked file is checked as a file, so the
# patch goes in on stdin; it is no mailed commit, hence no Signed-off-by)
cp="$KSRC/scripts/checkpatch.pl --no-tree --color=never"
perl $cp -f fs/coda-rs/shim.c fs/coda-rs/coda_rs.h >"$out/checkpatch-c.log" 2>&1
grep -q '^total: 0 errors' "$out/checkpatch-c.log" && ! grep -q '^total: [1-9][0-9]* errors' "$out/checkpatch-c.log"
result "checkpatch.pl: fs/coda-rs/shim.c and coda_rs.h, 0 errors" "$out/checkpatch-c.log" $?
perl $cp --no-signoff - <fs/coda-rs/fs-coda.patch >"$out/checkpatch-patch.log" 2>&1
grep -q '^total: 0 errors' "$out/checkpatch-patch.log"
result "checkpatch.pl: fs/coda-rs/fs-coda.patch, 0 errors" "$out/checkpatch-patch.log" $?

# --- SPDX: every tracked source, script and build file. Not data (the fuzz regression
# input, Cargo.lock), prose (*.md, MAINTAINERS), the patch (GPL-2.0 as the fs/coda it
# patches) or the kernel config fragments (their bytes are the kernel cache's key: a
# comment would rebuild both kernels).
git ls-files | grep -vE '\.md$|^fs/coda-rs/fs-coda\.patch$|Cargo\.lock$|^fuzz/regressions/|(^|/)\.gitignore$|^MAINTAINERS$|^config/' |
	while read -r f; do head -3 "$f" | grep -q 'SPDX-License-Identifier: ' || echo "$f"; done >"$out/spdx.log"
[ ! -s "$out/spdx.log" ]
result "SPDX-License-Identifier in every source, script and build file" "$out/spdx.log" $?

# --- MAINTAINERS: get_maintainer.pl names a maintainer for every tracked file
git ls-files | while read -r f; do
	perl "$KSRC/scripts/get_maintainer.pl" --no-tree --mpath MAINTAINERS --nogit --nogit-fallback \
		-f "$f" 2>&1 | grep -q '(maintainer:' || echo "$f"
done >"$out/maintainers.log"
[ ! -s "$out/maintainers.log" ]
result "MAINTAINERS: get_maintainer.pl finds a maintainer for every file" "$out/maintainers.log" $?
exit $((fails > 0))
