#!/usr/bin/env bash
# A soak: a demo lab served on loopback for DURATION seconds (15 minutes by default) under
# steady work — HL7 results over MLLP, orders, receipt and bench result entry through the JSON
# API, worklist and review-queue reads — meeting in turn a slowloris crowd (half-sent HTTP
# requests and hostile MLLP connections), a full disk (SQLite) and a database restart
# (PostgreSQL). At the end it checks that nothing acknowledged was lost (every message answered
# AA/AE is stored), that the audit chain verifies against its signed checkpoints, that memory
# is back near its level under the same work before the faults, and that each fault showed in
# /readyz and in the server log while it lasted; then prints the figures. Loopback only.
#
#   DURATION=180 scripts/soak.sh                      SQLite (a small tmpfs for the disk-full
#                                                     episode: needs root, else it is skipped)
#   SOAK_DATABASE_URL=postgres://…/soak scripts/soak.sh   PostgreSQL: an empty database; the
#                                                     restart is SOAK_DB_RESTART (a shell
#                                                     command, e.g. "pg_ctlcluster 16 main
#                                                     restart"), else every session of the
#                                                     database is terminated
#
# Settings (environment): DURATION (900 s), SOAK_RATE (result messages per second, 20),
# SOAK_DISK_MB (the tmpfs, 1024), SOAK_HTTP_PORT / SOAK_MLLP_PORT / SOAK_ASTM_PORT (18180,
# 18575, 18510), CUVETTE_BIN (target/release/cuvette, the build a lab runs, built if missing), SOAK_KEEP=1 keeps the
# working directory. Exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-900}"
BIN="${CUVETTE_BIN:-target/release/cuvette}"
HTTP_PORT="${SOAK_HTTP_PORT:-18180}"
MLLP_PORT="${SOAK_MLLP_PORT:-18575}"
ASTM_PORT="${SOAK_ASTM_PORT:-18510}"
DATABASE_URL="${SOAK_DATABASE_URL:-}"
[ -x "$BIN" ] || cargo build --release --locked -p cuvette >/dev/null
WORK="$(mktemp -d)"
DATA="$WORK/data"
mkdir -p "$DATA"
MOUNTED=""
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill -INT "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  if [ -n "$MOUNTED" ]; then umount "$DATA" 2>/dev/null || true; fi
  if [ -n "${SOAK_KEEP:-}" ]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ -z "$DATABASE_URL" ]; then
  # A filesystem of its own, so that filling it fills the database's disk and nothing else.
  if mount -t tmpfs -o "size=${SOAK_DISK_MB:-1024}m" soak-tmpfs "$DATA" 2>/dev/null; then
    MOUNTED=1
  else
    echo "note: cannot mount a small tmpfs (needs root): the disk-full episode is skipped"
  fi
  DB=(--data "$DATA")
else
  DB=(--database "$DATABASE_URL")
fi
ANCHOR=(--audit-key "$WORK/audit.key" --audit-checkpoints "$WORK/checkpoints.jsonl")

RUST_LOG="${RUST_LOG:-info,sqlx=warn}" "$BIN" demo "${DB[@]}" "${ANCHOR[@]}" --checkpoint-minutes 1 \
  --listen "127.0.0.1:$HTTP_PORT" --mllp "127.0.0.1:$MLLP_PORT" --astm "127.0.0.1:$ASTM_PORT" \
  >"$WORK/server.log" 2>&1 &
SERVER=$!
KEY=""
for _ in $(seq 1 600); do
  KEY="$(sed -n 's/^API key (technologist): //p' "$WORK/server.log")"
  if [ -n "$KEY" ] && curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null; then break; fi
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log"; echo "the server did not start"; exit 1; }
  sleep 0.5
done
[ -n "$KEY" ] || { echo "the demo printed no API key"; exit 1; }
# Results entered at the bench come with an API key, and a key is not a person: the demo lab's
# qualification gates would refuse them (they have their own tests). A supervisor's key
# switches them off, as a lab does before its staff records are complete.
ADMIN="$("$BIN" apikey create "${DB[@]}" --name soak-setup --role supervisor | grep -o 'cuv_[0-9a-f]*' | head -n 1)"
curl -fsS -X PUT -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"enforce": false}' "http://127.0.0.1:$HTTP_PORT/api/v1/staff-policy" >/dev/null

set +e
python3 - "$WORK" "$SERVER" "$KEY" "$DURATION" "$HTTP_PORT" "$MLLP_PORT" "${MOUNTED:+$DATA}" \
  "$DATABASE_URL" <<'PY'
import http.client, json, os, queue, random, socket, subprocess, sys, threading, time

work, pid, key, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
http_port, mllp_port = int(sys.argv[5]), int(sys.argv[6])
disk, database_url = sys.argv[7], sys.argv[8]
rate = float(os.environ.get("SOAK_RATE", "20"))
log_path = os.path.join(work, "server.log")
stop = threading.Event()
t0 = time.monotonic()
def now(): return time.monotonic() - t0

def rss_mb():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0

# --- steady work -------------------------------------------------------------------------
lock = threading.Lock()
acked, refused, unanswered = {}, [], 0   # control id -> ACK code (AA/AE)
api = {"ok": 0, "failed": 0, "errors": {}}
specimens = queue.Queue(maxsize=2000)

def api_call(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        what = path.split("?")[0].split("/")
        what = "/".join("{accession}" if i == 4 and what[3] == "specimens" else w for i, w in enumerate(what))
        raise RuntimeError(f"{method} {what}: {r.status}")
    return json.loads(data) if data else None

def bench_and_api(worker):
    """Orders, collection, receipt; one specimen in four gets its results entered at the
    bench through the API, the others go to the analyzer; the worklist and review queue read."""
    n = 0
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
    while not stop.is_set():
        n += 1
        mrn = f"SK{worker}{n:07d}"
        birth = f"{1940 + n % 60}-{1 + n % 12:02d}-{1 + n % 28:02d}"
        try:
            o = api_call(conn, "POST", "/api/v1/orders", {"patient": {"mrn": mrn, "family_name": f"Soak{n:06d}", "given_name": "Alex", "birth_date": birth, "sex": "F" if n % 2 else "M"}, "provider": "Dr. Soak", "priority": "routine", "tests": ["BMP"]})
            acc = o["accessions"][0]
            api_call(conn, "POST", f"/api/v1/specimens/{acc}/collect")
            api_call(conn, "POST", f"/api/v1/specimens/{acc}/receive", {"mrn": mrn, "birth_date": birth})
            if n % 4 == 0:
                api_call(conn, "POST", f"/api/v1/specimens/{acc}/results", {"results": [{"test_code": "GLU", "value": str(80 + n % 40)}]})
            else:
                try: specimens.put_nowait(acc)
                except queue.Full: pass
            api_call(conn, "GET", "/api/v1/worklist?bench=chemistry")
            api_call(conn, "GET", "/api/v1/review-queue")
            with lock: api["ok"] += 1
        except Exception as e:
            with lock:
                api["failed"] += 1
                what = str(e) if isinstance(e, RuntimeError) else f"no answer ({type(e).__name__})"
                api["errors"][what] = api["errors"].get(what, 0) + 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
            time.sleep(0.5)
        time.sleep(0.2)

ORU = ("MSH|^~\\&|DEMOCHEM|CORE LAB|CUVETTE|LAB|20261204081500||ORU^R01^ORU_R01|{ctrl}|P|2.5.1\r"
       "PID|1\rORC|RE||{acc}||CM\r"
       "OBR|1||{acc}|24321-2^Basic metabolic 2000 panel^LN|||20261204081500\r"
       "OBX|1|NM|2951-2^Sodium^LN||140|mmol/L|135-145|N|||F\r"
       "OBX|2|NM|2823-3^Potassium^LN||4.2|mmol/L|3.5-5.1|N|||F\r"
       "OBX|3|NM|2345-7^Glucose^LN||{glu}|mg/dL|70-99||||F\r")

def ingest(worker, workers):
    """An analyzer sending results and waiting for each acknowledgement; an unanswered
    message is given up (the instrument would resend it)."""
    global unanswered
    n, sock, buf = 0, None, b""
    interval = workers / rate
    while not stop.is_set():
        started = time.monotonic()
        try:
            acc = specimens.get(timeout=1)
        except queue.Empty:
            continue
        n += 1
        ctrl = f"SOAK-{worker}-{n}"
        msg = ORU.format(ctrl=ctrl, acc=acc, glu=70 + n % 60).encode()
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", mllp_port), timeout=30)
                buf = b""
            sock.sendall(b"\x0b" + msg + b"\x1c\x0d")
            while b"\x1c\x0d" not in buf:
                chunk = sock.recv(65536)
                if not chunk: raise OSError("closed")
                buf += chunk
            frame, buf = buf.split(b"\x1c\x0d", 1)
            msa = [s for s in frame.split(b"\r") if s.startswith(b"MSA|")][0].split(b"|")
            code = msa[1].decode()
            with lock:
                if code in ("AA", "AE"): acked[ctrl] = code
                else: refused.append(ctrl)
        except Exception:
            with lock: unanswered += 1
            if sock: sock.close()
            sock, buf = None, b""
            time.sleep(0.5)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))

readiness = []   # (t, status, reason)
def watch_readiness():
    while not stop.is_set():
        try:
            c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
            c.request("GET", "/readyz")
            r = c.getresponse()
            body = r.read()
            reason = json.loads(body).get("reason") if r.status != 200 else None
            readiness.append((now(), r.status, reason))
            c.close()
        except Exception as e:
            readiness.append((now(), 0, f"no answer: {e}"))
        time.sleep(0.5)

rss_samples = []
def sample_rss():
    while not stop.is_set():
        rss_samples.append((now(), rss_mb()))
        time.sleep(1)

def log_size():
    return os.path.getsize(log_path)

def log_between(start, end):
    with open(log_path, "rb") as f:
        f.seek(start)
        return f.read(end - start).decode("utf-8", "replace")

def rss_over(a, b):
    xs = [m for t, m in rss_samples if a <= t <= b]
    return (sum(xs) / len(xs)) if xs else rss_mb()

idle_rss = rss_mb()
threads = [threading.Thread(target=bench_and_api, args=(w,), daemon=True) for w in range(2)]
threads += [threading.Thread(target=ingest, args=(w, 4), daemon=True) for w in range(4)]
threads += [threading.Thread(target=watch_readiness, daemon=True), threading.Thread(target=sample_rss, daemon=True)]
for t in threads: t.start()

episodes = []   # dicts: name, start, end, log_from, log_to, notes

def wait_until(t):
    while now() < t and not stop.is_set():
        time.sleep(0.2)

# --- the slowloris crowd ------------------------------------------------------------------
def slowloris(crowd_http=2000, crowd_mllp=500, hold=30):
    e = {"name": "slowloris crowd", "start": now(), "log_from": log_size()}
    crowd = []
    for i in range(crowd_http):
        try:
            s = socket.create_connection(("127.0.0.1", http_port), timeout=5)
            s.sendall(b"GET /login HTTP/1.1\r\nHost: lab\r\nX-Slow: " if i % 2 == 0 else
                      b"POST /login HTTP/1.1\r\nHost: lab\r\nContent-Length: 100000\r\n\r\nusername=")
            crowd.append(s)
        except OSError:
            pass
    for i in range(crowd_mllp):
        try:
            s = socket.socket()
            s.bind((f"127.0.{1 + i // 200}.{2 + i % 200}", 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", mllp_port))
            s.sendall(b"\x0bMSH|^~\\&|NOBODY|")
            crowd.append(s)
        except OSError:
            pass
    e["peak_rss"] = max(rss_mb(), 0)
    deadline = now() + hold
    while now() < deadline:
        e["peak_rss"] = max(e["peak_rss"], rss_mb())
        time.sleep(1)
    for s in crowd:
        s.close()
    e["end"], e["log_to"] = now(), log_size()
    text = log_between(e["log_from"], e["log_to"])
    e["notes"] = (f"{len(crowd)} connections; peak RSS {e['peak_rss']:.0f} MB; "
                  f"{text.count('connection closed at once')} hostile MLLP connections closed at once in the log")
    e["in_log"] = "connection closed at once" in text
    e["in_readyz"] = None  # not a fault of the lab's: /readyz stays 200
    episodes.append(e)

# --- a full disk (SQLite on its own small filesystem) ---------------------------------------
def disk_full(hold=10):
    e = {"name": "disk full", "start": now(), "log_from": log_size()}
    ballast = os.path.join(disk, "ballast")
    written = 0
    with open(ballast, "wb") as f:
        chunk = b"\0" * (1 << 20)
        while True:
            try:
                f.write(chunk); f.flush(); written += 1
            except OSError:
                break
    # The write-ahead log reuses its space until it must grow: wait for the first failed
    # write to show, at most a minute, then keep the disk full a little longer.
    seen = None
    until = now() + 60
    while now() < until and seen is None:
        seen = next((t for t, s, _ in readiness if t >= e["start"] and s == 503), None)
        time.sleep(0.5)
    time.sleep(hold)
    os.remove(ballast)
    e["cleared"] = now()
    recovered = None
    until = now() + 120
    while now() < until and recovered is None:
        recovered = next((t for t, s, _ in readiness if t >= e["cleared"] and s == 200), None)
        time.sleep(0.5)
    e["end"], e["log_to"] = now(), log_size()
    text = log_between(e["log_from"], e["log_to"])
    e["in_log"] = any(w in text for w in ("disk is full", "database or disk is full", "could not store"))
    e["in_readyz"] = seen is not None
    e["reasons"] = sorted({r for t, s, r in readiness if e["start"] <= t and s != 200 and r})
    e["notes"] = (f"{written} MB of ballast; /readyz 503 after {seen - e['start']:.1f} s" if seen else
                  f"{written} MB of ballast; /readyz never 503") + (
                  f"; ready again {recovered - e['cleared']:.1f} s after the space returned" if recovered else "; not ready again within 2 min")
    episodes.append(e)

# --- a database restart (PostgreSQL) ---------------------------------------------------------
def database_restart():
    e = {"name": "database restart", "start": now(), "log_from": log_size()}
    command = os.environ.get("SOAK_DB_RESTART")
    if command:
        subprocess.run(command, shell=True, check=False)
        how = command
    else:
        db = database_url.rsplit("/", 1)[1].split("?")[0]
        sql = f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
        # Terminated again for a few seconds: reconnections meet a database still going away.
        for _ in range(10):
            subprocess.run(["psql", database_url, "-Atc", sql], capture_output=True, check=False)
            time.sleep(0.5)
        how = "every session of the database terminated for 5 s"
    seen = next((t for t, s, _ in readiness if t >= e["start"] and s != 200), None)
    until = now() + 10
    while seen is None and now() < until:
        seen = next((t for t, s, _ in readiness if t >= e["start"] and s != 200), None)
        time.sleep(0.2)
    recovered = None
    until = now() + (120 if seen else 0)
    while now() < until and recovered is None:
        recovered = next((t for t, s, _ in readiness if t > seen and s == 200), None)
        time.sleep(0.5)
    e["end"], e["log_to"] = now(), log_size()
    text = log_between(e["log_from"], e["log_to"])
    e["in_log"] = any(w in text.lower() for w in ("terminating connection", "could not store", "connection", "database"))
    e["in_readyz"] = seen is not None
    e["reasons"] = sorted({r for t, s, r in readiness if e["start"] <= t and s != 200 and r})
    e["notes"] = how + (f"; ready again {recovered - seen:.1f} s after it showed" if recovered else "")
    episodes.append(e)

wait_until(0.10 * duration)
baseline_at = now()
wait_until(0.15 * duration)
baseline_rss = rss_over(baseline_at, now())
wait_until(0.20 * duration)
slowloris()
if disk:
    wait_until(0.45 * duration)
    disk_full()
if database_url:
    wait_until(0.65 * duration)
    database_restart()
wait_until(0.90 * duration)
end_at = now()
wait_until(duration)
end_rss = rss_over(end_at, now())
stop.set()
time.sleep(2)
after_rss = rss_mb()

with open(os.path.join(work, "result.json"), "w") as f:
    json.dump({"acked": acked, "refused": len(refused), "unanswered": unanswered, "api": api,
               "idle_rss": idle_rss, "baseline_rss": baseline_rss, "end_rss": end_rss,
               "after_rss": after_rss, "peak_rss": max(m for _, m in rss_samples),
               "episodes": episodes, "duration": now(),
               "not_ready": sum(1 for _, s, _ in readiness if s != 200),
               "not_ready_reasons": sorted({r for _, s, r in readiness if s != 200 and r}),
               "probes": len(readiness)}, f)
PY
DRIVER=$?
set -e
[ "$DRIVER" -eq 0 ] || { echo "the load driver failed"; exit 1; }

# The server stops; the checks read the database it leaves.
kill -INT "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
if [ -z "$DATABASE_URL" ]; then
  sqlite3 "$DATA/cuvette.sqlite3" "SELECT control_id FROM interface_message WHERE direction = 'in' AND control_id LIKE 'SOAK-%'" >"$WORK/stored.txt"
else
  psql "$DATABASE_URL" -Atc "SELECT control_id FROM interface_message WHERE direction = 'in' AND control_id LIKE 'SOAK-%'" >"$WORK/stored.txt"
fi
set +e
"$BIN" audit verify "${DB[@]}" "${ANCHOR[@]}" >"$WORK/verify.txt" 2>&1
VERIFY=$?
set -e

python3 - "$WORK" "$VERIFY" <<'PY'
import json, os, sys
work, verify = sys.argv[1], int(sys.argv[2])
r = json.load(open(os.path.join(work, "result.json")))
stored = set(open(os.path.join(work, "stored.txt")).read().split())
acked = r["acked"]
lost = sorted(c for c in acked if c not in stored)
failures = []
print()
print(f"Soak of {r['duration']:.0f} s")
print(f"  results over MLLP: {len(acked)} acknowledged ({sum(1 for c in acked.values() if c == 'AA')} AA, "
      f"{sum(1 for c in acked.values() if c == 'AE')} AE), {r['refused']} refused (AR), "
      f"{r['unanswered']} unanswered; {len(stored)} stored")
print(f"  API rounds (order, collect, receive, bench entry or analyzer, worklist, review queue): "
      f"{r['api']['ok']} whole, {r['api']['failed']} with an error")
for what, count in sorted(r["api"]["errors"].items(), key=lambda x: -x[1]):
    print(f"    {count} × {what}")
print(f"  /readyz: {r['probes']} probes, {r['not_ready']} not ready: {'; '.join(r['not_ready_reasons']) or '-'}")
print(f"  memory (RSS): {r['idle_rss']:.0f} MB idle at start, {r['baseline_rss']:.0f} MB under load before the faults, "
      f"peak {r['peak_rss']:.0f} MB, {r['end_rss']:.0f} MB under the same load at the end, {r['after_rss']:.0f} MB after it")
for e in r["episodes"]:
    print(f"  {e['name']} at {e['start']:.0f}-{e['end']:.0f} s: {e['notes']}")
    for reason in e.get("reasons", []):
        print(f"    /readyz said: {reason}")
if lost:
    failures.append(f"{len(lost)} acknowledged messages are not stored, e.g. {lost[:5]}")
if verify != 0:
    failures.append("the audit chain does not verify: " + open(os.path.join(work, "verify.txt")).read().strip())
slack = max(30.0, 0.25 * r["baseline_rss"])
if r["end_rss"] > r["baseline_rss"] + slack:
    failures.append(f"memory did not come back: {r['end_rss']:.0f} MB against {r['baseline_rss']:.0f} MB (+{slack:.0f} MB allowed)")
for e in r["episodes"]:
    if e["in_readyz"] is False:
        failures.append(f"{e['name']}: /readyz never said so while it lasted")
    if not e["in_log"]:
        failures.append(f"{e['name']}: nothing in the server log while it lasted")
print(f"  audit chain: {open(os.path.join(work, 'verify.txt')).read().strip()}")
print()
if failures:
    print("FAILED:")
    for f in failures:
        print("  - " + f)
    sys.exit(1)
print("PASSED: nothing acknowledged lost, the audit chain verifies, memory back near its level, every fault seen in /readyz and the log")
PY
