#!/usr/bin/env bash
# End-to-end checks of clusterdns with real DNS clients.
#
#   bash tests/e2e/clients.sh [path/to/clusterdns]     (default: target/release/clusterdns)
#
# Part A starts `clusterdns -conf config/Corefile` (port 1053 on loopback) and queries it with
# dig and kdig over UDP and TCP. Part B (root only) builds a pod-like network namespace whose
# resolv.conf is the one kubelet writes, runs a second server inside it on port 53
# (tests/e2e/Corefile.pod), and resolves through glibc (getent), nslookup, host and dig +search.
# Part C (root only) runs kubeadm's Corefile (tests/e2e/Corefile.kubeadm, `manifests` added) on
# port 53 in a second namespace whose resolv.conf names Knot DNS, started in a third namespace
# reached over a veth pair, as the upstream; and checks cluster and forwarded names, the
# cache, /health, /ready and /metrics.
# Part D runs dnsperf against a server (tests/e2e/Corefile.lameduck) and sends it SIGTERM a
# second in: every query of the 3-second run at 50k QPS must be answered, NOERROR, within the
# lameduck.
# Part E (root only) runs the server as user 65534 with CAP_NET_BIND_SERVICE alone (setpriv) on
# port 53 of a network namespace of its own, and without it.
# Parts F and G (root only; tests/e2e/pods.sh) build a node with a bridge, a cluster DNS pod at
# 10.96.0.10, an upstream (Knot) and pods in namespaces default and prod, and resolve from the
# pods with glibc, nslookup, dig, host and musl while the manifests change; then the node-local
# cache of docker/kubernetes/nodelocal.yaml on 169.254.20.10.
# Only loopback and the namespaces made here are used; every client call is bounded by `timeout`.
# Prints one "ok - ..." / "not ok - ..." / "skip - ..." line per check, then
# "N passed, M failed[, K skipped]"; exits non-zero if anything failed. Builds nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-target/release/clusterdns}
# A relative path is taken from the caller's directory if it exists there, else from the repo root.
if [[ $BIN != /* && -e $BIN ]]; then BIN=$(realpath "$BIN"); fi
cd "$ROOT"
if [[ $BIN != /* ]]; then BIN=$ROOT/$BIN; fi

PORT=1053                      # the port config/Corefile serves
ZONE=cluster.local.
NS=cdns-pod                    # network namespace of part B
NS_ETC=/etc/netns/$NS          # `ip netns exec` bind-mounts these files over /etc
VETH=(cdns-veth0 cdns-veth1)   # both ends stay inside $NS: a non-loopback address for AI_ADDRCONFIG
VETH_V4=(192.0.2.1/24 192.0.2.2/24)
VETH_V6=(2001:db8:53::1/64 2001:db8:53::2/64)
HEADLESS=sidecar-svc-headless.default.svc.cluster.local
HEADLESS_IPS=(10.36.0.0 10.36.0.1 10.39.0.1)

PASS=0 FAIL=0 SKIP=0
SKIP_REASON=""                 # when set, checks are reported as skipped instead of judged
PIDS=()                        # servers started here, stopped on exit
LOGS=()
TMP=$(mktemp -d /tmp/cdns-e2e.XXXXXX)

# ---------------------------------------------------------------- reporting

oneline() { tr '\n\t' '  ' <<<"$1" | sed 's/  */ /g; s/^ //; s/ $//' | cut -c1-400; }

# record DESC OK DETAIL: count one check; OK is 0 (pass) or anything else (fail).
record() {
  local desc=$1 ok=$2 detail=${3:-}
  if [[ -n $SKIP_REASON ]]; then
    SKIP=$((SKIP + 1)); echo "skip - $desc"
  elif [[ $ok == 0 ]]; then
    PASS=$((PASS + 1)); echo "ok - $desc"
  else
    FAIL=$((FAIL + 1)); echo "not ok - $desc (got: $(oneline "${detail:-nothing}"))"
  fi
}

# judge DESC DETAIL CMD...: record whether CMD succeeds.
judge() {
  local desc=$1 detail=$2; shift 2
  if "$@"; then record "$desc" 0; else record "$desc" 1 "$detail"; fi
}

# same_set DESC FILTER RAW EXPECTED...: the lines FILTER extracts from RAW equal EXPECTED, as sets.
same_set() {
  local desc=$1 filter=$2 raw=$3 got want; shift 3
  got=$("$filter" <<<"$raw" | sort -u)
  want=$(printf '%s\n' "$@" | sort -u)
  judge "$desc" "$raw" test "$got" == "$want"
}

# has_text TEXT WORD...: every WORD occurs in TEXT.
has_text() {
  local text=$1 w; shift
  for w; do grep -qF -- "$w" <<<"$text" || return 1; done
}

# lines: a filter for same_set that keeps every non-empty line (dig/kdig +short).
lines() { grep -v '^$' || true; }

finish() {
  if ((FAIL > 0)); then
    local log
    for log in "${LOGS[@]}"; do
      echo "# last lines of $(basename "$log"):"; tail -n 15 "$log" | sed 's/^/#   /'
    done
  fi
  if ((SKIP > 0)); then
    echo "$PASS passed, $FAIL failed, $SKIP skipped"
  else
    echo "$PASS passed, $FAIL failed"
  fi
  ((FAIL == 0))
}

bail() { record "$1" 1 "${2:-}"; finish || true; exit 1; }

# ---------------------------------------------------------------- processes and namespace

# bounded SECS CMD...: run CMD with a time limit; print its output (and a note on timeout).
bounded() {
  local secs=$1 rc=0; shift
  timeout "$secs" "$@" 2>&1 || rc=$?
  if ((rc == 124)); then echo "[timed out after $secs s]"; fi
  return 0
}

stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

netns_exists() { ip netns list 2>/dev/null | awk -v n="$NS" '$1 == n { f = 1 } END { exit !f }'; }

remove_netns() {
  if netns_exists; then
    local pid
    # Anything still inside is a server left by an earlier run that was killed before its cleanup.
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
  fi
  rm -rf "$NS_ETC"
  rmdir /etc/netns 2>/dev/null || true   # only if empty
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [[ $(id -u) == 0 ]]; then
    remove_netns; remove_kns; remove_fns; ip netns del "$PNS" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server LOG CMD...: run CMD in the background, logging to LOG; sets SERVER_PID.
start_server() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  LOGS+=("$log")
}

# wait_ready PID LOG CMD...: poll with CMD (a dig) until it gets any DNS reply, for up to 10 s.
wait_ready() {
  local pid=$1 log=$2 out deadline=$((SECONDS + 10)); shift 2
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      READY_DETAIL="server exited: $(tail -n 5 "$log")"; return 1
    fi
    out=$(bounded 3 "$@")
    if grep -q 'status: ' <<<"$out"; then return 0; fi
    sleep 0.3
  done
  READY_DETAIL="no reply within 10 s: $(tail -n 5 "$log")"
  return 1
}

port_busy() { [[ -n $(ss -Hlnut "( sport = :$1 )" 2>/dev/null) ]]; }

# ---------------------------------------------------------------- dig and friends

# dig_q TRANSPORT ARGS...: one bounded dig query to the part A server; prints the full output.
# TRANSPORT: udp, tcp (to 127.0.0.1) or udp6, tcp6 (to ::1).
dig_q() {
  local transport=$1 server=127.0.0.1 opts=(+time=2 +tries=1); shift
  [[ $transport == *6 ]] && server=::1
  [[ $transport == tcp* ]] && opts+=(+tcp)
  bounded 10 dig @"$server" -p "$PORT" "${opts[@]}" "$@"
}

# kdig_short TRANSPORT ARGS...: the same with kdig +short.
kdig_short() {
  local transport=$1 opts=(+time=2 +retry=0 +short); shift
  [[ $transport == tcp ]] && opts+=(+tcp)
  bounded 10 kdig @127.0.0.1 -p "$PORT" "${opts[@]}" "$@"
}

status_of() { sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$1" | head -n 1; }
flags_of()  { sed -n 's/^;; flags: \([^;]*\);.*/\1/p' <<<"$1" | head -n 1; }
has_flag()  { [[ " $(flags_of "$1") " == *" $2 "* ]]; }
# section NAME OUT: the records of dig's NAME section (QUESTION, ANSWER, AUTHORITY, ADDITIONAL).
section()   { awk -v h=";; $1 SECTION:" '$0 == h { on = 1; next } on && /^$/ { exit } on' <<<"$2"; }
# rdata_of TYPE OUT: the rdata of the answer records of TYPE, one a line, sorted.
rdata_of()  { section ANSWER "$2" | awk -v t="$1" '$4 == t { $1 = $2 = $3 = $4 = ""; sub(/^ +/, ""); print }' | sort; }
owners_of() { section "$1" "$2" | awk '{ print $1 }' | sort -u; }

# summary OUT: what a failed dig check shows.
summary() {
  if [[ -z $(status_of "$1") ]]; then oneline "$1"; return; fi
  echo "status=$(status_of "$1") flags=[$(flags_of "$1")]" \
    "answer=[$(oneline "$(section ANSWER "$1")")] authority=[$(oneline "$(section AUTHORITY "$1")")]"
}

# query_args TYPE NAME: dig arguments; a PTR query of an address uses -x.
query_args() {
  if [[ $1 == PTR && $2 =~ ^[0-9.]+$|: ]]; then echo "-x $2"; else echo "$2 $1"; fi
}

# expect_answer TRANSPORT TYPE NAME RDATA...: NOERROR, aa, and exactly these TYPE records.
expect_answer() {
  local transport=$1 type=$2 name=$3 out want; shift 3
  # shellcheck disable=SC2046 # query_args yields separate words
  out=$(dig_q "$transport" $(query_args "$type" "$name"))
  want=$(printf '%s\n' "$@" | sort)
  judge "$transport $type $name -> $(oneline "$want") (NOERROR, aa)" "$(summary "$out")" \
    answer_is "$out" "$type" "$want"
}
answer_is() {
  [[ $(status_of "$1") == NOERROR ]] && has_flag "$1" aa && [[ $(rdata_of "$2" "$1") == "$3" ]]
}

# expect_negative TRANSPORT TYPE NAME RCODE: RCODE, aa, empty answer, the zone's SOA in authority.
expect_negative() {
  local transport=$1 type=$2 name=$3 rcode=$4 out
  out=$(dig_q "$transport" "$name" "$type")
  judge "$transport $type $name -> $rcode, no answer, SOA $ZONE in authority" "$(summary "$out")" \
    negative_is "$out" "$rcode"
}
negative_is() {
  [[ $(status_of "$1") == "$2" ]] && has_flag "$1" aa && [[ -z $(section ANSWER "$1") ]] &&
    [[ $(section AUTHORITY "$1" | awk '$4 == "SOA" { print $1 }') == "$ZONE" ]]
}

# ---------------------------------------------------------------- part A: loopback

records_over() {
  local t=$1
  expect_answer "$t" A "$HEADLESS" "${HEADLESS_IPS[@]}"
  expect_answer "$t" A kubernetes.default.svc.cluster.local 10.96.0.1
  expect_negative "$t" AAAA kubernetes.default.svc.cluster.local NOERROR
  expect_answer "$t" A kube-dns.kube-system.svc.cluster.local 10.96.0.10
  expect_answer "$t" A web.prod.svc.cluster.local 10.96.12.34
  expect_answer "$t" AAAA web.prod.svc.cluster.local fd00:10:96::1234
  # CoreDNS weighs SRV records 100/(records of the priority), one per cluster IP: 50 for dual-stack web.
  expect_answer "$t" SRV _http._tcp.web.prod.svc.cluster.local "0 50 80 web.prod.svc.cluster.local."
  expect_answer "$t" SRV _https._tcp.kubernetes.default.svc.cluster.local \
    "0 100 443 kubernetes.default.svc.cluster.local."
  expect_answer "$t" SRV "_http._tcp.$HEADLESS" \
    "0 33 80 10-36-0-0.$HEADLESS." "0 33 80 10-36-0-1.$HEADLESS." "0 33 80 10-39-0-1.$HEADLESS."
  expect_answer "$t" SRV _mysql._tcp.db.prod.svc.cluster.local \
    "0 50 3306 db-0.db.prod.svc.cluster.local." "0 50 3306 db-1.db.prod.svc.cluster.local."
  expect_answer "$t" PTR 10.36.0.1 "10-36-0-1.$HEADLESS."
  expect_answer "$t" PTR 10.96.0.1 kubernetes.default.svc.cluster.local.
  expect_answer "$t" PTR 10.0.0.5 registry.example.internal.   # kubernetes falls through to hosts
  expect_answer "$t" A db-0.db.prod.svc.cluster.local 10.44.0.10
  expect_answer "$t" A db.prod.svc.cluster.local 10.44.0.10 10.44.0.11   # not-ready db-2 left out
  expect_negative "$t" A db-2.db.prod.svc.cluster.local NXDOMAIN
  expect_answer "$t" CNAME search.prod.svc.cluster.local search.example.com.
  expect_negative "$t" A nosuch.default.svc.cluster.local NXDOMAIN
  expect_negative "$t" A nosuch.svc.cluster.local NXDOMAIN     # no such namespace
  expect_negative "$t" A default.svc.cluster.local NOERROR     # a namespace: NODATA
  expect_answer "$t" A 10-36-0-7.default.pod.cluster.local 10.36.0.7
  expect_answer "$t" TXT dns-version.cluster.local '"1.1.0"'
  expect_answer "$t" A registry.example.internal 10.0.0.5
  expect_answer "$t" A mirror.example.internal 10.0.0.6
  expect_answer "$t" AAAA mirror.example.internal fd00::6
}

client_checks() {
  local t
  same_set "dig +short $HEADLESS" lines "$(dig_q udp +short "$HEADLESS")" "${HEADLESS_IPS[@]}"
  for t in udp tcp; do
    same_set "kdig $t +short $HEADLESS" lines "$(kdig_short "$t" "$HEADLESS" A)" "${HEADLESS_IPS[@]}"
  done
  same_set "kdig udp +short AAAA web.prod" lines \
    "$(kdig_short udp web.prod.svc.cluster.local AAAA)" fd00:10:96::1234
  same_set "kdig tcp +short SRV _mysql._tcp.db.prod" lines \
    "$(kdig_short tcp _mysql._tcp.db.prod.svc.cluster.local SRV)" \
    "0 50 3306 db-0.db.prod.svc.cluster.local." "0 50 3306 db-1.db.prod.svc.cluster.local."
}

message_checks() {
  local out mixed=SiDeCaR-SvC-HeAdLeSs.DeFaUlT.sVc.ClUsTeR.lOcAl
  out=$(dig_q udp "$mixed" A)
  judge "question comes back as asked: $mixed" "$(section QUESTION "$out")" \
    test "$(owners_of QUESTION "$out")" == ";$mixed."
  judge "answer owner keeps the question's case" "$(summary "$out")" \
    test "$(owners_of ANSWER "$out")" == "$mixed."
  judge "answer set of the mixed-case query" "$(summary "$out")" \
    test "$(rdata_of A "$out")" == "$(printf '%s\n' "${HEADLESS_IPS[@]}" | sort)"

  out=$(dig_q udp "$HEADLESS" A)
  judge "answer TTL is 30 (ttl 30)" "$(summary "$out")" \
    test "$(section ANSWER "$out" | awk '{ print $2 }' | sort -u)" == 30

  out=$(dig_q udp +norec +noedns "$HEADLESS" A)
  judge "+norec +noedns: NOERROR, aa, no rd, no OPT, 3 answers" "$(summary "$out")" \
    plain_reply "$out"

  out=$(dig_q udp +bufsize=0 "$HEADLESS" A)
  judge "EDNS with a 0-byte buffer (+bufsize=0) still answers in full" "$(summary "$out")" \
    answer_is "$out" A "$(printf '%s\n' "${HEADLESS_IPS[@]}" | sort)"

  out=$(dig_q udp +edns=1 +noednsnegotiation "$HEADLESS" A)
  judge "+edns=1 -> BADVERS with an EDNS version 0 OPT and no answer" "$(summary "$out")" \
    badvers_reply "$out"

  out=$(dig_q tcp +keepopen kubernetes.default.svc.cluster.local A web.prod.svc.cluster.local A)
  judge "two queries on one TCP connection (+keepopen)" "$(oneline "$out")" \
    test "$(awk '$4 == "A" { print $5 }' <<<"$out" | sort | xargs)" == "10.96.0.1 10.96.12.34"

  if ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/'; then
    expect_answer udp6 A "$HEADLESS" "${HEADLESS_IPS[@]}"
    expect_answer tcp6 AAAA web.prod.svc.cluster.local fd00:10:96::1234
  fi
}
plain_reply() {
  [[ $(status_of "$1") == NOERROR ]] && has_flag "$1" aa && ! has_flag "$1" rd &&
    ! grep -q 'OPT PSEUDOSECTION' <<<"$1" && [[ $(rdata_of A "$1" | wc -l) == 3 ]]
}
badvers_reply() {
  [[ $(status_of "$1") == BADVERS ]] && grep -q 'EDNS: version: 0' <<<"$1" &&
    [[ -z $(section ANSWER "$1") ]]
}

part_a() {
  echo "# part A: $BIN -conf config/Corefile, dig and kdig on 127.0.0.1 port $PORT"
  [[ -x $BIN ]] || bail "server binary $BIN exists (build it first; this script builds nothing)"
  if port_busy "$PORT"; then bail "port $PORT is free" "$(ss -Hlnutp "( sport = :$PORT )" 2>&1)"; fi
  start_server "$TMP/loopback.log" "$BIN" -conf config/Corefile
  wait_ready "$SERVER_PID" "$TMP/loopback.log" dig @127.0.0.1 -p "$PORT" +time=1 +tries=1 \
    dns-version.cluster.local TXT || bail "server answers on 127.0.0.1 port $PORT" "$READY_DETAIL"
  record "server answers on 127.0.0.1 port $PORT" 0
  records_over udp
  records_over tcp
  client_checks
  message_checks
}

# ---------------------------------------------------------------- part B: a pod's resolver

# in_pod CMD...: run CMD inside the namespace, bounded; prints its output.
in_pod() {
  if [[ -n $SKIP_REASON ]]; then return 0; fi
  bounded 20 ip netns exec "$NS" "$@"
}

f_nslookup() { awk '/^Name:/ { n = 1; next } n && /^Address:/ { print $2 }'; }
f_host()     { awk '/ has (IPv6 )?address / { print $NF }'; }
f_first()    { awk 'NF { print $1 }'; }

have_v6=0

# setup_pod: the namespace, kubelet's resolv.conf and a veth pair.
# Sets SKIP_REASON when the machine can't do it.
setup_pod() {
  if [[ $(id -u) != 0 ]]; then SKIP_REASON="needs root"; return; fi
  if ! command -v ip >/dev/null; then SKIP_REASON="no ip command"; return; fi
  remove_netns
  if ! ip netns add "$NS" 2>"$TMP/netns.err"; then
    SKIP_REASON="ip netns add failed: $(oneline "$(cat "$TMP/netns.err")")"; return
  fi
  ip -n "$NS" link set lo up
  mkdir -p "$NS_ETC"
  printf '%s\n' "search default.svc.cluster.local svc.cluster.local cluster.local" \
    "nameserver 127.0.0.1" "options ndots:5" >"$NS_ETC/resolv.conf"
  # glibc's AI_ADDRCONFIG (getent ahosts) ignores loopback: give the namespace real addresses.
  if ! ip -n "$NS" link add "${VETH[0]}" type veth peer name "${VETH[1]}" 2>"$TMP/veth.err"; then
    SKIP_REASON="no veth pair: $(oneline "$(cat "$TMP/veth.err")")"; return
  fi
  local i
  for i in 0 1; do
    ip -n "$NS" addr add "${VETH_V4[i]}" dev "${VETH[i]}"
    if ip -n "$NS" addr add "${VETH_V6[i]}" dev "${VETH[i]}" nodad 2>/dev/null; then have_v6=1; fi
    ip -n "$NS" link set "${VETH[i]}" up
  done
}

start_pod_server() {
  local desc="server answers on port 53 inside netns $NS"
  if [[ -n $SKIP_REASON ]]; then record "$desc" 0; return; fi
  start_server "$TMP/pod.log" ip netns exec "$NS" "$BIN" -conf tests/e2e/Corefile.pod -dns.port 53
  if wait_ready "$SERVER_PID" "$TMP/pod.log" ip netns exec "$NS" \
    dig @127.0.0.1 +time=1 +tries=1 dns-version.cluster.local TXT; then
    record "$desc" 0
  else
    record "$desc" 1 "$READY_DETAIL"
    SKIP_REASON="pod server did not start"
  fi
}

pod_checks() {
  local out web_ahosts=(10.96.12.34)
  if ((have_v6)); then web_ahosts+=(fd00:10:96::1234); fi

  same_set "nslookup sidecar-svc-headless" f_nslookup \
    "$(in_pod nslookup -timeout=2 -retry=1 sidecar-svc-headless)" "${HEADLESS_IPS[@]}"
  out=$(in_pod nslookup -timeout=2 -retry=1 10.36.0.1)
  judge "nslookup 10.36.0.1 names the endpoint" "$out" \
    has_text "$out" "name = 10-36-0-1.$HEADLESS"
  same_set "getent hosts kubernetes.default" f_first \
    "$(in_pod getent hosts kubernetes.default)" 10.96.0.1
  same_set "getent hosts kube-dns.kube-system" f_first \
    "$(in_pod getent hosts kube-dns.kube-system)" 10.96.0.10
  # getent hosts asks for IPv6 first (gethostbyname2 AF_INET6), so dual-stack web gives its AAAA.
  same_set "getent hosts web.prod" f_first "$(in_pod getent hosts web.prod)" fd00:10:96::1234
  same_set "getent hosts kubernetes.default.svc.cluster.local. (absolute)" f_first \
    "$(in_pod getent hosts kubernetes.default.svc.cluster.local.)" 10.96.0.1
  same_set "getent ahosts web.prod" f_first "$(in_pod getent ahosts web.prod)" "${web_ahosts[@]}"
  same_set "getent ahosts sidecar-svc-headless" f_first \
    "$(in_pod getent ahosts sidecar-svc-headless)" "${HEADLESS_IPS[@]}"
  out=$(in_pod getent hosts 10.36.0.1)
  judge "getent hosts 10.36.0.1 (PTR through glibc)" "$out" has_text "$out" "10-36-0-1.$HEADLESS"
  out=$(in_pod getent hosts nosuch-svc)
  judge "getent hosts nosuch-svc finds nothing, in time" "$out" test -z "$out"
  same_set "dig +search +short sidecar-svc-headless" lines \
    "$(in_pod dig +search +short +time=2 +tries=1 sidecar-svc-headless)" "${HEADLESS_IPS[@]}"
  same_set "dig +search +short kubernetes.default" lines \
    "$(in_pod dig +search +short +time=2 +tries=1 kubernetes.default)" 10.96.0.1
  same_set "host db.prod" f_host "$(in_pod host -W 2 db.prod)" 10.44.0.10 10.44.0.11
}

part_b() {
  echo "# part B: netns $NS, resolv.conf as kubelet writes it, server on port 53 inside"
  setup_pod
  start_pod_server
  if [[ -n $SKIP_REASON ]]; then echo "# part B skipped: $SKIP_REASON"; fi
  pod_checks
}

# ---------------------------------------------------------------- part C: kubeadm's Corefile

KNS=cdns-kubeadm               # network namespace of part C: clusterdns, as in its pod
KNS_ETC=/etc/netns/$KNS
UNS=cdns-upstream              # the upstream's namespace: Knot DNS, as the node's resolver
UPSTREAM=198.51.100.1          # Knot's address in $UNS, over a veth pair from $KNS
KVETH=(cdns-k0 cdns-k1)

in_dns() { bounded 20 ip netns exec "$KNS" "$@"; }

# http_get PORT PATH: status line and body, from inside the namespace.
http_get() {
  in_dns bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1 && printf "GET %s HTTP/1.0\r\n\r\n" "$2" >&3 && cat <&3' _ "$1" "$2"
}

remove_kns() {
  local pid ns
  for ns in "$KNS" "$UNS"; do
    if ip netns list 2>/dev/null | awk -v n="$ns" '$1 == n { f = 1 } END { exit !f }'; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  rm -rf "$KNS_ETC"
  rmdir /etc/netns 2>/dev/null || true
}

part_c() {
  echo "# part C: kubeadm's Corefile in netns $KNS, Knot DNS upstream at $UPSTREAM"
  local reason="" out
  if [[ $(id -u) != 0 ]]; then reason="needs root"
  elif ! command -v knotd >/dev/null; then reason="no knotd (scripts/test installs knot)"
  fi
  if [[ -n $reason ]]; then
    SKIP_REASON=$reason; echo "# part C skipped: $reason"
    record "kubeadm Corefile serves" 0; SKIP_REASON=""; return
  fi
  SKIP_REASON=""
  remove_kns
  ip netns add "$KNS"
  ip netns add "$UNS"
  ip -n "$KNS" link set lo up
  ip -n "$UNS" link set lo up
  ip -n "$KNS" link add "${KVETH[0]}" type veth peer name "${KVETH[1]}" netns "$UNS"
  ip -n "$KNS" addr add 198.51.100.2/24 dev "${KVETH[0]}"
  ip -n "$UNS" addr add "$UPSTREAM/24" dev "${KVETH[1]}"
  ip -n "$KNS" link set "${KVETH[0]}" up
  ip -n "$UNS" link set "${KVETH[1]}" up
  mkdir -p "$KNS_ETC" "$TMP/knot/db"
  echo "nameserver $UPSTREAM" >"$KNS_ETC/resolv.conf"
  {
    echo '$ORIGIN example.test.'; echo '$TTL 300'
    echo '@ SOA ns.example.test. admin.example.test. 1 3600 600 86400 60'
    echo '@ NS ns'; echo 'ns A 192.0.2.53'; echo 'www A 192.0.2.1'
  } >"$TMP/knot/example.test.zone"
  printf '%s
' "server:" "    rundir: \"$TMP/knot\"" "    listen: $UPSTREAM@53" \
    "database:" "    storage: \"$TMP/knot/db\"" \
    "template:" "  - id: default" "    storage: \"$TMP/knot\"" "    file: \"%s.zone\"" \
    "zone:" "  - domain: example.test" >"$TMP/knot/knot.conf"
  start_server "$TMP/knot.log" ip netns exec "$UNS" "$(command -v knotd)" -c "$TMP/knot/knot.conf"
  if ! wait_ready "$SERVER_PID" "$TMP/knot.log" ip netns exec "$KNS" \
    dig @"$UPSTREAM" +time=1 +tries=1 www.example.test; then
    record "Knot DNS starts in $KNS" 1 "$READY_DETAIL"; remove_kns; return
  fi
  start_server "$TMP/kubeadm.log" ip netns exec "$KNS" "$BIN" -conf tests/e2e/Corefile.kubeadm
  if wait_ready "$SERVER_PID" "$TMP/kubeadm.log" ip netns exec "$KNS" \
    dig @127.0.0.1 +time=1 +tries=1 dns-version.cluster.local TXT; then
    record "kubeadm Corefile starts on port 53" 0
  else
    record "kubeadm Corefile starts on port 53" 1 "$READY_DETAIL"; remove_kns; return
  fi
  same_set "kubeadm: kubernetes.default.svc.cluster.local" lines \
    "$(in_dns dig @127.0.0.1 +short +time=2 +tries=1 kubernetes.default.svc.cluster.local)" 10.96.0.1
  same_set "kubeadm: www.example.test forwarded to the resolv.conf upstream" lines \
    "$(in_dns dig @127.0.0.1 +short +time=2 +tries=1 www.example.test)" 192.0.2.1
  out=$(in_dns dig @127.0.0.1 +time=2 +tries=1 www.example.test)
  judge "kubeadm: the second answer comes from the cache (TTL at most 30)" "$out" \
    awk '$1 == "www.example.test." && $4 == "A" { found = 1; if ($2 > 30) exit 1 } END { exit !found }' <<<"$out"
  out=$(in_dns dig @127.0.0.1 +time=2 +tries=1 nosuch.default.svc.cluster.local)
  judge "kubeadm: a cluster name that does not exist is NXDOMAIN, not forwarded" "$out" \
    has_text "$out" "status: NXDOMAIN" "cluster.local."
  out=$(http_get 8080 /health)
  judge "kubeadm: /health on :8080" "$out" has_text "$out" "200" "OK"
  out=$(http_get 8181 /ready)
  judge "kubeadm: /ready on :8181" "$out" has_text "$out" "200"
  out=$(http_get 9153 /metrics)
  judge "kubeadm: /metrics on :9153 counts forwarding and the cache" "$out" has_text "$out" \
    "coredns_forward_requests_total{to=\"$UPSTREAM:53\"}" \
    'coredns_cache_hits_total{server="dns://:53",view="",zones=".",type="success"} 1' \
    'coredns_plugin_enabled{name="loop"' 'coredns_plugin_enabled{name="reload"'
  remove_kns
}

# ---------------------------------------------------------------- part D: SIGTERM under load

part_d() {
  echo "# part D: SIGTERM during a dnsperf run, lameduck 4s"
  if ! command -v dnsperf >/dev/null; then
    SKIP_REASON="no dnsperf (scripts/test installs it)"
    record "SIGTERM during dnsperf: nothing lost" 0; SKIP_REASON=""; return
  fi
  local pid out status start
  printf '%s\n' "kubernetes.default.svc.cluster.local A" "web.prod.svc.cluster.local AAAA" \
    "sidecar-svc-headless.default.svc.cluster.local A" "1.0.96.10.in-addr.arpa PTR" >"$TMP/queries"
  start_server "$TMP/lameduck.log" "$BIN" -conf tests/e2e/Corefile.lameduck
  pid=$SERVER_PID
  if ! wait_ready "$pid" "$TMP/lameduck.log" dig @127.0.0.1 -p 1054 +time=1 +tries=1 dns-version.cluster.local TXT; then
    record "SIGTERM during dnsperf: server starts" 1 "$READY_DETAIL"; return
  fi
  timeout 20 dnsperf -s 127.0.0.1 -p 1054 -d "$TMP/queries" -l 3 -Q 50000 -t 1 >"$TMP/dnsperf.out" 2>&1 &
  local perf=$!
  sleep 1
  start=$SECONDS
  kill -TERM "$pid"
  wait "$perf" || true
  out=$(cat "$TMP/dnsperf.out")
  judge "SIGTERM during dnsperf at 50k QPS: 100,000s of queries, none lost in lameduck" "$out" \
    bash -c 'grep -Eq "Queries completed: +[0-9]{6,} " <<<"$1" && grep -Eq "Queries lost: +0 " <<<"$1"' _ "$out"
  judge "SIGTERM during dnsperf: every answer NOERROR" "$out" \
    grep -Eq "Response codes: +NOERROR [0-9]+ \(100\.00%\)" <<<"$out"
  status=0
  wait "$pid" || status=$?
  judge "SIGTERM: the server exits 0 after lameduck" "status $status after $((SECONDS - start)) s" \
    test "$status" = 0 -a $((SECONDS - start)) -ge 3
}

# ---------------------------------------------------------------- part E: least privilege

PNS=cdns-priv                  # network namespace of part E: port 53 of its own

part_e() {
  echo "# part E: as user 65534 with CAP_NET_BIND_SERVICE only, on port 53"
  if [[ $(id -u) != 0 ]] || ! command -v setpriv >/dev/null; then
    SKIP_REASON="needs root and setpriv"; record "least privilege" 0; SKIP_REASON=""; return
  fi
  local dir="$TMP/priv" out status pid
  ip netns del "$PNS" 2>/dev/null || true
  if ! ip netns add "$PNS" 2>"$TMP/pns.err"; then
    SKIP_REASON="ip netns add failed: $(oneline "$(cat "$TMP/pns.err")")"
    record "least privilege" 0; SKIP_REASON=""; return
  fi
  ip netns exec "$PNS" ip link set lo up
  # Everything the unprivileged process reads, where it may read it (the clone may be in a
  # directory only root enters).
  mkdir -p "$dir"
  cp "$BIN" "$dir/clusterdns"
  cp config/cluster.yaml "$dir/"
  printf '.:53 {\n    kubernetes cluster.local in-addr.arpa {\n        manifests cluster.yaml\n    }\n}\n' \
    >"$dir/Corefile"
  chmod a+rx "$TMP"; chmod -R a+rX "$dir"
  local drop=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  status=0
  out=$(timeout 10 ip netns exec "$PNS" "${drop[@]}" --inh-caps=-all --bounding-set=-all \
    "$dir/clusterdns" -conf "$dir/Corefile" 2>&1) || status=$?
  judge "without CAP_NET_BIND_SERVICE: exit 1, naming dns://:53" "status $status: $out" \
    bash -c '[ "$1" = 1 ] && grep -q "dns://:53" <<<"$2"' _ "$status" "$out"
  start_server "$TMP/priv.log" ip netns exec "$PNS" "${drop[@]}" \
    --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
    --bounding-set=-all,+net_bind_service "$dir/clusterdns" -conf "$dir/Corefile"
  pid=$SERVER_PID
  if ! wait_ready "$pid" "$TMP/priv.log" ip netns exec "$PNS" dig @127.0.0.1 -p 53 +time=1 +tries=1 \
      kubernetes.default.svc.cluster.local A; then
    record "with CAP_NET_BIND_SERVICE only: serves port 53" 1 "$READY_DETAIL"
    ip netns del "$PNS" 2>/dev/null || true; return
  fi
  out=$(bounded 5 ip netns exec "$PNS" dig @127.0.0.1 -p 53 +short kubernetes.default.svc.cluster.local A)
  judge "with CAP_NET_BIND_SERVICE only: port 53 answers" "$out" test "$out" = 10.96.0.1
  out=$(grep -E '^(Uid|CapEff|CapPrm|CapBnd):' "/proc/$pid/status" | tr -s '\t ' ' ')
  judge "the process runs as 65534 with no capability but NET_BIND_SERVICE" "$out" \
    bash -c 'grep -q "^Uid: 65534 65534 65534 65534" <<<"$1" &&
      grep -q "^CapEff: 0000000000000400" <<<"$1" && grep -q "^CapPrm: 0000000000000400" <<<"$1" &&
      grep -q "^CapBnd: 0000000000000400" <<<"$1"' _ "$out"
  kill -TERM "$pid"
  status=0
  wait "$pid" || status=$?
  judge "as 65534: SIGTERM exits 0" "status $status" test "$status" = 0
  ip netns del "$PNS" 2>/dev/null || true
}

# shellcheck source=tests/e2e/pods.sh
source "$ROOT/tests/e2e/pods.sh"

part_a
part_b
part_c
part_d
part_e
if part_f; then part_g; fi
[[ $(id -u) != 0 ]] || remove_fns
finish
