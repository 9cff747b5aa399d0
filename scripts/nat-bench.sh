#!/usr/bin/env bash
# nat-bench.sh: NAT traversal measured in the NAT lab (scripts/nat-lab.sh):
# hole-punch success rate and timing for cone/cone, cone/symmetric and
# symmetric/symmetric homes, and a big get over a hole-punched connection
# against the same get without NAT, for TCP and QUIC.
#
#   scripts/nat-bench.sh [options]
#   options: --attempts N      hole-punch attempts, cone/cone (default 20)
#            --sym-attempts N  attempts for each case with a symmetric NAT (default 15)
#            --parallel N      attempts at a time, cone/cone (default 2)
#            --sym-parallel N  attempts at a time, symmetric cases (default 5)
#            --runs N          throughput runs per transport and path (default 3)
#            --size SIZE       throughput file (default 256MiB)
#            --out FILE        markdown section to write (default bin/nat-bench.md)
#            --keep            keep the work folder (node folders and logs)
#
# Builds bin/p2pshare and bin/p2pbench, runs `p2pbench nat lab` once per NAT
# combination, each inside its own lab (its sandbox has no way out: see
# nat-lab.sh), then `p2pbench nat report`, which prints the "## NAT lab"
# section and writes it to --out. scripts/bench.sh --nat puts it into
# BENCHMARKS.md. Needs: go, unshare, ip, nft.
set -euo pipefail

ATTEMPTS=20
SYM_ATTEMPTS=15
PARALLEL=2
SYM_PARALLEL=5
RUNS=3
SIZE=256MiB
OUT=
KEEP=0
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
	case $1 in
	--attempts) ATTEMPTS=$2; shift ;;
	--sym-attempts) SYM_ATTEMPTS=$2; shift ;;
	--parallel) PARALLEL=$2; shift ;;
	--sym-parallel) SYM_PARALLEL=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--size) SIZE=$2; shift ;;
	--out) OUT=$2; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
for n in "$ATTEMPTS" "$SYM_ATTEMPTS" "$PARALLEL" "$SYM_PARALLEL" "$RUNS"; do
	[[ $n =~ ^[0-9]+$ ]] || { echo "nat-bench: '$n' is not a count" >&2; exit 2; }
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-$ROOT/bin/nat-bench.md}
for tool in go unshare ip nft; do
	command -v "$tool" >/dev/null || { echo "nat-bench: needs $tool" >&2; exit 1; }
done
START=$(date +%s)
step() { echo "== $* ($(date +%T))" >&2; }

step "building bin/p2pshare and bin/p2pbench"
go build -o bin/p2pshare ./cmd/node
go build -o bin/p2pbench ./cmd/p2pbench

WORK=$(mktemp -d /tmp/p2pnat.XXXXXX)
cleanup() {
	if [[ $KEEP = 1 ]]; then echo "work folder kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
# One BBS key for every node of every lab (made once, by the first lab).
export P2PBENCH_KEYDIR=$WORK
RESULTS=$WORK/nat.jsonl
: >"$RESULTS"

# lab NAT_A NAT_B ARGS...: one lab, one `p2pbench nat lab` in it.
lab() {
	local a=$1 b=$2
	shift 2
	step "lab nat-a=$a nat-b=$b: $*"
	scripts/nat-lab.sh --nat-a "$a" --nat-b "$b" -- \
		bin/p2pbench nat lab -bin bin/p2pshare -work "$WORK/$a-$b" "$@" >>"$RESULTS"
}

lab cone cone -attempts "$ATTEMPTS" -parallel "$PARALLEL" -transfer-runs "$RUNS" -size "$SIZE"
lab cone symmetric -attempts "$SYM_ATTEMPTS" -parallel "$SYM_PARALLEL"
lab symmetric symmetric -attempts "$SYM_ATTEMPTS" -parallel "$SYM_PARALLEL"

cp "$RESULTS" "$ROOT/bin/nat-results.jsonl"
CMD="bash scripts/nat-bench.sh"
[[ $ATTEMPTS != 20 ]] && CMD+=" --attempts $ATTEMPTS"
[[ $SYM_ATTEMPTS != 15 ]] && CMD+=" --sym-attempts $SYM_ATTEMPTS"
[[ $PARALLEL != 2 ]] && CMD+=" --parallel $PARALLEL"
[[ $SYM_PARALLEL != 5 ]] && CMD+=" --sym-parallel $SYM_PARALLEL"
[[ $RUNS != 3 ]] && CMD+=" --runs $RUNS"
[[ $SIZE != 256MiB ]] && CMD+=" --size $SIZE"
echo
bin/p2pbench nat report -in "$RESULTS" -out "$OUT" -cmd "${NATBENCH_CMD:-$CMD}" \
	-commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	-elapsed "$(($(date +%s) - START))s"
echo
echo "wrote $OUT (raw results: bin/nat-results.jsonl)" >&2
