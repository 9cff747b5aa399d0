#!/usr/bin/env bash
# p2pshare benchmarks, inside a private network namespace (loopback only,
# multicast on for mDNS): nothing is sent on any real interface.
#
#   scripts/bench.sh            quick mode (256 MiB transfers, 50-host DHT, 4 nodes; a few minutes)
#   scripts/bench.sh --full     1 GiB and 4 GiB transfers, 50- and 200-host DHT, 8 nodes, 1,000 small files
#   scripts/bench.sh --nat      only the NAT lab figures (scripts/nat-bench.sh; about 5 minutes)
#   scripts/bench.sh --hostile  only the hostile-peer figures (an honest get during each flood; a few minutes)
#   scripts/bench.sh --api      only the local API and web UI figures (a daemon with 10,000 remote entries; 1 GiB gets; a few minutes)
#   scripts/bench.sh --folder   only the folder figures (publish and get a tree of 10,000 x 4 KiB files and 4 x 64 MiB; a few minutes)
#   options: --runs N (runs per figure, default 5), --keep (keep the work folder),
#            --cpuprofile DIR (CPU profiles of the in-process parts, and CPU, block,
#            mutex profiles and a trace of both nodes of each transfer configuration)
#
# Builds bin/p2pshare and bin/p2pbench, runs the p2pbench subcommands (each
# prints JSON lines), aggregates them with `p2pbench report`, prints the
# table and writes BENCHMARKS.md. With --nat it runs scripts/nat-bench.sh
# instead and puts its section ("## NAT lab") at the end of BENCHMARKS.md,
# replacing the previous one; the other runs keep the NAT section as it is.
# --hostile does the same with "## Hostile peers" (p2pbench hostile, in the
# namespace). --api does the same with "## Local API and web UI" (p2pbench
# api), --folder with "## Folders" (p2pbench folder).
set -euo pipefail

MODE=quick
RUNS=5
KEEP=0
PROF=
NAT=0
HOSTILE=0
API=0
FOLDERS=0
ARGS=("$@")
while [[ $# -gt 0 ]]; do
  case $1 in
    --full) MODE=full ;;
    --quick) MODE=quick ;;
    --runs) RUNS=$2; shift ;;
    --keep) KEEP=1 ;;
    --cpuprofile) PROF=$2; shift ;;
    --nat) NAT=1 ;;
    --hostile) HOSTILE=1 ;;
    --api) API=1 ;;
    --folder|--folders) FOLDERS=1 ;;
    *) sed -n '2,21p' "$0"; exit 2 ;;
  esac
  shift
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

# section FILE TITLE prints FILE's "## TITLE" section (up to the next "## ").
section() {
  [[ -f $1 ]] || return 0
  awk -v t="## $2" '/^## /{f=($0==t)} f' "$1"
}
# put_section FILE TITLE SECTION replaces FILE's "## TITLE" section with the
# file SECTION, at the end.
put_section() {
  local rest
  [[ -f $1 ]] || : >"$1"
  rest=$(awk -v t="## $2" '/^## /{f=($0==t)} !f' "$1")
  printf '%s\n\n' "$rest" >"$1"
  cat "$3" >>"$1"
}
nat_section() { section "$1" "NAT lab"; }
put_nat_section() { put_section "$1" "NAT lab" "$2"; }

if [[ $NAT = 1 ]]; then
  NATMD=$ROOT/bin/nat-bench.md
  natargs=(--out "$NATMD")
  [[ $KEEP = 1 ]] && natargs+=(--keep)
  NATBENCH_CMD="bash scripts/bench.sh --nat" bash scripts/nat-bench.sh "${natargs[@]}"
  put_nat_section "$ROOT/BENCHMARKS.md" "$NATMD"
  echo "put the NAT lab section into BENCHMARKS.md"
  exit 0
fi

if [[ -z ${P2PBENCH_IN_NS:-} ]]; then
  echo "== building bin/p2pshare and bin/p2pbench"
  go build -o bin/p2pshare ./cmd/node
  go build -o bin/p2pbench ./cmd/p2pbench
  command -v unshare >/dev/null || { echo "bench: needs unshare (util-linux)" >&2; exit 1; }
  command -v ip >/dev/null || { echo "bench: needs ip (iproute2)" >&2; exit 1; }
  command -v openssl >/dev/null || { echo "bench: needs openssl" >&2; exit 1; }
  echo "== entering a private network namespace (loopback only, multicast on)"
  exec unshare -rn env P2PBENCH_IN_NS=1 P2PBENCH_START=$(date +%s) bash -c '
    ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo || exit 1
    exec bash "$0" "$@"' "$0" "${ARGS[@]}"
fi

# Inside the namespace: nothing but loopback exists.
if ip -o link show | grep -qv ': lo:'; then
  echo "bench: refusing to run: an interface other than lo is visible" >&2
  exit 1
fi

WORK=$(mktemp -d /tmp/p2pbench.XXXXXX)
export P2PBENCH_KEYDIR=$WORK TMPDIR=$WORK
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
cleanup() {
  # p2pbench kills its own node processes; anything left is a child of ours.
  jobs -p | xargs -r kill 2>/dev/null || true
  if [[ $KEEP = 1 ]]; then echo "work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

B=$ROOT/bin/p2pbench
N=$ROOT/bin/p2pshare
prof() { [[ -n $PROF ]] && { mkdir -p "$PROF"; echo "-cpuprofile=$PROF/$1.pprof"; } || true; }
step() { echo "== $* ($(date +%T))" >&2; }

# report_section SUB TITLE: keeps the raw results in bin/, has
# `p2pbench SUB report` write the section and puts it into BENCHMARKS.md
# under "## TITLE", for the runs of one part alone (--hostile, --api).
report_section() {
  local sub=$1 title=$2 cmd="bash scripts/bench.sh --$1"
  cp "$RESULTS" "$ROOT/bin/bench-results-$sub.jsonl"
  [[ $RUNS != 5 ]] && cmd="$cmd --runs $RUNS"
  "$B" "$sub" report -in "$RESULTS" -out "$WORK/$sub.md" -cmd "$cmd" \
    -commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    -elapsed "$(( $(date +%s) - ${P2PBENCH_START:-$(date +%s)} ))s"
  put_section "$ROOT/BENCHMARKS.md" "$title" "$WORK/$sub.md"
  echo "put the $title section into BENCHMARKS.md (raw results: bin/bench-results-$sub.jsonl)"
}

if [[ $HOSTILE = 1 ]]; then
  HRUNS=3
  [[ $RUNS != 5 ]] && HRUNS=$RUNS
  step "hostile peers: honest 256 MiB get with no attacker and during each of 5 floods and a CPU control x $HRUNS"
  "$B" hostile -bin "$N" -size 256MiB -runs "$HRUNS" -work "$WORK/hostile" >>"$RESULTS"
  report_section hostile "Hostile peers"
  exit 0
fi

if [[ $API = 1 ]]; then
  ARUNS=3
  [[ $RUNS != 5 ]] && ARUNS=$RUNS
  step "local API: latency of available (10,000 remote entries) and id; 1 GiB gets through the API with and without an SSE client x $ARUNS; daemon RSS"
  "$B" api -bin "$N" -size 1GiB -runs "$ARUNS" -publishers 4 -files 10000 -requests 200 -work "$WORK/api" >>"$RESULTS"
  report_section api "Local API and web UI"
  exit 0
fi

if [[ $FOLDERS = 1 ]]; then
  FRUNS=3
  [[ $RUNS != 5 ]] && FRUNS=$RUNS
  step "folders: publish and get a tree of 10,000 x 4 KiB files in 100 folders and 4 x 64 MiB, with tar baselines x $FRUNS"
  "$B" folder -bin "$N" -small 10000 -small-size 4KiB -dirs 100 -large 4 -large-size 64MiB -runs "$FRUNS" -work "$WORK/folder" >>"$RESULTS"
  report_section folder "Folders"
  exit 0
fi

if [[ $MODE = full ]]; then
  SIZES=(1GiB); BIG=4GiB; DHTN=(50 200); DISC=8; SMALL=1000
else
  SIZES=(256MiB); BIG=; DHTN=(50); DISC=4; SMALL=200
fi

for size in "${SIZES[@]}"; do
  step "generating a $size pseudo-random file"
  "$B" gen -file "$WORK/data-$size.bin" -size "$size"
  step "transfer $size: TCP copy, bare libp2p over TCP and QUIC, get from 1 and 3 providers over TCP and QUIC, 1 with default flags x $RUNS"
  tprof=()
  [[ -n $PROF ]] && tprof=(-profile "$PROF/transfer-$size")
  "$B" transfer -bin "$N" -file "$WORK/data-$size.bin" -runs "$RUNS" -providers 3 -transports tcp,quic,default \
    -work "$WORK/transfer-$size" "${tprof[@]}" >>"$RESULTS"
  rm -rf "$WORK/transfer-$size"
  step "publish $size: openssl dgst -sha256, manifest.Build, publish command x $RUNS"
  "$B" hash -bin "$N" -file "$WORK/data-$size.bin" -runs "$RUNS" $(prof hash) >>"$RESULTS"
  rm -f "$WORK/data-$size.bin"
done

if [[ -n $BIG ]]; then
  step "generating a $BIG pseudo-random file"
  "$B" gen -file "$WORK/data-$BIG.bin" -size "$BIG"
  step "transfer $BIG (memory): 1 provider x 1, with baselines"
  "$B" transfer -bin "$N" -file "$WORK/data-$BIG.bin" -runs 1 -providers 1 -work "$WORK/transfer-$BIG" >>"$RESULTS"
  rm -rf "$WORK/transfer-$BIG" "$WORK/data-$BIG.bin"
fi

for n in "${DHTN[@]}"; do
  step "DHT: $n in-process hosts, 20 lookups"
  "$B" dht -n "$n" -lookups 20 $(prof "dht$n") >>"$RESULTS"
done

step "discovery: $DISC nodes by mDNS x 3"
"$B" discovery -bin "$N" -n "$DISC" -runs 3 >>"$RESULTS"

step "small files: $SMALL x 4 KiB, publish and get x 2"
"$B" small -bin "$N" -count "$SMALL" -size 4KiB -runs 2 >>"$RESULTS"

cp "$RESULTS" "$ROOT/bin/bench-results-$MODE.jsonl"
CMD="bash scripts/bench.sh"
[[ $MODE = full ]] && CMD="$CMD --full"
[[ $RUNS != 5 ]] && CMD="$CMD --runs $RUNS"
echo
# The NAT lab, hostile-peer, API and folder figures come from --nat, --hostile, --api and --folder runs: keep them.
nat_section "$ROOT/BENCHMARKS.md" >"$WORK/nat-section.md"
section "$ROOT/BENCHMARKS.md" "Hostile peers" >"$WORK/hostile-section.md"
section "$ROOT/BENCHMARKS.md" "Local API and web UI" >"$WORK/api-section.md"
section "$ROOT/BENCHMARKS.md" "Folders" >"$WORK/folder-section.md"
"$B" report -in "$RESULTS" -out "$ROOT/BENCHMARKS.md" -mode "$MODE" -cmd "$CMD" \
  -commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  -elapsed "$(( $(date +%s) - ${P2PBENCH_START:-$(date +%s)} ))s" -notes "$ROOT/cmd/p2pbench/findings.md"
if [[ -s $WORK/nat-section.md ]]; then
  put_nat_section "$ROOT/BENCHMARKS.md" "$WORK/nat-section.md"
fi
if [[ -s $WORK/hostile-section.md ]]; then
  put_section "$ROOT/BENCHMARKS.md" "Hostile peers" "$WORK/hostile-section.md"
fi
if [[ -s $WORK/api-section.md ]]; then
  put_section "$ROOT/BENCHMARKS.md" "Local API and web UI" "$WORK/api-section.md"
fi
if [[ -s $WORK/folder-section.md ]]; then
  put_section "$ROOT/BENCHMARKS.md" "Folders" "$WORK/folder-section.md"
fi
echo
echo "wrote BENCHMARKS.md (raw results: bin/bench-results-$MODE.jsonl)"
