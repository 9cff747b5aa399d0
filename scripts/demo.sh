#!/usr/bin/env bash
# p2pshare demo: N nodes on one machine, each with its own data and share
# folder, inside an unprivileged network namespace whose only interface is
# loopback with multicast on, so mDNS works and nothing leaves the machine.
#
#   scripts/demo.sh [-n NODES] [-k]     (-k keeps the work folder)
#
# It prints a transcript and exits non-zero if any step did not happen.
set -euo pipefail

NODES=4
KEEP=0
while getopts "n:kh" opt; do
  case $opt in
    n) NODES=$OPTARG ;;
    k) KEEP=1 ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
  esac
done
[[ $NODES =~ ^[0-9]+$ && $NODES -ge 2 ]] || { echo "demo: -n needs at least 2 nodes" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [[ -z ${P2PSHARE_IN_NS:-} ]]; then
  echo "== building bin/p2pshare"
  (cd "$ROOT" && go build -o bin/p2pshare ./cmd/node)
  command -v unshare >/dev/null || { echo "demo: needs unshare (util-linux)" >&2; exit 1; }
  command -v ip >/dev/null || { echo "demo: needs ip (iproute2)" >&2; exit 1; }
  echo "== entering a private network namespace (loopback only, multicast on)"
  exec unshare -rn env P2PSHARE_IN_NS=1 bash -c '
    ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo || exit 1
    exec bash "$0" "$@"' "$0" -n "$NODES" $([[ $KEEP = 1 ]] && echo -k)
fi

BIN=$ROOT/bin/p2pshare
WORK=$(mktemp -d /tmp/p2pshare-demo.XXXXXX)
declare -a PIDS FDS
SEQ=0
TIMEOUT=${DEMO_TIMEOUT:-60}

cleanup() {
  for i in $(seq 1 "$NODES"); do
    [[ -n ${PIDS[$i]:-} ]] && kill "${PIDS[$i]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [[ $KEEP = 1 ]]; then echo "work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

fail() { echo "DEMO FAILED: $*" >&2; exit 1; }

start_node() {
  local i=$1
  local d=$WORK/node$i
  mkdir -p "$d/files"
  [[ -p $d/in ]] || mkfifo "$d/in"
  "$BIN" --data "$d" --listen /ip4/127.0.0.1/tcp/0 --listen /ip4/127.0.0.1/udp/0/quic-v1 \
    --keepalive 1s --log-level info <"$d/in" >>"$d/out" 2>&1 &
  PIDS[$i]=$!
  exec {fd}>"$d/in"
  FDS[$i]=$fd
}

# run I CMD: send CMD to node I, wait for its output, print it as a transcript.
# Fails the demo if the command printed an error.
run() {
  local i=$1; shift
  local cmd="$*" d=$WORK/node$i
  SEQ=$((SEQ + 1))
  local mark="@@done-$SEQ"
  local start
  start=$(wc -l <"$d/out")
  printf '%s\necho %s\n' "$cmd" "$mark" >&"${FDS[$i]}"
  local deadline=$((SECONDS + TIMEOUT + 5))
  until grep -qx -- "$mark" "$d/out"; do
    kill -0 "${PIDS[$i]}" 2>/dev/null || fail "node$i exited during: $cmd"
    ((SECONDS < deadline)) || fail "node$i did not answer: $cmd"
    sleep 0.05
  done
  local body
  body=$(tail -n +"$((start + 1))" "$d/out" | sed "/^$mark\$/,\$d")
  echo "node$i> $cmd"
  [[ -n $body ]] && sed 's/^/    /' <<<"$body"
  if grep -q '^error:' <<<"$body"; then fail "node$i: $cmd"; fi
  LAST=$body
}

# peer_id I: sets PEER_ID to node I's peer ID (no subshell: run keeps state).
peer_id() { run "$1" id; PEER_ID=$(sed -n 's/^peer ID: //p' <<<"$LAST"); }

echo "== starting $NODES nodes in $WORK"
for i in $(seq 1 "$NODES"); do
  d=$WORK/node$i
  mkdir -p "$d/files"
  echo "notes from node $i" >"$d/files/notes-$i.txt"
  head -c $((3 * 1024 * 1024 + 12345)) /dev/urandom >"$d/files/sample-$i.bin"
  start_node "$i"
done

echo
echo "== 1. discovery by mDNS: every node sees the $((NODES - 1)) others"
for i in $(seq 1 "$NODES"); do run "$i" wait peers $((NODES - 1)) --timeout ${TIMEOUT}s; done
run 1 peers

echo
echo "== 2. node1 publishes a file; the others list it"
run 1 files
run 1 publish sample-1.bin notes-1.txt
run 1 publish sample-1.bin
for i in $(seq 2 "$NODES"); do run "$i" wait file sample-1.bin --timeout ${TIMEOUT}s; done
run 2 available

echo
echo "== 3. node2 gets it: fetched over an encrypted stream, verified against the CID"
run 2 get sample-1.bin
want=$(sha256sum "$WORK/node1/files/sample-1.bin" | cut -d' ' -f1)
got=$(sha256sum "$WORK/node2/downloads/sample-1.bin" | cut -d' ' -f1)
echo "    sha256 original:   $want"
echo "    sha256 downloaded: $got"
[[ $want == "$got" ]] || fail "downloaded file differs from the original"

echo
echo "== 4. node1 withdraws it; it disappears from the others' lists"
run 1 unpublish sample-1.bin
for i in $(seq 2 "$NODES"); do run "$i" wait gone sample-1.bin --timeout ${TIMEOUT}s; done
run "$NODES" available

echo
echo "== 5. node$NODES stops: the others see it offline; it restarts with the same peer ID"
peer_id "$NODES"
id_before=$PEER_ID
printf 'quit\n' >&"${FDS[$NODES]}"
wait "${PIDS[$NODES]}" || fail "node$NODES did not stop cleanly"
PIDS[$NODES]=""
eval "exec ${FDS[$NODES]}>&-"
for i in $(seq 1 $((NODES - 1))); do run "$i" wait offline "$id_before" --timeout ${TIMEOUT}s; done
run 1 peers
start_node "$NODES"
peer_id "$NODES"
id_after=$PEER_ID
[[ $id_before == "$id_after" ]] || fail "peer ID changed across restart"
for i in $(seq 1 $((NODES - 1))); do run "$i" wait online "$id_after" --timeout ${TIMEOUT}s; done
run 1 peers

echo
echo "DEMO OK: discovery, publish, list, verified get, withdrawal, offline/online with the same identity"
