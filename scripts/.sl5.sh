#!/usr/bin/env bash
# A slowloris crowd against a real `cuvette serve` on loopback: 3,000 connections that never
# finish their request (half stop inside the headers, half inside the body), held until the
# server's deadlines pass. Prints the server's resident memory (RSS) before, while the crowd
# is connected, and after; how many of the crowd the server closed; and whether a normal
# request was answered during the attack. Two rounds: memory the allocator kept after the first
# is reused by the second rather than growing. Bounded: about a minute. Loopback only.
#
#   scripts/slowloris.sh [CONNECTIONS]     (builds target/debug/cuvette if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-3000}"
PORT="${SLOWLORIS_PORT:-18080}"
BIN="${CUVETTE_BIN:-target/debug/cuvette}"
[ -x "$BIN" ] || cargo build --locked -p cuvette >/dev/null
DATA="$(mktemp -d)"
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

"$BIN" serve --data "$DATA" --listen "127.0.0.1:$PORT" --no-mllp --no-astm >"$DATA/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.1
done

rss() { awk '/^VmRSS/ {print $2 " kB"}' "/proc/$SERVER/status"; }
echo "connections: $N"
echo "RSS before:  $(rss)"

for round in 1 2 3 4 5; do
echo "round $round"
python3 - "$PORT" "$N" "$SERVER" <<'PY'
import socket, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return " ".join(line.split()[1:])
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
print(f"RSS during:  {rss()} ({n} half-sent requests open)")
t = time.monotonic()
probe = socket.create_connection(("127.0.0.1", port), timeout=10)
probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
answer = probe.recv(100).split(b"\r\n")[0].decode()
print(f"a normal request during the attack: {answer!r} in {1000 * (time.monotonic() - t):.0f} ms")
deadline = time.monotonic() + 40
open_ = set(range(n))
while open_ and time.monotonic() < deadline:
    for i in list(open_):
        try:
            data = crowd[i].recv(4096)
            if not data:
                open_.discard(i)
        except BlockingIOError:
            pass
        except OSError:
            open_.discard(i)
    time.sleep(0.2)
print(f"closed by the server: {n - len(open_)} of {n} after {time.monotonic() - t:.0f} s")
for s in crowd:
    s.close()
time.sleep(3)
print(f"RSS after:   {rss()}")
PY
done
