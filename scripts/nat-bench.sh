#!/usr/bin/env bash
# nat-bench.sh: NAT traversal measured in the NAT lab (scripts/nat-lab.sh):
# hole-punch success rate and timing for cone/cone, cone/symmetric and
# symmetric/symmetric homes, and a big get over a hole-punched connection
# against the same get without NAT, for TCP and QUIC.
#
#   scripts/nat-bench.sh [options]
#   options: --attempts N      hole-punch attempts, cone/cone (default 20)
#            --sym-attempts N  attempts for each case with a symmetric NAT (default 10)
#            --runs N          throughput runs per transport and path (default 3)
#            --size SIZE       throughput file (default 256MiB)
#            --out FILE        markdown section to write (default bin/nat-bench.md)
#            --keep            keep the work folder (node folders and logs)
#
# Builds bin/p2pshare and bin/p2pbench; runs `p2pbench nat lab` in one lab
# per NAT combination, the three side by side (attempts are one at a time
# in each, and mostly wait on timers), then the throughput runs alone in a
# fourth lab (cone/cone); then `p2pbench nat report` prints the "## NAT lab"
# section and writes it to --out. Every lab is its own sandbox with no way
# out (see nat-lab.sh). scripts/bench.sh --nat puts the section into
# BENCHMARKS.md. About 5 minutes. Needs: go, unshare, ip, nft.
set -euo pipefail

ATTEMPTS=20
SYM_ATTEMPTS=10
RUNS=3
SIZE=256MiB
OUT=
KEEP=0
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
	case $1 in
	--attempts) ATTEMPTS=$2; shift ;;
	--sym-attempts) SYM_ATTEMPTS=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--size) SIZE=$2; shift ;;
	--out) OUT=$2; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
for n in "$ATTEMPTS" "$SYM_ATTEMPTS" "$RUNS"; do
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
	# The labs' sandboxes kill what they started when they end; what is
	# left here are the sandboxes themselves, if this script is interrupted.
	jobs -p | xargs -r kill 2>/dev/null || true
	if [[ $KEEP = 1 ]]; then echo "work folder kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
# One BBS key for every node of every lab, made once before the labs start.
export P2PBENCH_KEYDIR=$WORK
step "making the nodes' BBS key"
scripts/nat-lab.sh --sandbox -- bin/p2pbench nat key -bin bin/p2pshare

# lab NAT_A NAT_B NAME ARGS...: one lab, one `p2pbench nat lab` in it;
# results in $WORK/NAME.jsonl, its log in $WORK/NAME.log.
lab() {
	local a=$1 b=$2 name=$3
	shift 3
	scripts/nat-lab.sh --nat-a "$a" --nat-b "$b" -- \
		bin/p2pbench nat lab -bin bin/p2pshare -work "$WORK/$name" "$@" \
		>"$WORK/$name.jsonl" 2>"$WORK/$name.log"
}

step "hole punching: cone/cone x $ATTEMPTS, cone/symmetric and symmetric/symmetric x $SYM_ATTEMPTS, side by side"
names=(cone-cone cone-symmetric symmetric-symmetric)
pids=()
lab cone cone cone-cone -attempts "$ATTEMPTS" & pids+=($!)
lab cone symmetric cone-symmetric -attempts "$SYM_ATTEMPTS" & pids+=($!)
lab symmetric symmetric symmetric-symmetric -attempts "$SYM_ATTEMPTS" & pids+=($!)
failed=0
for i in "${!pids[@]}"; do
	if ! wait "${pids[$i]}"; then
		echo "nat-bench: lab ${names[$i]} failed; its log:" >&2
		failed=1
	fi
	cat "$WORK/${names[$i]}.log" >&2
done
((failed == 0)) || exit 1

if ((RUNS > 0)); then
	step "throughput: $SIZE get, punched vs one namespace, TCP and QUIC x $RUNS"
	lab cone cone throughput -attempts 0 -transfer-runs "$RUNS" -size "$SIZE" || {
		cat "$WORK/throughput.log" >&2
		exit 1
	}
	cat "$WORK/throughput.log" >&2
	names+=(throughput)
fi

RESULTS=$WORK/nat.jsonl
for n in "${names[@]}"; do cat "$WORK/$n.jsonl"; done >"$RESULTS"
cp "$RESULTS" "$ROOT/bin/nat-results.jsonl"
CMD="bash scripts/nat-bench.sh"
[[ $ATTEMPTS != 20 ]] && CMD+=" --attempts $ATTEMPTS"
[[ $SYM_ATTEMPTS != 10 ]] && CMD+=" --sym-attempts $SYM_ATTEMPTS"
[[ $RUNS != 3 ]] && CMD+=" --runs $RUNS"
[[ $SIZE != 256MiB ]] && CMD+=" --size $SIZE"
echo
bin/p2pbench nat report -in "$RESULTS" -out "$OUT" -cmd "${NATBENCH_CMD:-$CMD}" \
	-commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	-elapsed "$(($(date +%s) - START))s"
echo
echo "wrote $OUT (raw results: bin/nat-results.jsonl)" >&2
