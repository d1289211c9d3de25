# SPDX-License-Identifier: GPL-2.0
# The Venus stub's seed tree and options in the peer test (tests/peer-coda.sh), sourced by
# it and by its replay (tests/replay.sh), which must start the stub exactly the same way.

# Options of the stub in both, besides the files and the mount.
PEER_VENUS_OPTS=(-t 2)

# peer_seed DIR: fills the empty DIR with the seed tree.
peer_seed() {
	local seed=$1
	printf 'hello world\n' >"$seed/hello.txt"
	chmod 644 "$seed/hello.txt"
	mkdir "$seed/sub"
	printf 'nested\n' >"$seed/sub/nested.txt"
	ln -s hello.txt "$seed/link"
}
