#!/usr/bin/env bash
# nat-lab.sh: a miniature internet with two NATed homes, built from network
# namespaces, for testing NAT traversal (AutoNAT, circuit relay v2, DCUtR
# hole punching) with real processes.
#
# Everything happens inside ONE unprivileged `unshare` sandbox (user, network,
# mount and pid namespaces): the lab's namespaces are nested in it, /run is a
# private tmpfs (so `ip netns add` never writes to the machine's /run), and
# when the sandbox's first process exits the kernel kills every process left
# in it and the namespaces vanish. The machine's real network namespace is
# never touched, and the lab refuses to run if any of its namespaces has an
# interface or a route that could lead anywhere but the lab's own links.
#
# Usage:
#   scripts/nat-lab.sh [--nat-a MODE] [--nat-b MODE] -- CMD [ARGS...]
#       Build the lab, verify it is isolated, run CMD in the sandbox's outer
#       namespace with LAB_* variables (below) in its environment, exit with
#       CMD's status. CMD runs programs in the lab with
#       `ip netns exec "$LAB_NS_A" PROGRAM ...`.
#   scripts/nat-lab.sh --self-test
#       Build the lab for several NAT combinations and check, with the small
#       probe program internal/natlab/cmd/natprobe (built with `go build`),
#       that it behaves like real home NATs.
#   scripts/nat-lab.sh --sandbox -- CMD [ARGS...]
#       Only the empty sandbox (no lab); CMD builds labs itself with --up.
#       This is what the Go package internal/natlab uses.
#   scripts/nat-lab.sh --up [--prefix P] [--nat-a MODE] [--nat-b MODE]
#   scripts/nat-lab.sh --verify [--prefix P]
#   scripts/nat-lab.sh --down [--prefix P]
#       Inside a sandbox only: build a lab whose namespace names start with P
#       (default "lab-") and print its LAB_* variables as KEY=VALUE lines;
#       re-check its isolation; tear it down.
#
# MODE is "cone" (nftables `masquerade`: the source port is kept across
# destinations, i.e. endpoint-independent mapping, like most home routers)
# or "symmetric" (`masquerade fully-random`: a new port per destination).
# The defaults come from the environment variables NAT_A and NAT_B, else cone.
# Both kinds filter like real home routers: inbound packets from the WAN that
# belong to no connection the home opened are dropped.
#
# Topology and address plan (the "internet" uses addresses that libp2p's
# manet.IsPublicAddr accepts, since libp2p only hole-punches to public
# addresses; they exist only on the lab's veth links):
#
#   ns inet: bridge br0 = the internet segment 11.1.0.0/24;
#            11.1.0.1 on br0 is the "ISP", default gateway of the internet side
#     |-- ns public    eth0 11.1.0.10   a host with a public address
#     |-- ns public2   eth0 11.1.0.11   a second public host (AutoNAT, echo)
#     |-- ns router-a  wan0 11.1.0.21   NAT (--nat-a), lan0 192.168.1.1/24
#     |                   `-- ns home-a  eth0 192.168.1.10, via 192.168.1.1
#     `-- ns router-b  wan0 11.1.0.22   NAT (--nat-b), lan0 192.168.2.1/24
#                         `-- ns home-b  eth0 192.168.2.10, via 192.168.2.1
#
# Variables given to CMD (and printed by --up):
#   LAB_NS_INET LAB_NS_PUBLIC LAB_NS_PUBLIC2 LAB_NS_ROUTER_A LAB_NS_ROUTER_B
#   LAB_NS_A LAB_NS_B                      namespace names (for ip netns exec)
#   LAB_IP_ISP LAB_IP_PUBLIC LAB_IP_PUBLIC2
#   LAB_IP_ROUTER_A LAB_IP_ROUTER_B        routers' WAN (public) addresses
#   LAB_IP_ROUTER_A_LAN LAB_IP_ROUTER_B_LAN
#   LAB_IP_A LAB_IP_B                      home hosts' private addresses
#   LAB_NET_INTERNET LAB_NET_A LAB_NET_B   the three subnets (CIDR)
#   LAB_NAT_A LAB_NAT_B                    cone or symmetric
#   LAB_PREFIX                             namespace name prefix
#
# Needs: bash, util-linux (unshare, mount), iproute2, nftables; go for
# --self-test.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SCRIPT")")
# Written into the sandbox's private /run: proves to --up/--down that they run
# inside a sandbox this script made (the file exists nowhere else).
MARKER=/run/natlab-sandbox

# The address plan, the one place that defines it.
NET_INTERNET=11.1.0.0/24
IP_ISP=11.1.0.1
IP_PUBLIC=11.1.0.10
IP_PUBLIC2=11.1.0.11
IP_ROUTER_A=11.1.0.21
IP_ROUTER_B=11.1.0.22
NET_A=192.168.1.0/24
IP_ROUTER_A_LAN=192.168.1.1
IP_A=192.168.1.10
NET_B=192.168.2.0/24
IP_ROUTER_B_LAN=192.168.2.1
IP_B=192.168.2.10

die() {
	echo "nat-lab: $*" >&2
	exit 1
}

usage() {
	sed -n '/^# Usage:/,/^# Needs:/{/^# Needs:/d;s/^# \{0,1\}//;p}' "$SCRIPT"
}

# ---------------------------------------------------------------- arguments

MODE=run
INSIDE=
NAT_A=${NAT_A:-cone}
NAT_B=${NAT_B:-cone}
PREFIX=lab-
ORIG_ARGS=("$@")
while (($#)); do
	case $1 in
	--nat-a) (($# >= 2)) || die "--nat-a needs a value"; NAT_A=$2; shift 2 ;;
	--nat-a=*) NAT_A=${1#*=}; shift ;;
	--nat-b) (($# >= 2)) || die "--nat-b needs a value"; NAT_B=$2; shift 2 ;;
	--nat-b=*) NAT_B=${1#*=}; shift ;;
	--prefix) (($# >= 2)) || die "--prefix needs a value"; PREFIX=$2; shift 2 ;;
	--prefix=*) PREFIX=${1#*=}; shift ;;
	--self-test) MODE=selftest; shift ;;
	--sandbox) MODE=sandbox; shift ;;
	--up) MODE=up; shift ;;
	--verify) MODE=verify; shift ;;
	--down) MODE=down; shift ;;
	--in-sandbox) INSIDE=1; shift ;; # internal: we are the sandbox's first process
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
CMD=("$@")

for m in "$NAT_A" "$NAT_B"; do
	[[ $m == cone || $m == symmetric ]] || die "NAT mode '$m' is neither cone nor symmetric"
done
# The prefix becomes part of file names under /run/netns: keep it tame.
[[ $PREFIX =~ ^[A-Za-z0-9_-]{0,16}$ ]] || die "prefix '$PREFIX' must be at most 16 letters, digits, '_' or '-'"
case $MODE in
run | sandbox) ((${#CMD[@]})) || die "no command given after --" ;;
*) ((${#CMD[@]} == 0)) || die "--$MODE takes no command" ;;
esac

# -------------------------------------------------------------- the sandbox

# enter_sandbox re-runs this script as the first process of a fresh user,
# network, mount and pid namespace. The pid namespace is what makes teardown
# certain: when that first process exits, the kernel kills every process
# still in it, and with them the lab's namespaces go away.
enter_sandbox() {
	command -v unshare >/dev/null || die "unshare (util-linux) is not installed"
	exec unshare --user --map-root-user --net --mount --pid --fork --kill-child --mount-proc \
		-- "$BASH" "$SCRIPT" --in-sandbox "${ORIG_ARGS[@]}"
}

# sandbox_init prepares the sandbox: a private /run for `ip netns`, loopback
# up, and the marker that --up checks.
sandbox_init() {
	mount -t tmpfs -o mode=0755 natlab /run || die "cannot mount a private tmpfs on /run in the sandbox"
	mkdir /run/netns
	ip link set lo up
	readlink /proc/self/ns/net >"$MARKER"
	export NATLAB_SANDBOX=1
}

# require_sandbox refuses to go on unless this process is in a sandbox made by
# this script: then `ip netns add` and friends cannot touch the real machine.
require_sandbox() {
	[[ -f $MARKER && $(<"$MARKER") == "$(readlink /proc/self/ns/net)" ]] ||
		die "--$MODE only works inside the sandbox made by '$0 --sandbox -- ...' (refusing to touch this namespace)"
}

# ------------------------------------------------------------ building a lab

ns() { printf '%s%s' "$PREFIX" "$1"; }

# All lab namespaces, in creation order.
LAB_NAMES=(inet public public2 router-a router-b home-a home-b)

# in_ns NS CMD...: run CMD in namespace NS.
in_ns() {
	local n=$1
	shift
	ip netns exec "$(ns "$n")" "$@"
}

# set_sysctl NS KEY VALUE, without needing procps: /proc/sys/net shows the
# network namespace of the process that opens it.
set_sysctl() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	in_ns "$1" "$BASH" -c 'printf %s "$2" >"/proc/sys/$1"' _ "$2" "$3"
}

# add_ns NAME creates one lab namespace, IPv4 only: IPv6 link-local addresses
# would only add noise to what the nodes advertise.
add_ns() {
	ip netns add "$(ns "$1")"
	set_sysctl "$1" net/ipv6/conf/all/disable_ipv6 1
	set_sysctl "$1" net/ipv6/conf/default/disable_ipv6 1
	ip -n "$(ns "$1")" link set lo up
}

# link NS1 IF1 NS2 IF2 joins two namespaces with a veth pair, created directly
# in them (so the sandbox's outer namespace never holds lab interfaces and
# labs built side by side cannot clash on interface names).
link() {
	ip -n "$(ns "$1")" link add name "$2" type veth peer name "$4" netns "$(ns "$3")"
}

# addr NS IF ADDR/LEN: give an interface its address and bring it up.
addr() {
	ip -n "$(ns "$1")" addr add "$3" dev "$2"
	ip -n "$(ns "$1")" link set "$2" up
}

# nat_rules MODE prints a router's nftables ruleset. The filter part is what
# real home routers do, and hole punching depends on it: without the input
# drop, a peer's early punch packet to the router's WAN address gets a
# conntrack entry (and an ICMP error) that steals the port mapping the home's
# own outgoing punch needs.
nat_rules() {
	local masq=masquerade
	[[ $1 == symmetric ]] && masq="masquerade fully-random"
	cat <<EOF
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan0" $masq
	}
}
table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "wan0" ct state != { established, related } drop
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "wan0" ct state != { established, related } drop
	}
}
EOF
}

# add_home X NAT_MODE WAN_IP LAN_IP HOST_IP: router-X on the internet with a
# NAT, home-X behind it.
add_home() {
	local x=$1 mode=$2 wan=$3 lan=$4 host=$5
	link inet "rtr-$x" "router-$x" wan0
	ip -n "$(ns inet)" link set "rtr-$x" master br0 up
	addr "router-$x" wan0 "$wan/24"
	ip -n "$(ns "router-$x")" route add default via "$IP_ISP"
	link "router-$x" lan0 "home-$x" eth0
	addr "router-$x" lan0 "$lan/24"
	addr "home-$x" eth0 "$host/24"
	ip -n "$(ns "home-$x")" route add default via "$lan"
	set_sysctl "router-$x" net/ipv4/ip_forward 1
	nat_rules "$mode" | in_ns "router-$x" nft -f - ||
		die "nft failed in router-$x (is nftables installed? it must work inside a user namespace)"
}

# add_public NAME IF IP: a host directly on the internet segment.
add_public() {
	link inet "$2" "$1" eth0
	ip -n "$(ns inet)" link set "$2" master br0 up
	addr "$1" eth0 "$3/24"
	ip -n "$(ns "$1")" route add default via "$IP_ISP"
}

build_lab() {
	command -v ip >/dev/null || die "ip (iproute2) is not installed"
	command -v nft >/dev/null || die "nft (nftables) is not installed"
	local n
	for n in "${LAB_NAMES[@]}"; do
		add_ns "$n"
	done
	# The internet: a bridge in its own namespace; its address is the ISP
	# gateway. No forwarding there and no routes beyond the segment, so a
	# packet for any other address dies in the lab (network unreachable).
	ip -n "$(ns inet)" link add name br0 type bridge
	addr inet br0 "$IP_ISP/24"
	add_public public pub "$IP_PUBLIC"
	add_public public2 pub2 "$IP_PUBLIC2"
	add_home a "$NAT_A" "$IP_ROUTER_A" "$IP_ROUTER_A_LAN" "$IP_A"
	add_home b "$NAT_B" "$IP_ROUTER_B" "$IP_ROUTER_B_LAN" "$IP_B"
}

teardown() {
	local n pids
	for n in "${LAB_NAMES[@]}"; do
		[[ -e /run/netns/$(ns "$n") ]] || continue
		# Processes still running in the lab keep a namespace alive after
		# `ip netns del`; they are the lab user's, started in this sandbox.
		pids=$(ip netns pids "$(ns "$n")")
		if [[ -n $pids ]]; then
			# shellcheck disable=SC2086 # one pid per word
			kill -KILL $pids 2>/dev/null || true
		fi
		ip netns del "$(ns "$n")"
	done
}

# ------------------------------------------------------- isolation checking

# check_ns NS DEVS GATEWAYS: every interface of NS (empty: the current
# namespace) must be lo or one of DEVS, and every route must stay on them:
# routes on lo, routes the kernel made for the addresses of DEVS ("proto
# kernel": connected subnets and local addresses), and default routes via one
# of GATEWAYS. Anything else could lead out of the lab, so the lab refuses it.
check_ns() {
	local n=$1 devs=" lo $2 " gws=" $3 " where=${1:-the sandbox\'s outer namespace}
	local ipc=(ip)
	[[ -n $n ]] && ipc=(ip -n "$n")
	local name line
	while read -r name; do
		name=${name%%@*}
		[[ $devs == *" $name "* ]] || die "isolation check: unexpected interface '$name' in $where"
	done < <("${ipc[@]}" -o link show | awk -F': ' '{print $2}')
	while read -r line; do
		[[ -n $line ]] || continue
		local tok=() dev='' via='' proto=boot first i
		read -ra tok <<<"$line"
		first=${tok[0]}
		for ((i = 0; i < ${#tok[@]}; i++)); do
			case ${tok[i]} in
			dev) dev=${tok[i + 1]:-} ;;
			via) via=${tok[i + 1]:-} ;;
			proto) proto=${tok[i + 1]:-} ;;
			nexthop) die "isolation check: multipath route in $where: $line" ;;
			esac
		done
		case $first in
		unreachable | blackhole | prohibit | throw) continue ;; # lead nowhere
		esac
		[[ -n $dev && $devs == *" $dev "* ]] || die "isolation check: route off the lab's links in $where: $line"
		[[ $dev == lo ]] && continue
		if [[ -n $via ]]; then
			[[ $first == default && $gws == *" $via "* ]] ||
				die "isolation check: route via a gateway that is not a lab router in $where: $line"
		else
			[[ $proto == kernel ]] || die "isolation check: route that is not a connected one in $where: $line"
		fi
	done < <("${ipc[@]}" -4 route show table all; "${ipc[@]}" -6 route show table all 2>/dev/null)
}

verify_isolation() {
	require_sandbox
	local n
	for n in "${LAB_NAMES[@]}"; do
		[[ -e /run/netns/$(ns "$n") ]] || die "no lab with prefix '$PREFIX' (namespace $(ns "$n") missing)"
	done
	check_ns "" "" ""
	check_ns "$(ns inet)" "br0 pub pub2 rtr-a rtr-b" ""
	check_ns "$(ns public)" eth0 "$IP_ISP"
	check_ns "$(ns public2)" eth0 "$IP_ISP"
	check_ns "$(ns router-a)" "wan0 lan0" "$IP_ISP"
	check_ns "$(ns router-b)" "wan0 lan0" "$IP_ISP"
	check_ns "$(ns home-a)" eth0 "$IP_ROUTER_A_LAN"
	check_ns "$(ns home-b)" eth0 "$IP_ROUTER_B_LAN"
}

# --------------------------------------------------------------- interface

print_env() {
	cat <<EOF
LAB_PREFIX=$PREFIX
LAB_NS_INET=$(ns inet)
LAB_NS_PUBLIC=$(ns public)
LAB_NS_PUBLIC2=$(ns public2)
LAB_NS_ROUTER_A=$(ns router-a)
LAB_NS_ROUTER_B=$(ns router-b)
LAB_NS_A=$(ns home-a)
LAB_NS_B=$(ns home-b)
LAB_IP_ISP=$IP_ISP
LAB_IP_PUBLIC=$IP_PUBLIC
LAB_IP_PUBLIC2=$IP_PUBLIC2
LAB_IP_ROUTER_A=$IP_ROUTER_A
LAB_IP_ROUTER_B=$IP_ROUTER_B
LAB_IP_ROUTER_A_LAN=$IP_ROUTER_A_LAN
LAB_IP_ROUTER_B_LAN=$IP_ROUTER_B_LAN
LAB_IP_A=$IP_A
LAB_IP_B=$IP_B
LAB_NET_INTERNET=$NET_INTERNET
LAB_NET_A=$NET_A
LAB_NET_B=$NET_B
LAB_NAT_A=$NAT_A
LAB_NAT_B=$NAT_B
EOF
}

now_ms() {
	# EPOCHREALTIME has six decimals; its separator depends on the locale.
	local us=${EPOCHREALTIME//[!0-9]/}
	echo $((us / 1000))
}

# up builds a lab and checks it; if either fails (die, or a failing command
# under set -e), the EXIT trap removes what was built. (Not `if ! build_lab`:
# bash ignores set -e inside a function called as a condition.)
up() {
	require_sandbox
	local t0 n
	t0=$(now_ms)
	for n in "${LAB_NAMES[@]}"; do
		[[ ! -e /run/netns/$(ns "$n") ]] || die "a lab with prefix '$PREFIX' already exists"
	done
	trap teardown EXIT
	build_lab
	verify_isolation
	trap - EXIT
	echo "nat-lab: lab '$PREFIX' (nat-a=$NAT_A nat-b=$NAT_B) built and verified in $(($(now_ms) - t0)) ms" >&2
}

# self_test builds the probe once, then runs its checks in a fresh lab for
# each NAT combination that matters.
self_test() {
	command -v go >/dev/null || die "--self-test needs go to build its probe"
	local tmp rc=0 combo a b
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064 # expand now: tmp is local
	trap "rm -rf '$tmp'" EXIT
	(cd "$REPO" && go build -o "$tmp/natprobe" ./internal/natlab/cmd/natprobe) || die "cannot build the probe"
	for combo in "cone cone" "symmetric symmetric" "cone symmetric"; do
		read -r a b <<<"$combo"
		echo "=== nat-a=$a nat-b=$b"
		NAT_A=$a NAT_B=$b "$BASH" "$SCRIPT" -- "$tmp/natprobe" selftest || rc=1
	done
	if ((rc)); then
		echo "nat-lab: self-test FAILED" >&2
	else
		echo "nat-lab: self-test passed"
	fi
	return $rc
}

main() {
	case $MODE in
	selftest) self_test ;;
	up) up && print_env ;;
	verify) verify_isolation ;;
	down) require_sandbox && teardown ;;
	sandbox | run)
		[[ -n $INSIDE ]] || enter_sandbox
		sandbox_init
		if [[ $MODE == run ]]; then
			up
			local line
			while IFS= read -r line; do
				export "${line?}"
			done < <(print_env)
		fi
		# Not exec: this shell stays the sandbox's first process, so when
		# CMD ends, everything it left running in the lab is killed.
		local rc=0
		"${CMD[@]}" || rc=$?
		exit "$rc"
		;;
	esac
}

main
