#!/usr/bin/env bash
# A slowloris crowd against a real `cuvette serve` on loopback: rounds of CONNECTIONS
# connections that never finish their request (half stop inside the headers, half inside the
# body), held until the server's deadlines pass. Prints the server's resident memory (RSS) at
# its baseline, while each crowd is connected and after it left; how many of the crowd the
# server closed; and whether a normal request was answered during the attack.
#
# Baseline: the RSS after a warm-up of ordinary traffic (sign-in pages, health and readiness
# probes, a burst of 50 clients at once), before any attack. SLOWLORIS_SETTLE seconds (15)
# after each crowd left, the RSS must be back within the tolerance: the baseline plus
# SLOWLORIS_TOLERANCE_MB (10 MB). Exits 1 when memory does not come back after a round, when
# the server does not close the whole crowd, or when a normal request is not answered.
# Bounded: about 40 s a round. Loopback only.
#
#   scripts/slowloris.sh [CONNECTIONS] [ROUNDS]      (3,000 and 3 by default; measures the
#                                                    release build, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-3000}"
ROUNDS="${2:-3}"
PORT="${SLOWLORIS_PORT:-18080}"
BIN="${CUVETTE_BIN:-target/release/cuvette}"
[ -x "$BIN" ] || cargo build --release --locked -p cuvette >/dev/null
DATA="$(mktemp -d)"
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

"$BIN" serve --data "$DATA" --listen "127.0.0.1:$PORT" --no-mllp --no-astm >"$DATA/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.1
done

python3 - "$PORT" "$N" "$SERVER" "$ROUNDS" "${SLOWLORIS_TOLERANCE_MB:-10}" "${SLOWLORIS_SETTLE:-15}" <<'PY'
import http.client, socket, sys, threading, time
port, n, pid, rounds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
tolerance, settle = float(sys.argv[5]), float(sys.argv[6])

def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0

def ordinary(k):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(k):
        c.request("GET", ("/login", "/healthz", "/readyz")[i % 3])
        c.getresponse().read()
    c.close()

# Warm-up: the buffers, caches and thread-local pools ordinary traffic needs are made before
# the baseline is taken, so that the baseline is the server at work, not the server asleep.
ordinary(300)
burst = [threading.Thread(target=ordinary, args=(30,)) for _ in range(50)]
for t in burst: t.start()
for t in burst: t.join()
time.sleep(2)
baseline = rss()
print(f"connections: {n}, rounds: {rounds}")
print(f"RSS baseline: {baseline:.1f} MB (after warm-up; tolerance +{tolerance:.0f} MB, {settle:.0f} s to settle)")

failures = []
for round_ in range(1, rounds + 1):
    crowd = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        if i % 2 == 0:
            s.sendall(b"GET /login HTTP/1.1\r\nHost: lab\r\nX-Slow: ")
        else:
            s.sendall(b"POST /login HTTP/1.1\r\nHost: lab\r\nContent-Length: 100000\r\n\r\nusername=")
        s.setblocking(False)
        crowd.append(s)
    time.sleep(1)
    during = rss()
    t = time.monotonic()
    probe = socket.create_connection(("127.0.0.1", port), timeout=10)
    probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
    answer = probe.recv(100).split(b"\r\n")[0].decode()
    answered_ms = 1000 * (time.monotonic() - t)
    probe.close()
    if not answer.endswith("200 OK"):
        failures.append(f"round {round_}: a normal request during the attack got {answer!r}")
    deadline = time.monotonic() + 40
    open_ = set(range(n))
    while open_ and time.monotonic() < deadline:
        for i in list(open_):
            try:
                if not crowd[i].recv(4096):
                    open_.discard(i)
            except BlockingIOError:
                pass
            except OSError:
                open_.discard(i)
        time.sleep(0.2)
    closed_after = time.monotonic() - t
    for s in crowd:
        s.close()
    if open_:
        failures.append(f"round {round_}: {len(open_)} of the crowd still open after 40 s")
    # The allocator is given the settling time whole, then read once.
    left = time.monotonic()
    time.sleep(settle)
    after = rss()
    print(f"round {round_}: RSS {during:.1f} MB with the crowd connected; normal request {answer!r} "
          f"in {answered_ms:.0f} ms; {n - len(open_)} of {n} closed by the server in {closed_after:.0f} s; "
          f"RSS after {after:.1f} MB ({after - baseline:+.1f} MB, {time.monotonic() - left:.1f} s after the crowd left)")
    if after > baseline + tolerance:
        failures.append(f"round {round_}: memory did not come back: {after:.1f} MB against a baseline of "
                        f"{baseline:.1f} MB (+{tolerance:.0f} MB allowed)")
if failures:
    print("FAILED:")
    for f in failures:
        print("  - " + f)
    sys.exit(1)
print(f"PASSED: after each of {rounds} rounds memory came back within {tolerance:.0f} MB of the baseline")
PY
