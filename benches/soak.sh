#!/usr/bin/env bash
# Memory under a long mixed load: clusterdns (target/release/clusterdns, `cargo build --release`
# first) serves a generated cluster while dnsperf offers a steady pod-like query mix and a
# second client sends hostile traffic: mutated and truncated UDP packets, responses (QR set),
# and TCP connections left idle, half-sent or closed mid-message. The server's RSS is sampled
# every 10 s; the last line compares the end with the first sample after warm-up.
#
# usage: benches/soak.sh [-d SECONDS] [-q QPS] [-n SERVICES]   (defaults: 600 s, 20000, 1000)
# Installs dnsperf from Debian when missing. Everything it starts stops by itself at the end.
set -euo pipefail
DURATION=600; QPS=20000; N=1000
while [ $# -gt 0 ]; do
  case $1 in
    -d) DURATION=$2; shift 2;;
    -q) QPS=$2; shift 2;;
    -n) N=$2; shift 2;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; exit 0;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release/clusterdns
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
if ! command -v dnsperf >/dev/null; then
  apt-get update -qq && apt-get install -y -qq dnsperf >/dev/null
fi
W=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
python3 "$ROOT/benches/peers/gen_cluster.py" --services "$N" "$W" >/dev/null
PORT=5397
cat >"$W/Corefile" <<EOF
.:$PORT {
    errors
    prometheus 127.0.0.1:19153
    hosts {
        10.0.0.6 extra.example.com
        fallthrough
    }
    kubernetes cluster.local in-addr.arpa {
        manifests $W/cluster.yaml
        pods insecure
    }
    loadbalance
}
EOF
"$BIN" -conf "$W/Corefile" >"$W/server.log" 2>&1 & SERVER=$!; PIDS+=("$SERVER")
for _ in $(seq 50); do
  dig @127.0.0.1 -p "$PORT" +time=1 +tries=1 cluster.local SOA >/dev/null 2>&1 && break
  sleep 0.1
done
dnsperf -s 127.0.0.1 -p "$PORT" -d "$W/queries.txt" -l "$DURATION" -Q "$QPS" -c 8 -t 2 \
  >"$W/dnsperf.out" 2>&1 & PERF=$!; PIDS+=("$PERF")
# Hostile traffic for the same time: about 2000 mutated datagrams a second, and TCP abuse.
python3 - "$PORT" "$DURATION" >"$W/hostile.out" 2>&1 <<'PY' & HOSTILE=$!; PIDS+=("$HOSTILE")
import random, socket, struct, sys, time
port, duration = int(sys.argv[1]), float(sys.argv[2])
rng = random.Random(7)
def name(n):
    return b''.join(bytes([len(l)]) + l.encode() for l in n.split('.') if l) + b'\0'
def query(n, t, edns):
    b = struct.pack('>HHHHHH', rng.getrandbits(16), 0x0100, 1, 0, 0, 1 if edns else 0)
    b += name(n) + struct.pack('>HH', t, 1)
    return b + (b'\0' + struct.pack('>HHIH', 41, 1232, 0, 0) if edns else b'')
seeds = [query(n, t, e) for n in ['kubernetes.default.svc.cluster.local', 'x.y.svc.cluster.local',
         '_dns._udp.kube-dns.kube-system.svc.cluster.local', '1.0.96.10.in-addr.arpa', 'example.com']
         for t in (1, 28, 33, 12, 255) for e in (False, True)]
def mutate(b):
    b = bytearray(b)
    for _ in range(rng.randint(1, 6)):
        k = rng.randint(0, 5)
        if k == 0 and b: b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif k == 1 and b: b[rng.randrange(len(b))] = rng.getrandbits(8)
        elif k == 2: b = b[:rng.randint(0, len(b))]
        elif k == 3: b += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
        elif k == 4 and len(b) > 12: b[rng.randrange(4, 12)] = rng.getrandbits(8)
        elif k == 5 and len(b) > 13:
            i = rng.randrange(12, len(b) - 1)
            b[i:i + 2] = b'\xc0' + bytes([rng.randrange(64)])
    if rng.random() < 0.1 and len(b) > 2: b[2] |= 0x80
    return bytes(b)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.setblocking(False)
sent = conns = 0
held = []
end = time.time() + duration
while time.time() < end:
    for _ in range(200):
        try:
            udp.sendto(mutate(rng.choice(seeds)), ('127.0.0.1', port)); sent += 1
        except BlockingIOError:
            pass
    try:
        while True: udp.recv(65535)
    except BlockingIOError:
        pass
    # TCP: one connection left idle, one half-sent, one closed mid-message, every tick.
    for kind in range(3):
        try:
            c = socket.create_connection(('127.0.0.1', port), timeout=1)
            conns += 1
            if kind == 1: c.send(b'\x00\x40\x12\x34')
            if kind == 2: c.send(b'\x00\x20' + rng.choice(seeds)[:10]); c.close(); continue
            held.append(c)
        except OSError:
            pass
    while len(held) > 200:
        held.pop(0).close()
    time.sleep(0.1)
print(f'hostile: {sent} datagrams, {conns} connections')
PY
echo "time_s  rss_mib"
START=$SECONDS
samples=()
while kill -0 "$PERF" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status" 2>/dev/null || echo 0)
  [ "$rss" = 0 ] && { echo "the server is gone" >&2; exit 1; }
  samples+=("$rss")
  awk -v t=$((SECONDS - START)) -v r="$rss" 'BEGIN { printf "%6d  %7.1f\n", t, r / 1024 }'
  sleep 10
done
wait "$HOSTILE" || true
kill -0 "$SERVER" || { echo "the server is gone" >&2; exit 1; }
grep -E "Queries (sent|completed|lost)|Response codes" "$W/dnsperf.out"
cat "$W/hostile.out"
first=${samples[6]:-${samples[0]}}   # after a minute's warm-up
last=${samples[${#samples[@]}-1]}
max=$(printf '%s\n' "${samples[@]:6}" | sort -n | tail -n 1)
awk -v f="$first" -v l="$last" -v m="${max:-$last}" 'BEGIN {
  printf "RSS after warm-up %.1f MiB, at the end %.1f MiB, highest %.1f MiB (%+.1f %% end vs warm-up)\n",
    f / 1024, l / 1024, m / 1024, (l - f) * 100 / f }'
curl -s http://127.0.0.1:19153/metrics | grep -E "^coredns_panics_total" || true
