#!/usr/bin/env bash
# Side-by-side DNS throughput on this machine: the same synthetic cluster, the same query mix,
# the same load generator (dnsperf), servers taken in turn (A B C A B C ...), loopback only.
#
# usage: benches/peers/peers.sh [-n SERVICES] [-l SECONDS] [-r ROUNDS] [-w WORKERS]
#                 [--only "knot nsd unbound"] [--fixed QPS]
#                 [--cmd NAME 'COMMAND WITH {port} {yaml} {dir}']...
#   clusterdns (target/release/clusterdns, built with `cargo build --release` first) is always
#   in the run; --cmd adds another server, started with a Corefile.{port} written for it:
#     .:{port} { kubernetes cluster.local in-addr.arpa { manifests {yaml}; ttl 30 } }
#   where {dir} holds cluster.yaml (and the zone files).
# Prints one row per server: median QPS over the rounds, min-max, average latency, lost, peak RSS,
# and the server's CPU time per query at a fixed offered load (--fixed, 50000 QPS by default),
# read from /proc for its process. Installs knot, nsd, unbound and dnsperf from Debian when
# missing. Every server is stopped by PID.
set -euo pipefail
N=1000; LEN=10; ROUNDS=3; WORKERS=$(nproc); ONLY="knot nsd unbound"; FIXED=50000
declare -a CMD_NAMES=() CMD_LINES=()
while [ $# -gt 0 ]; do
  case $1 in
    -n) N=$2; shift 2;; -l) LEN=$2; shift 2;; -r) ROUNDS=$2; shift 2;; -w) WORKERS=$2; shift 2;;
    --only) ONLY=$2; shift 2;;
    --fixed) FIXED=$2; shift 2;;
    --cmd) CMD_NAMES+=("$2"); CMD_LINES+=("$3"); shift 3;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$ROOT/target/release/clusterdns
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
CMD_NAMES=(clusterdns "${CMD_NAMES[@]}")
CMD_LINES=("$BIN -conf {dir}/Corefile.{port}" "${CMD_LINES[@]}")
need=""
for b in dnsperf:dnsperf knotd:knot nsd:nsd unbound:unbound dig:bind9-dnsutils; do
  command -v "${b%%:*}" >/dev/null || need="$need ${b#*:}"
done
if [ -n "$need" ]; then apt-get update -qq && apt-get install -y -qq $need >/dev/null; fi

W=$(mktemp -d /tmp/peers.XXXXXX)
python3 "$HERE/gen_cluster.py" "$W" --services "$N" --queries 200000 >/dev/null
PIDS=(); LAST_PID=
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT

start_knot() { # port
  mkdir -p "$W/knot"
  cat >"$W/knot/knot.conf" <<EOF
server:
    listen: 127.0.0.1@$1
    rundir: $W/knot
    udp-workers: $WORKERS
    tcp-workers: 1
    background-workers: 1
database:
    storage: $W/knot/db
log:
  - target: stderr
    any: error
template:
  - id: default
    storage: $W
    file: "%s.zone"
    semantic-checks: off
zone:
  - domain: cluster.local
  - domain: in-addr.arpa
EOF
  knotd -c "$W/knot/knot.conf" >"$W/knot/log" 2>&1 & LAST_PID=$!; PIDS+=($LAST_PID)
}
start_nsd() {
  mkdir -p "$W/nsd"
  cat >"$W/nsd/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$1
    server-count: $WORKERS
    username: ""
    zonesdir: "$W"
    database: ""
    pidfile: "$W/nsd/nsd.pid"
    xfrdfile: "$W/nsd/xfrd.state"
    zonelistfile: "$W/nsd/zone.list"
    xfrdir: "$W/nsd"
    verbosity: 0
    hide-version: yes
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: cluster.local
    zonefile: cluster.local.zone
zone:
    name: in-addr.arpa
    zonefile: in-addr.arpa.zone
EOF
  nsd -d -c "$W/nsd/nsd.conf" >"$W/nsd/log" 2>&1 & LAST_PID=$!; PIDS+=($LAST_PID)
}
start_unbound() {
  mkdir -p "$W/unbound"
  cat >"$W/unbound/unbound.conf" <<EOF
server:
    interface: 127.0.0.1@$1
    port: $1
    num-threads: $WORKERS
    so-reuseport: yes
    username: ""
    chroot: ""
    directory: "$W"
    pidfile: "$W/unbound/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    do-not-query-localhost: yes
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
auth-zone:
    name: "cluster.local."
    zonefile: "$W/cluster.local.zone"
    for-downstream: yes
    for-upstream: no
    fallback-enabled: no
auth-zone:
    name: "in-addr.arpa."
    zonefile: "$W/in-addr.arpa.zone"
    for-downstream: yes
    for-upstream: no
    fallback-enabled: no
remote-control:
    control-enable: no
EOF
  unbound -d -c "$W/unbound/unbound.conf" >"$W/unbound/log" 2>&1 & LAST_PID=$!; PIDS+=($LAST_PID)
}
start_cmd() { # port index
  printf '.:%s {\n    kubernetes cluster.local in-addr.arpa {\n        manifests %s\n        ttl 30\n    }\n}\n' \
    "$1" "$W/cluster.yaml" >"$W/Corefile.$1"
  local line=${CMD_LINES[$2]}
  line=${line//\{port\}/$1}; line=${line//\{yaml\}/$W/cluster.yaml}; line=${line//\{dir\}/$W}
  bash -c "exec $line" >"$W/cmd$2.log" 2>&1 & LAST_PID=$!; PIDS+=($LAST_PID)
}

declare -A PORT PIDOF
port=5350
servers=()
for s in $ONLY; do servers+=("$s"); PORT[$s]=$port; port=$((port+1)); done
for i in "${!CMD_NAMES[@]}"; do servers+=("${CMD_NAMES[$i]}"); PORT[${CMD_NAMES[$i]}]=$port; port=$((port+1)); done

want=$(grep -m1 '^svc-.* A 10\.96\.' "$W/cluster.local.zone" | awk '{print $1, $3}')
for s in "${servers[@]}"; do
  case $s in
    knot) start_knot "${PORT[$s]}";; nsd) start_nsd "${PORT[$s]}";; unbound) start_unbound "${PORT[$s]}";;
    *) for i in "${!CMD_NAMES[@]}"; do if [ "${CMD_NAMES[$i]}" = "$s" ]; then start_cmd "${PORT[$s]}" "$i"; fi; done;;
  esac
  PIDOF[$s]=$LAST_PID
done
for s in "${servers[@]}"; do
  ok=""
  for _ in $(seq 1 100); do
    got=$(dig +short +tries=1 +time=1 @127.0.0.1 -p "${PORT[$s]}" ${want% *} A 2>/dev/null || true)
    [ "$got" = "${want#* }" ] && { ok=1; break; }
    sleep 0.3
  done
  [ -n "$ok" ] || { echo "$s did not answer ${want% *} with ${want#* } on port ${PORT[$s]}" >&2; exit 1; }
done

declare -A QPS LAT LOST
for r in $(seq 1 "$ROUNDS"); do
  for s in "${servers[@]}"; do
    out=$(dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$W/queries.txt" -l "$LEN" -c 8 -T 1 -q 500 2>&1)
    q=$(echo "$out" | awk '/Queries per second/{print $4}')
    l=$(echo "$out" | awk '/Average Latency/{print $4}')
    lost=$(echo "$out" | awk '/Queries lost/{print $3}')
    QPS[$s]="${QPS[$s]:-} $q"; LAT[$s]="${LAT[$s]:-} $l"; LOST[$s]="${LOST[$s]:-} $lost"
  done
done
# CPU per query at a fixed offered load: the server's user+system time over the run (all its
# processes), divided by the queries answered.
descendants() { # pid: it and every process under it
  local c
  echo "$1"
  for c in $(pgrep -P "$1" 2>/dev/null || true); do descendants "$c"; done
}
cpu_ticks() { # pid: utime+stime of it and every process under it, in clock ticks
  local t=0 p
  for p in $(descendants "$1"); do
    # The fields after the command name (which may hold spaces): utime and stime are 12 and 13.
    t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0)))
  done
  echo "$t"
}
declare -A CPU
HZ=$(getconf CLK_TCK)
for s in "${servers[@]}"; do
  before=$(cpu_ticks "${PIDOF[$s]}")
  out=$(dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$W/queries.txt" -l "$LEN" -c 8 -T 1 -q 500 -Q "$FIXED" 2>&1)
  after=$(cpu_ticks "${PIDOF[$s]}")
  done_q=$(echo "$out" | awk '/Queries completed/{print $3}')
  CPU[$s]=$(awk -v t=$((after - before)) -v hz="$HZ" -v q="${done_q:-0}" 'BEGIN { if (q > 0) printf "%.2f", t / hz / q * 1e6; else print "-" }')
done

printf '%-12s %12s %22s %14s %10s %10s %16s\n' server "QPS median" "QPS min-max" "avg lat (s)" lost "RSS MiB" "CPU us/query"
for s in "${servers[@]}"; do
  med=$(echo ${QPS[$s]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  mm=$(echo ${QPS[$s]} | tr ' ' '\n' | sort -n | awk 'NR==1{mn=$1} {mx=$1} END{printf "%s-%s", mn, mx}')
  lat=$(echo ${LAT[$s]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  lost=$(echo ${LOST[$s]} | tr ' ' '\n' | sort -n | tail -1)
  rss=0
  for p in ${PIDOF[$s]} $(pgrep -P "${PIDOF[$s]}" 2>/dev/null || true); do
    k=$(awk '/VmHWM/{print $2}' /proc/$p/status 2>/dev/null || echo 0); rss=$((rss + ${k:-0}))
  done
  printf '%-12s %12s %22s %14s %10s %10s %16s\n' "$s" "$med" "$mm" "$lat" "$lost" "$((rss/1024))" "${CPU[$s]}"
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $N services; dnsperf -l $LEN -c 8 -T 1 -q 500; $ROUNDS rounds; CPU at $FIXED QPS offered"
