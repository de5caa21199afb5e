# Parts F and G of tests/e2e/clients.sh (sourced there; uses its helpers): a small cluster
# network, resolved from pods as they resolve.
#
#   cdns-node  the node: bridge br0 (10.244.0.1, fd00:244::1), routes 10.96.0.10 to the DNS pod,
#              forwards; 169.254.20.10 on lo for the node-local cache (part G)
#   cdns-dns   the cluster DNS pod (10.244.0.53): clusterdns on kubeadm's Corefile with
#              `manifests`, 10.96.0.10 and fd00:10:96::a (the kube-dns Service's addresses)
#              on its lo, routed there by the node; its resolv.conf names the upstream
#   cdns-up    the upstream resolver (10.244.0.254): Knot DNS serving example.test
#   cdns-pa    a pod in namespace default (10.244.0.2, fd00:244::2), nameserver 10.96.0.10
#   cdns-pb    a pod in namespace prod (10.244.0.3, fd00:244::3), nameserver 10.96.0.10
#   cdns-pl    a pod in namespace default (10.244.0.4, fd00:244::4), nameserver 169.254.20.10
#
# Every pod's /etc/resolv.conf is the one kubelet writes (search NS.svc.cluster.local
# svc.cluster.local cluster.local, options ndots:5). Part F resolves from cdns-pa and cdns-pb
# with glibc (getent hosts/ahosts), nslookup, dig +search, host and a static musl program
# (tests/e2e/musl_resolve.c, when musl-gcc is there), and changes the manifests under them.
# Part G starts the node-local cache in cdns-node on the Corefile docker/kubernetes/nodelocal.yaml
# ships, unchanged, and resolves through it from cdns-pl.

FNS=(cdns-node cdns-dns cdns-up cdns-pa cdns-pb cdns-pl)
FDIR=$TMP/cluster
BIG=60                          # endpoints of the headless service `big`: > 512 bytes of A records

fns_exists() { ip netns list 2>/dev/null | awk -v n="$1" '$1 == n { f = 1 } END { exit !f }'; }

remove_fns() {
  local ns pid
  for ns in "${FNS[@]}"; do
    if fns_exists "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
    rm -rf "/etc/netns/$ns"
  done
  rmdir /etc/netns 2>/dev/null || true
}

# pod_resolv NS NAMESERVER: the resolv.conf kubelet writes for a pod in namespace NS.
pod_resolv() {
  printf '%s\n' "search $1.svc.cluster.local svc.cluster.local cluster.local" \
    "nameserver $2" "options ndots:5"
}

# attach NETNS LAST: a veth from the node's bridge into NETNS as eth0, 10.244.0.LAST/24 and
# fd00:244::LAST/64, default routes through the node.
attach() {
  local ns=$1 last=$2 port=vf-${1#cdns-}
  ip -n cdns-node link add "$port" type veth peer name eth0 netns "$ns" &&
    ip -n cdns-node link set "$port" master br0 up &&
    ip -n "$ns" addr add "10.244.0.$last/24" dev eth0 &&
    ip -n "$ns" addr add "fd00:244::$last/64" dev eth0 nodad &&
    ip netns exec "$ns" sh -c 'echo 0 >/proc/sys/net/ipv6/conf/eth0/accept_dad' &&
    ip -n "$ns" link set eth0 up &&
    ip -n "$ns" route add default via 10.244.0.1 &&
    ip -n "$ns" -6 route add default via fd00:244::1
}

# build_cluster_net: the namespaces, the bridge, the addresses and the routes; stops at the
# first command that fails.
build_cluster_net() {
  local ns
  for ns in "${FNS[@]}"; do
    # No duplicate address detection: a link-local address still tentative holds up the first
    # IPv6 packets routed through it.
    ip netns add "$ns" && ip -n "$ns" link set lo up &&
      ip netns exec "$ns" sh -c 'for c in all default; do
        echo 0 >/proc/sys/net/ipv6/conf/$c/accept_dad; done' || return 1
  done
  ip -n cdns-node link add br0 type bridge &&
    ip -n cdns-node addr add 10.244.0.1/24 dev br0 &&
    ip -n cdns-node addr add fd00:244::1/64 dev br0 nodad &&
    ip -n cdns-node link set br0 up &&
    ip -n cdns-node addr add 169.254.20.10/32 dev lo &&
    ip netns exec cdns-node sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward' &&
    ip netns exec cdns-node sh -c 'echo 1 >/proc/sys/net/ipv6/conf/all/forwarding' &&
    attach cdns-dns 53 && attach cdns-up 254 &&
    attach cdns-pa 2 && attach cdns-pb 3 && attach cdns-pl 4 &&
    ip -n cdns-dns addr add 10.96.0.10/32 dev lo &&
    ip -n cdns-dns addr add fd00:10:96::a/128 dev lo &&
    ip -n cdns-node route add 10.96.0.10/32 via 10.244.0.53 &&
    ip -n cdns-node -6 route add fd00:10:96::a/128 via fd00:244::53
}

# setup_cluster_net: the namespaces above; returns non-zero (with FNET_ERR) if the machine can't.
setup_cluster_net() {
  remove_fns
  if ! build_cluster_net 2>"$TMP/fnet.err"; then
    FNET_ERR=$(oneline "$(cat "$TMP/fnet.err")")
    return 1
  fi
  mkdir -p /etc/netns/cdns-dns /etc/netns/cdns-node /etc/netns/cdns-pa /etc/netns/cdns-pb \
    /etc/netns/cdns-pl
  echo "nameserver 10.244.0.254" >/etc/netns/cdns-dns/resolv.conf
  echo "nameserver 10.244.0.254" >/etc/netns/cdns-node/resolv.conf
  pod_resolv default 10.96.0.10 >/etc/netns/cdns-pa/resolv.conf
  pod_resolv prod 10.96.0.10 >/etc/netns/cdns-pb/resolv.conf
  pod_resolv default 169.254.20.10 >/etc/netns/cdns-pl/resolv.conf
}

# ---------------------------------------------------------------- the cluster's objects

k_namespace() { printf -- '---\napiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' "$1"; }

# k_service NS NAME CLUSTER-IPS PORT-NAME PORT: a ClusterIP service (IPs comma-separated).
k_service() {
  local ips=$3 policy=SingleStack
  [[ $ips == *,* ]] && policy=PreferDualStack
  printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\n' "$2" "$1"
  printf 'spec:\n  type: ClusterIP\n  ipFamilyPolicy: %s\n  clusterIP: %s\n  clusterIPs: [%s]\n' \
    "$policy" "${ips%%,*}" "$ips"
  printf '  ports: [{name: %s, port: %s, protocol: TCP}]\n' "$4" "$5"
}

# k_headless NS NAME PORT-NAME PORT ADDRESS[=HOSTNAME]...: a headless service and its slice.
k_headless() {
  local ns=$1 name=$2 pname=$3 port=$4 e; shift 4
  printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\n' "$name" "$ns"
  printf 'spec:\n  type: ClusterIP\n  clusterIP: None\n  clusterIPs: [None]\n'
  printf '  ports: [{name: %s, port: %s, protocol: TCP}]\n' "$pname" "$port"
  printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
  printf 'metadata:\n  name: %s-abcde\n  namespace: %s\n' "$name" "$ns"
  printf '  labels: {kubernetes.io/service-name: %s}\naddressType: IPv4\nendpoints:\n' "$name"
  for e; do
    printf -- '- addresses: [%s]\n  conditions: {ready: true}\n' "${e%%=*}"
    [[ $e == *=* ]] && printf '  hostname: %s\n' "${e#*=}"
  done
  printf 'ports: [{name: %s, port: %s, protocol: TCP}]\n' "$pname" "$port"
}

k_external() {
  printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\n' "$2" "$1"
  printf 'spec: {type: ExternalName, externalName: %s}\n' "$3"
}

# write_cluster [EXTRA-SERVICE]: the cluster's objects as manifests, replaced in one rename.
write_cluster() {
  local i big=()
  for ((i = 1; i <= BIG; i++)); do big+=("10.245.0.$i"); done
  {
    k_namespace default; k_namespace kube-system; k_namespace prod; k_namespace team-b
    k_service default kubernetes 10.96.0.1 https 443
    k_service kube-system kube-dns 10.96.0.10 dns 53
    k_service prod web 10.96.12.34,fd00:10:96::1234 http 80
    k_service team-b api 10.96.20.1 http 80
    k_headless prod db mysql 3306 10.244.9.10=db-0 10.244.9.11=db-1
    k_headless default big http 80 "${big[@]}"
    k_external prod ext www.example.test
    if [[ -n ${1:-} ]]; then k_service team-b "$1" 10.96.20.2 http 80; fi
  } >"$FDIR/cluster.yaml.new"
  mv "$FDIR/cluster.yaml.new" "$FDIR/cluster.yaml"
}

start_upstream() {
  mkdir -p "$FDIR/knot/db"
  {
    echo '$ORIGIN example.test.'; echo '$TTL 300'
    echo '@ SOA ns.example.test. admin.example.test. 1 3600 600 86400 60'
    echo '@ NS ns'; echo 'ns A 192.0.2.53'; echo 'www A 192.0.2.1'
  } >"$FDIR/knot/example.test.zone"
  printf '%s\n' "server:" "    rundir: \"$FDIR/knot\"" "    listen: 10.244.0.254@53" \
    "database:" "    storage: \"$FDIR/knot/db\"" \
    "template:" "  - id: default" "    storage: \"$FDIR/knot\"" "    file: \"%s.zone\"" \
    "zone:" "  - domain: example.test" >"$FDIR/knot/knot.conf"
  start_server "$TMP/f-knot.log" ip netns exec cdns-up "$(command -v knotd)" -c "$FDIR/knot/knot.conf"
  wait_ready "$SERVER_PID" "$TMP/f-knot.log" ip netns exec cdns-dns \
    dig @10.244.0.254 +time=1 +tries=1 www.example.test
}

# ---------------------------------------------------------------- part F

# pod NETNS CMD...: run CMD in a pod's namespace, bounded.
pod() { local ns=$1; shift; bounded 20 ip netns exec "$ns" "$@"; }

# metrics_from_node HOST PORT: GET /metrics from the node's namespace.
metrics_from_node() {
  bounded 10 ip netns exec cdns-node bash -c \
    'exec 3<>"/dev/tcp/$1/$2" && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' _ "$1" "$2"
}

# tcp_queries TEXT: the sum of coredns_dns_requests_total over TCP in a /metrics page.
tcp_queries() {
  awk '/^coredns_dns_requests_total\{/ && /proto="tcp"/ { n += $NF } END { print n + 0 }' <<<"$1"
}

# eventually SECS DESC EXPECTED CMD...: CMD's output becomes EXPECTED within SECS.
eventually() {
  local secs=$1 desc=$2 want=$3 got deadline; shift 3
  deadline=$((SECONDS + secs))
  while :; do
    got=$("$@" | sort -u | xargs)
    if [[ $got == "$want" ]] || ((SECONDS >= deadline)); then break; fi
    sleep 0.5
  done
  judge "$desc" "$got" test "$got" == "$want"
}

getent_v4() { pod "$1" getent ahostsv4 "$2" | awk 'NF { print $1 }' | sort -u; }

part_f_checks() {
  local out big=() tcp_before tcp_after i
  for ((i = 1; i <= BIG; i++)); do big+=("10.245.0.$i"); done

  # Short names in the pod's own namespace and across namespaces, as glibc resolves them.
  same_set "pod default: getent hosts kubernetes (own namespace)" f_first \
    "$(pod cdns-pa getent hosts kubernetes)" 10.96.0.1
  same_set "pod default: getent ahosts web.prod (A and AAAA on one socket)" f_first \
    "$(pod cdns-pa getent ahosts web.prod)" 10.96.12.34 fd00:10:96::1234
  same_set "pod default: getent hosts web.prod gives the AAAA first" f_first \
    "$(pod cdns-pa getent hosts web.prod)" fd00:10:96::1234
  same_set "pod prod: getent ahostsv4 web (own namespace)" lines \
    "$(getent_v4 cdns-pb web)" 10.96.12.34
  same_set "pod prod: getent ahostsv4 kubernetes.default (another namespace)" lines \
    "$(getent_v4 cdns-pb kubernetes.default)" 10.96.0.1
  same_set "pod prod: getent hosts db-0.db (a pod's hostname in a headless service)" f_first \
    "$(pod cdns-pb getent hosts db-0.db)" 10.244.9.10
  same_set "pod default: nslookup api.team-b" f_nslookup \
    "$(pod cdns-pa nslookup -timeout=2 -retry=1 api.team-b)" 10.96.20.1
  same_set "pod prod: nslookup db.prod (headless: every ready endpoint)" f_nslookup \
    "$(pod cdns-pb nslookup -timeout=2 -retry=1 db)" 10.244.9.10 10.244.9.11
  same_set "pod default: dig +search +short api.team-b" lines \
    "$(pod cdns-pa dig +search +short +time=2 +tries=1 api.team-b)" 10.96.20.1
  same_set "pod default: host web.prod" f_host "$(pod cdns-pa host -W 2 web.prod)" \
    10.96.12.34 fd00:10:96::1234
  out=$(pod cdns-pa host -W 2 -t SRV _http._tcp.api.team-b)
  judge "pod default: host -t SRV _http._tcp.api.team-b" "$out" \
    has_text "$out" "_http._tcp.api.team-b.svc.cluster.local has SRV record 0 100 80 api.team-b.svc.cluster.local."

  # The Service's IPv6 address: answers leave from it (not the pod's own address), or dig
  # would drop them.
  same_set "pod default: dig @fd00:10:96::a (IPv6 Service address) over UDP" lines \
    "$(pod cdns-pa dig @fd00:10:96::a +short +time=2 +tries=1 web.prod.svc.cluster.local AAAA)" \
    fd00:10:96::1234
  same_set "pod default: dig @fd00:10:96::a over TCP" lines \
    "$(pod cdns-pa dig @fd00:10:96::a +tcp +short +time=2 +tries=1 kubernetes.default.svc.cluster.local)" \
    10.96.0.1
  same_set "pod prod: dig @fd00:10:96::a, forwarded upstream" lines \
    "$(pod cdns-pb dig @fd00:10:96::a +short +time=2 +tries=1 www.example.test)" 192.0.2.1

  # A headless service too big for 512 bytes: glibc gets TC over UDP and asks again over TCP.
  tcp_before=$(tcp_queries "$(metrics_from_node 10.244.0.53 9153)")
  same_set "pod default: getent ahostsv4 big ($BIG endpoints, over TCP after TC)" lines \
    "$(getent_v4 cdns-pa big)" "${big[@]}"
  tcp_after=$(tcp_queries "$(metrics_from_node 10.244.0.53 9153)")
  judge "the big answer came over TCP (coredns_dns_requests_total proto=tcp grew)" \
    "tcp queries $tcp_before -> $tcp_after" test "$tcp_after" -gt "$tcp_before"

  # ExternalName through the search path, and names outside the cluster forwarded upstream.
  same_set "pod prod: getent ahostsv4 ext (ExternalName -> www.example.test, upstream)" lines \
    "$(getent_v4 cdns-pb ext)" 192.0.2.1
  out=$(pod cdns-pb dig +search +time=2 +tries=1 ext A)
  judge "pod prod: dig +search ext: the CNAME and the target's address in one answer" \
    "$(summary "$out")" test "$(rdata_of CNAME "$out") $(rdata_of A "$out")" == \
    "www.example.test. 192.0.2.1"
  same_set "pod default: getent ahostsv4 www.example.test (search path, then upstream)" lines \
    "$(getent_v4 cdns-pa www.example.test)" 192.0.2.1
  out=$(pod cdns-pa getent hosts nosuch)
  judge "pod default: getent hosts nosuch finds nothing, in time" "$out" test -z "$out"

  # Reverse lookups.
  out=$(pod cdns-pa getent hosts 10.96.12.34)
  judge "pod default: getent hosts 10.96.12.34 (PTR of a ClusterIP)" "$out" \
    has_text "$out" "web.prod.svc.cluster.local"
  out=$(pod cdns-pa getent hosts 10.244.9.11)
  judge "pod default: getent hosts 10.244.9.11 (PTR of a headless endpoint)" "$out" \
    has_text "$out" "db-1.db.prod.svc.cluster.local"
  out=$(pod cdns-pa nslookup -timeout=2 -retry=1 10.245.0.7)
  judge "pod default: nslookup 10.245.0.7 (an endpoint without hostname)" "$out" \
    has_text "$out" "name = 10-245-0-7.big.default.svc.cluster.local"
  out=$(pod cdns-pa host -W 2 fd00:10:96::1234)
  judge "pod default: host fd00:10:96::1234 (ip6.arpa PTR)" "$out" \
    has_text "$out" "pointer web.prod.svc.cluster.local."

  # musl's resolver: A and AAAA in parallel, its own search-path walk, no TCP fallback.
  if [[ -x $TMP/musl_resolve ]]; then
    same_set "musl: getaddrinfo web.prod" lines "$(pod cdns-pa "$TMP/musl_resolve" web.prod)" \
      10.96.12.34 fd00:10:96::1234
    same_set "musl: getaddrinfo kubernetes.default" lines \
      "$(pod cdns-pb "$TMP/musl_resolve" kubernetes.default)" 10.96.0.1
    same_set "musl: getaddrinfo db (headless, pod in prod)" lines \
      "$(pod cdns-pb "$TMP/musl_resolve" db)" 10.244.9.10 10.244.9.11
    same_set "musl: getaddrinfo ext (ExternalName through the search path)" lines \
      "$(pod cdns-pb "$TMP/musl_resolve" ext)" 192.0.2.1
    out=$(pod cdns-pa "$TMP/musl_resolve" big)
    judge "musl: getaddrinfo big (truncated over UDP; musl keeps what fits)" "$out" \
      bash -c '[ -n "$1" ] && ! grep -qv "^10\.245\.0\.[0-9]*$" <<<"$1"' _ "$out"
    out=$(pod cdns-pa "$TMP/musl_resolve" -r 10.96.20.1)
    judge "musl: getnameinfo 10.96.20.1" "$out" test "$out" == api.team-b.svc.cluster.local
    out=$(pod cdns-pa "$TMP/musl_resolve" nosuch 2>&1)
    judge "musl: getaddrinfo nosuch fails" "$out" has_text "$out" "nosuch:"
  else
    SKIP_REASON="no musl-gcc (scripts/test installs musl-tools)"
    record "musl: getaddrinfo and getnameinfo" 0
    SKIP_REASON=""
  fi

  # The manifests change under running pods: a new service appears, and goes again.
  write_cluster fresh
  eventually 10 "pod default: a service added to the manifests resolves (getent ahostsv4 fresh.team-b)" \
    10.96.20.2 getent_v4 cdns-pa fresh.team-b
  write_cluster
  eventually 10 "pod default: the service removed is gone again" "" getent_v4 cdns-pa fresh.team-b
}

part_f() {
  echo "# part F: pods in network namespaces resolve through clusterdns at 10.96.0.10 over a bridge"
  local reason=""
  if [[ $(id -u) != 0 ]]; then reason="needs root"
  elif ! command -v knotd >/dev/null; then reason="no knotd (scripts/test installs knot)"
  elif ! setup_cluster_net; then reason="cannot build the network: $FNET_ERR"
  fi
  if [[ -n $reason ]]; then
    SKIP_REASON=$reason; echo "# part F skipped: $reason"
    record "pods resolve through the cluster DNS" 0; SKIP_REASON=""; remove_fns; return 1
  fi
  mkdir -p "$FDIR"
  if command -v musl-gcc >/dev/null; then
    musl-gcc -static -Os -o "$TMP/musl_resolve" tests/e2e/musl_resolve.c 2>"$TMP/musl.err" ||
      record "musl-gcc builds tests/e2e/musl_resolve.c" 1 "$(cat "$TMP/musl.err")"
  fi
  if ! start_upstream; then
    record "Knot DNS starts in cdns-up" 1 "$READY_DETAIL"; remove_fns; return 1
  fi
  write_cluster
  sed 's|manifests ../../config/cluster.yaml|manifests cluster.yaml|' tests/e2e/Corefile.kubeadm \
    >"$FDIR/Corefile"
  start_server "$TMP/f-dns.log" ip netns exec cdns-dns "$BIN" -conf "$FDIR/Corefile"
  if ! wait_ready "$SERVER_PID" "$TMP/f-dns.log" ip netns exec cdns-pa \
    dig @10.96.0.10 +time=1 +tries=1 dns-version.cluster.local TXT; then
    record "the cluster DNS answers pods at 10.96.0.10" 1 "$READY_DETAIL"; remove_fns; return 1
  fi
  record "the cluster DNS answers pods at 10.96.0.10" 0
  part_f_checks
}

# ---------------------------------------------------------------- part G: node-local

# The Corefile docker/kubernetes/nodelocal.yaml ships.
nodelocal_corefile() {
  awk '/^  Corefile: \|$/ { on = 1; next } on && /^---/ { exit } on { sub(/^    /, ""); print }' \
    docker/kubernetes/nodelocal.yaml
}

part_g() {
  echo "# part G: the node-local cache (nodelocal.yaml's Corefile) on 169.254.20.10 in cdns-node"
  local out big=() i
  for ((i = 1; i <= BIG; i++)); do big+=("10.245.0.$i"); done
  nodelocal_corefile >"$FDIR/Corefile.nodelocal"
  judge "nodelocal.yaml's Corefile binds 169.254.20.10 in every block" \
    "$(cat "$FDIR/Corefile.nodelocal")" test "$(grep -c 'bind 169.254.20.10' "$FDIR/Corefile.nodelocal")" = 4
  start_server "$TMP/g-nodelocal.log" ip netns exec cdns-node "$BIN" -conf "$FDIR/Corefile.nodelocal"
  if ! wait_ready "$SERVER_PID" "$TMP/g-nodelocal.log" ip netns exec cdns-pl \
    dig @169.254.20.10 +time=1 +tries=1 kubernetes.default.svc.cluster.local; then
    record "the node-local cache answers on 169.254.20.10" 1 "$READY_DETAIL"; return
  fi
  record "the node-local cache answers on 169.254.20.10" 0
  out=$(bounded 5 ip netns exec cdns-node ss -Hlnu 'sport = :53' | awk '{ print $4 }' | sort -u | xargs)
  judge "node-local: UDP port 53 on the node is bound on 169.254.20.10 alone" "$out" \
    test "$out" == 169.254.20.10:53
  out=$(pod cdns-pl dig @10.244.0.1 +time=1 +tries=1 kubernetes.default.svc.cluster.local)
  judge "node-local: the node's own address (10.244.0.1) does not answer" "$(summary "$out")" \
    test -z "$(status_of "$out")"
  same_set "node-local pod: getent ahostsv4 kubernetes (cluster zone, forwarded over TCP)" lines \
    "$(getent_v4 cdns-pl kubernetes)" 10.96.0.1
  same_set "node-local pod: getent ahosts web.prod" f_first \
    "$(pod cdns-pl getent ahosts web.prod)" 10.96.12.34 fd00:10:96::1234
  same_set "node-local pod: getent ahostsv4 big ($BIG endpoints)" lines \
    "$(getent_v4 cdns-pl big)" "${big[@]}"
  same_set "node-local pod: getent ahostsv4 www.example.test (the node's resolver)" lines \
    "$(getent_v4 cdns-pl www.example.test)" 192.0.2.1
  out=$(pod cdns-pl nslookup -timeout=2 -retry=1 10.96.0.10)
  judge "node-local pod: nslookup 10.96.0.10 (in-addr.arpa, forwarded)" "$out" \
    has_text "$out" "name = kube-dns.kube-system.svc.cluster.local"
  for i in 1 2; do pod cdns-pl dig @169.254.20.10 +time=2 +tries=1 web.prod.svc.cluster.local A >/dev/null; done
  out=$(metrics_from_node 169.254.20.10 9253)
  judge "node-local: metrics on :9253 under server dns://169.254.20.10:53, cluster.local cache hits" \
    "$(grep -E '^coredns_(dns_requests|cache_hits)_total' <<<"$out" | head -n 8)" \
    awk '/^coredns_dns_requests_total\{/ && /server="dns:\/\/169\.254\.20\.10:53"/ { q = 1 }
      /^coredns_cache_hits_total\{server="dns:\/\/169\.254\.20\.10:53",view="",zones="cluster\.local\.",type="success"\}/ && $NF >= 1 { h = 1 }
      END { exit !(q && h) }' <<<"$out"
}
