#!/usr/bin/env bash
# Side-by-side DNS throughput on this machine: the same synthetic cluster, the same query mix,
# the same load generator (dnsperf), servers taken in turn (A B C A B C ...), loopback only.
#
# usage: benches/peers/peers.sh [-n SERVICES] [-l SECONDS] [-r ROUNDS] [-w WORKERS]
#                 [--only "knot nsd unbound"] [--fixed QPS] [--null]
#                 [--plot FILE.png] [--markdown FILE.md]
#                 [--cmd NAME 'COMMAND WITH {port} {yaml} {dir}']...
#                 [--corefile NAME TEMPLATE [--bin PATH]]...
#   clusterdns (target/release/clusterdns, built with `cargo build --release` first) is always
#   in the run; --only picks the peers among knot, nsd and unbound ("" for none); --cmd adds
#   another server, started with a Corefile.{port} written for it:
#     .:{port} { kubernetes cluster.local in-addr.arpa { manifests {yaml}; ttl 30 } }
#   where {dir} holds cluster.yaml (and the zone files).
#   --corefile adds clusterdns serving TEMPLATE (a Corefile with {port}, {yaml} and {dir} in
#   it) as the row NAME: benches/peers/Corefile.kubeadm and Corefile.k3s are the Corefiles
#   kubeadm and k3s install, around the same cluster; {dir}/NodeHosts holds k3s's node names.
#   --bin right after it runs another clusterdns binary on that Corefile (a build to compare).
#   --null adds the row "null": target/release/examples/null_responder (built by
#   `cargo build --release --examples`), clusterdns's UDP packet loop answering every query with
#   one fixed packet, started as `null_responder PORT WORKERS`: what the loop alone can do. Its
#   readiness check only wants dig to get a reply, whatever it holds. NULL_RESPONDER=PATH runs
#   another binary in its place (same arguments).
#   --plot writes a PNG (gnuplot, pngcairo) with two bar charts: median max QPS per server, and
#   the server's CPU µs per query at the fixed load. --markdown writes the table as a GitHub
#   markdown table with the machine, versions and command line below it, and, when knot is in
#   the run, each server's QPS and CPU per query relative to knot's.
# Prints one row per server: median QPS over the rounds, min-max, average latency (median over the
# rounds) and max latency (max over the rounds) in ms, lost (max over the rounds), peak RSS, and
# the server's CPU time per query at a fixed offered load (--fixed, 50000 QPS by default), read
# from /proc for its process and every process under it. Installs the peers in the run, dnsperf,
# dig (and gnuplot-nox for --plot) from Debian when missing. Every server is stopped by PID.
set -euo pipefail
N=1000; LEN=10; ROUNDS=3; WORKERS=$(nproc); ONLY="knot nsd unbound"; FIXED=50000
NULL=""; PLOT=""; MARKDOWN=""
declare -a CMD_NAMES=() CMD_LINES=() CMD_CONFS=()
ARGV=("$@")
value() { [ "$2" -ge 2 ] || { echo "$1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case $1 in
    -n) value "$1" $#; N=$2; shift 2;;
    -l) value "$1" $#; LEN=$2; shift 2;;
    -r) value "$1" $#; ROUNDS=$2; shift 2;;
    -w) value "$1" $#; WORKERS=$2; shift 2;;
    --only) value "$1" $#; ONLY=$2; shift 2;;
    --fixed) value "$1" $#; FIXED=$2; shift 2;;
    --null) NULL=1; shift;;
    --plot) value "$1" $#; PLOT=$2; shift 2;;
    --markdown) value "$1" $#; MARKDOWN=$2; shift 2;;
    --cmd) [ $# -ge 3 ] || { echo "--cmd needs NAME and COMMAND" >&2; exit 2; }
           CMD_NAMES+=("$2"); CMD_LINES+=("$3"); CMD_CONFS+=(""); shift 3;;
    --corefile) [ $# -ge 3 ] || { echo "--corefile needs NAME and TEMPLATE" >&2; exit 2; }
           [ -r "$3" ] || { echo "--corefile: cannot read $3" >&2; exit 2; }
           CMD_NAMES+=("$2"); CMD_LINES+=("{bin} -conf {dir}/Corefile.{port}")
           CMD_CONFS+=("$(cd "$(dirname -- "$3")" && pwd)/$(basename -- "$3")"); shift 3
           if [ "${1:-}" = --bin ]; then
             value --bin $#; [ -x "$2" ] || { echo "--bin: $2 is not executable" >&2; exit 2; }
             CMD_LINES[${#CMD_LINES[@]}-1]="$2 -conf {dir}/Corefile.{port}"; shift 2
           fi;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; exit 0;;
    *) echo "unknown argument $1 (--help for usage)" >&2; exit 2;;
  esac
done
for s in $ONLY; do
  case $s in knot|nsd|unbound) ;; *) echo "--only: unknown peer $s (knot, nsd, unbound)" >&2; exit 2;; esac
done
for f in "$PLOT" "$MARKDOWN"; do
  if [ -n "$f" ] && [ ! -w "$(dirname -- "$f")" ]; then echo "cannot write $f" >&2; exit 2; fi
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$ROOT/target/release/clusterdns
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
NULL_BIN=${NULL_RESPONDER:-$ROOT/target/release/examples/null_responder}
if [ -n "$NULL" ] && [ ! -x "$NULL_BIN" ]; then
  echo "--null: $NULL_BIN does not exist; build it first: cargo build --release --examples" >&2
  exit 2
fi
CMD_NAMES=(clusterdns "${CMD_NAMES[@]}")
CMD_LINES=("$BIN -conf {dir}/Corefile.{port}" "${CMD_LINES[@]}")
CMD_CONFS=("" "${CMD_CONFS[@]}")
need=()
wanted="dnsperf:dnsperf dig:bind9-dnsutils"
for s in $ONLY; do
  case $s in knot) wanted="$wanted knotd:knot";; *) wanted="$wanted $s:$s";; esac
done
[ -z "$PLOT" ] || wanted="$wanted gnuplot:gnuplot-nox"
for b in $wanted; do
  command -v "${b%%:*}" >/dev/null || need+=("${b#*:}")
done
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; fi

W=$(mktemp -d /tmp/peers.XXXXXX)
python3 "$HERE/gen_cluster.py" "$W" --services "$N" --queries 200000 >/dev/null
# k3s's NodeHosts: the nodes' addresses and names, as k3s writes them.
printf '10.0.0.11 k3s-server\n10.0.0.12 k3s-agent-1\n10.0.0.13 k3s-agent-2\n' >"$W/NodeHosts"
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
  knotd -c "$W/knot/knot.conf" >"$W/knot/log" 2>&1 & LAST_PID=$!; PIDS+=("$LAST_PID")
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
  nsd -d -c "$W/nsd/nsd.conf" >"$W/nsd/log" 2>&1 & LAST_PID=$!; PIDS+=("$LAST_PID")
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
  unbound -d -c "$W/unbound/unbound.conf" >"$W/unbound/log" 2>&1 & LAST_PID=$!; PIDS+=("$LAST_PID")
}
start_cmd() { # port index
  local conf=${CMD_CONFS[$2]}
  if [ -n "$conf" ]; then
    sed -e "s|{port}|$1|g" -e "s|{yaml}|$W/cluster.yaml|g" -e "s|{dir}|$W|g" "$conf" >"$W/Corefile.$1"
  else
    printf '.:%s {\n    kubernetes cluster.local in-addr.arpa {\n        manifests %s\n        ttl 30\n    }\n}\n' \
      "$1" "$W/cluster.yaml" >"$W/Corefile.$1"
  fi
  local line=${CMD_LINES[$2]}
  line=${line//\{port\}/$1}; line=${line//\{yaml\}/$W/cluster.yaml}; line=${line//\{dir\}/$W}; line=${line//\{bin\}/$BIN}
  bash -c "exec $line" >"$W/cmd$2.log" 2>&1 & LAST_PID=$!; PIDS+=("$LAST_PID")
}
start_null() { # port
  "$NULL_BIN" "$1" "$WORKERS" >"$W/null.log" 2>&1 & LAST_PID=$!; PIDS+=("$LAST_PID")
}
alive() { # pid: running (not gone, not a zombie)
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1 || true)
  [ -n "$st" ] && [ "$st" != Z ]
}

declare -A PORT PIDOF LOG
port=5350
servers=()
for s in $ONLY; do servers+=("$s"); PORT[$s]=$port; port=$((port+1)); done
for i in "${!CMD_NAMES[@]}"; do servers+=("${CMD_NAMES[$i]}"); PORT[${CMD_NAMES[$i]}]=$port; port=$((port+1)); done
if [ -n "$NULL" ]; then servers+=(null); PORT[null]=$port; port=$((port+1)); fi

want=$(grep -m1 '^svc-.* A 10\.96\.' "$W/cluster.local.zone" | awk '{print $1, $3}')
for s in "${servers[@]}"; do
  case $s in
    knot|nsd|unbound) "start_$s" "${PORT[$s]}"; LOG[$s]=$W/$s/log;;
    null) start_null "${PORT[$s]}"; LOG[$s]=$W/null.log;;
    *) for i in "${!CMD_NAMES[@]}"; do
         if [ "${CMD_NAMES[$i]}" = "$s" ]; then start_cmd "${PORT[$s]}" "$i"; LOG[$s]=$W/cmd$i.log; fi
       done;;
  esac
  PIDOF[$s]=$LAST_PID
done
for s in "${servers[@]}"; do
  ok=""
  for _ in $(seq 1 100); do
    alive "${PIDOF[$s]}" || { echo "$s exited before answering; its log:" >&2; tail -n 20 "${LOG[$s]}" >&2; exit 1; }
    if [ "$s" = null ]; then
      # The null responder answers everything with the same packet: any reply will do.
      if dig +tries=1 +time=1 @127.0.0.1 -p "${PORT[$s]}" "${want% *}" A 2>/dev/null | grep -q 'status:'; then ok=1; break; fi
    else
      got=$(dig +short +tries=1 +time=1 @127.0.0.1 -p "${PORT[$s]}" "${want% *}" A 2>/dev/null || true)
      [ "$got" = "${want#* }" ] && { ok=1; break; }
    fi
    sleep 0.3
  done
  if [ -z "$ok" ]; then
    if [ "$s" = null ]; then echo "null did not reply on port ${PORT[$s]}" >&2
    else echo "$s did not answer ${want% *} with ${want#* } on port ${PORT[$s]}" >&2; fi
    exit 1
  fi
done

# Per round and server: QPS, average and max latency (s), queries lost.
declare -A QPS LAT LATMAX LOST
for _ in $(seq 1 "$ROUNDS"); do
  for s in "${servers[@]}"; do
    out=$(dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$W/queries.txt" -l "$LEN" -c 8 -T 1 -q 500 2>&1 || true)
    q=$(awk '/Queries per second/{print $4}' <<<"$out")
    # "Average Latency (s):  0.000123 (min 0.000010, max 0.004567)"
    read -r l lmax < <(awk '/Average Latency/{ mx = "-"
      for (i = 5; i < NF; i++) if ($i == "max") { mx = $(i + 1); gsub(/[,)]/, "", mx) }
      print $4, mx }' <<<"$out") || { l=""; lmax=""; }
    lost=$(awk '/Queries lost/{print $3}' <<<"$out")
    if [ -z "$q" ]; then echo "dnsperf against $s gave no result:" >&2; tail -n 5 <<<"$out" >&2; fi
    QPS[$s]="${QPS[$s]:-} $q"; LAT[$s]="${LAT[$s]:-} $l"; LATMAX[$s]="${LATMAX[$s]:-} $lmax"
    LOST[$s]="${LOST[$s]:-} $lost"
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
  out=$(dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$W/queries.txt" -l "$LEN" -c 8 -T 1 -q 500 -Q "$FIXED" 2>&1 || true)
  after=$(cpu_ticks "${PIDOF[$s]}")
  done_q=$(awk '/Queries completed/{print $3}' <<<"$out")
  CPU[$s]=$(awk -v t=$((after - before)) -v hz="$HZ" -v q="${done_q:-0}" 'BEGIN { if (q > 0) printf "%.2f", t / hz / q * 1e6; else print "-" }')
done

# Summaries over the rounds ("-" when there is nothing to summarize).
nums() { tr ' ' '\n' <<<"$1" | grep -E '^[0-9.eE+-]+$' | grep -v '^-$' | sort -g || true; }
median() { nums "$1" | awk '{a[NR] = $1} END { if (!NR) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.6f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
lowest() { nums "$1" | awk 'NR == 1 {print; f = 1} END { if (!f) print "-" }'; }
highest() { nums "$1" | awk '{m = $1} END { print (NR ? m : "-") }'; }
fmt() { # printf format, value ("-" stays "-"), scale
  awk -v f="$1" -v v="$2" -v k="${3:-1}" 'BEGIN { if (v == "-" || v == "") print "-"; else printf f "\n", v * k }'
}
commas() { # integer with thousands separators
  awk -v v="$1" 'BEGIN { if (v == "-" || v == "") { print "-"; exit } s = sprintf("%.0f", v); o = ""
    while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) } print s o }'
}
ratio() { # a b: a/b as "0.94 ×"
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f ×\n", a / b }'
}
declare -A MED MIN MAX AVGMS MAXMS LOSTMAX RSS
for s in "${servers[@]}"; do
  MED[$s]=$(fmt '%.0f' "$(median "${QPS[$s]}")")
  MIN[$s]=$(fmt '%.0f' "$(lowest "${QPS[$s]}")")
  MAX[$s]=$(fmt '%.0f' "$(highest "${QPS[$s]}")")
  AVGMS[$s]=$(fmt '%.3f' "$(median "${LAT[$s]}")" 1000)
  MAXMS[$s]=$(fmt '%.2f' "$(highest "${LATMAX[$s]}")" 1000)
  LOSTMAX[$s]=$(highest "${LOST[$s]}")
  rss=0
  for p in $(descendants "${PIDOF[$s]}"); do
    k=$(awk '/VmHWM/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0); rss=$((rss + ${k:-0}))
  done
  RSS[$s]=$((rss / 1024))
done

CORES=$(nproc)
MODEL=$(grep -m1 -E '^(model name|Model)[[:space:]]*:' /proc/cpuinfo | cut -d: -f2- | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' || true)
MODEL=${MODEL:-unknown CPU}
DATE=$(date +%F)
MACHINE="$CORES cores, $MODEL"
RUN="$N services; dnsperf -l $LEN -c 8 -T 1 -q 500; $ROUNDS rounds; CPU at $FIXED QPS offered"
version_of() { # server: its version, "" when unknown
  case $1 in
    clusterdns) local v g
      v=$("$BIN" -version 2>/dev/null | head -n 1 | sed 's/^clusterdns-//' || true)
      g=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true)
      if [ -n "$g" ] && ! git -C "$ROOT" diff --quiet HEAD 2>/dev/null; then g="$g+changes"; fi
      echo "$v${g:+ ($g)}";;
    knot) knotd --version 2>/dev/null | sed -n '1s/.*version //p' || true;;
    nsd) nsd -v 2>&1 | sed -n '1s/^NSD version //p' || true;;
    unbound) unbound -V 2>/dev/null | sed -n '1s/^Version //p' || true;;
    dnsperf) dnsperf -h 2>&1 | sed -n 's/^Version //p' | head -n 1 || true;;
  esac
}
declare -A VER
VERSIONS=""
for s in "${servers[@]}" dnsperf; do
  VER[$s]=$(version_of "$s")
  [ -z "${VER[$s]}" ] || VERSIONS="${VERSIONS:+$VERSIONS, }$s ${VER[$s]}"
done
COMMAND="benches/peers/peers.sh"
[ ${#ARGV[@]} -eq 0 ] || COMMAND="$COMMAND $(printf '%q ' "${ARGV[@]}" | sed 's/ $//')"

printf '%-12s %11s %17s %13s %13s %8s %8s %13s\n' server "QPS median" "QPS min-max" "avg lat (ms)" "max lat (ms)" lost "RSS MiB" "CPU us/query"
for s in "${servers[@]}"; do
  printf '%-12s %11s %17s %13s %13s %8s %8s %13s\n' "$s" "${MED[$s]}" "${MIN[$s]}-${MAX[$s]}" \
    "${AVGMS[$s]}" "${MAXMS[$s]}" "${LOSTMAX[$s]}" "${RSS[$s]}" "${CPU[$s]}"
done
echo "machine: $MACHINE; $DATE; $RUN"
echo "versions: $VERSIONS"

if [ -n "$MARKDOWN" ]; then
  pretty() { # server: the name a reader knows it by
    local v=${VER[$1]:-}
    v=$(sed -E 's/^([0-9]+\.[0-9]+).*/\1/' <<<"$v")
    case $1 in
      knot) echo "Knot DNS${v:+ $v}";; nsd) echo "NSD${v:+ $v}";; unbound) echo "unbound${v:+ $v}";;
      null) echo "null responder";; *) echo "$1";;
    esac
  }
  has_knot=""; [ -z "${PIDOF[knot]:-}" ] || has_knot=1
  {
    hdr="| server | max QPS (median of $ROUNDS) | min–max | avg latency | max latency | lost | peak RSS | CPU per query at $(commas "$FIXED") QPS |"
    sep="|---|--:|--:|--:|--:|--:|--:|--:|"
    if [ -n "$has_knot" ]; then hdr="$hdr QPS vs knot | CPU vs knot |"; sep="$sep--:|--:|"; fi
    echo "$hdr"; echo "$sep"
    for s in "${servers[@]}"; do
      row="| $(pretty "$s") | $(commas "${MED[$s]}") | $(commas "${MIN[$s]}")–$(commas "${MAX[$s]}")"
      row="$row | $(fmt '%.3f ms' "${AVGMS[$s]}") | $(fmt '%.2f ms' "${MAXMS[$s]}") | ${LOSTMAX[$s]}"
      row="$row | ${RSS[$s]} MiB | $(fmt '%.2f µs' "${CPU[$s]}") |"
      if [ -n "$has_knot" ]; then
        row="$row $(ratio "${MED[$s]}" "${MED[knot]}") | $(ratio "${CPU[$s]}" "${CPU[knot]}") |"
      fi
      echo "$row"
    done
    echo
    echo "- machine: $MACHINE; $DATE"
    echo "- run: $RUN (servers taken in turn, loopback, dnsperf on the same cores)"
    echo "- versions: $VERSIONS"
    echo "- command: \`$COMMAND\`"
  } >"$MARKDOWN"
  echo "markdown: $MARKDOWN"
fi

if [ -n "$PLOT" ]; then
  gq() { local s=${1//\'/\'\'}; printf "'%s'" "$s"; } # a gnuplot single-quoted string
  dat=$W/plot.dat
  : >"$dat"
  for s in "${servers[@]}"; do
    case $s in clusterdns) c=$((0xd95f02));; null) c=$((0x999999));; *) c=$((0x1f77b4));; esac
    printf '%s\t%s\t%s\t%s\n' "$s" "${MED[$s]}" "${CPU[$s]}" "$c" >>"$dat"
  done
  n=${#servers[@]}
  gnuplot <<EOF
set terminal pngcairo size 1280,600 noenhanced font 'Sans,11'
set output $(gq "$PLOT")
set datafile separator "\t"
set datafile missing "-"
set multiplot layout 1,2 title $(gq "clusterdns and peers on loopback — $MACHINE — $N services — $DATE") font 'Sans,13'
set style fill solid 0.85 border rgb '#333333'
set boxwidth 0.6
unset key
set grid ytics lc rgb '#dddddd'
set border 3
set xtics nomirror scale 0
set ytics nomirror
set xrange [-0.6:$n - 0.4]
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set title $(gq "max QPS, median of $ROUNDS rounds (dnsperf -c 8 -q 500, ${LEN} s each)")
set ylabel 'queries per second'
set format y '%.0s%c'
plot $(gq "$dat") using 0:2:4:xtic(1) with boxes lc rgb variable, \
     '' using 0:2:(sprintf('%.0fk', column(2) / 1000)) with labels offset 0,0.8
set title $(gq "server CPU per query at $FIXED QPS offered (user+system, /proc)")
set ylabel 'CPU µs per query'
set format y '%g'
plot $(gq "$dat") using 0:3:4:xtic(1) with boxes lc rgb variable, \
     '' using 0:3:(sprintf('%.2f', column(3))) with labels offset 0,0.8
unset multiplot
EOF
  echo "plot: $PLOT"
fi
