"""`tracker serve` beside the command line, in one run (issue 23): 8 workers drain N items by
claim-next + done, once as 8 CLI processes looping `tracker claim --next` / `tracker done`, once as
8 HTTP clients (keep-alive connections) against one `tracker serve`; then the latency from a CLI
change's exit to its event on an open `GET /api/v1/events` stream (file backend: polled).

Usage: python3 benches/serve.py TRACKER_BIN [N_ITEMS] [--db postgres://...]. Prints one JSON line."""
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

binary = sys.argv[1]
n_items = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 400
pg = sys.argv[sys.argv.index("--db") + 1] if "--db" in sys.argv else None
WORKERS = 8
TOKEN = "bench-token"
env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}


def tracker(db, *args, check=True):
    out = subprocess.run([binary, "--db", db, "--json", *args], capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise SystemExit(f"{args}: {out.stderr}")
    return out


def fresh(tag):
    if pg:
        schema = f"bench_{tag}_{os.getpid()}"
        subprocess.run(["psql", pg, "-qc", f"drop schema if exists {schema} cascade; create schema {schema}"], check=True)
        sep = "&" if "?" in pg else "?"
        db = f"{pg}{sep}options=-csearch_path%3D{schema}"
    else:
        db = os.path.join(tempfile.mkdtemp(), "t.redb")
    tracker(db, "init")
    for i in range(n_items):
        tracker(db, "new", f"task {i}")
    return db


def cli_drain(db):
    def worker(i):
        while True:
            out = tracker(db, "--as", f"cli-{i}", "claim", "--next", "--ttl", "5m", check=False)
            if out.returncode == 4:
                return
            if out.returncode != 0:
                continue
            item = json.loads(out.stdout)
            tracker(db, "--as", f"cli-{i}", "done", str(item["num"]), "--token", str(item["claim"]["token"]))
    start = time.monotonic()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return time.monotonic() - start


def serve(db):
    p = subprocess.Popen([binary, "--db", db, "serve", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, env={**env, "TRACKER_SERVE_TOKEN": TOKEN})
    url = p.stdout.readline()
    port = int(url.split(":")[2].split("/")[0])
    return p, port


def http_drain(port):
    def worker(i):
        c = http.client.HTTPConnection("127.0.0.1", port)
        h = {"Authorization": "Bearer " + TOKEN, "X-Tracker-As": f"http-{i}", "Content-Type": "application/json"}
        while True:
            c.request("POST", "/api/v1/claim-next", body='{"ttl":"5m"}', headers=h)
            r = c.getresponse()
            body = json.loads(r.read())
            if r.status == 404:
                return
            if r.status != 200:
                continue
            done = json.dumps({"token": body["claim"]["token"]})
            c.request("POST", f"/api/v1/items/{body['num']}/done", body=done, headers=h)
            r = c.getresponse()
            r.read()
            assert r.status == 200, r.status
    start = time.monotonic()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return time.monotonic() - start


def event_latency(db, port, n=30):
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", "/api/v1/events", headers={"Authorization": "Bearer " + TOKEN})
    r = c.getresponse()
    got = {}
    def reader():
        for line in r:
            line = line.decode()
            if line.startswith("data:"):
                op = json.loads(line[5:])
                got[op["changes"][0].get("item", {}).get("title") if op["op"] == "new" else None] = time.monotonic()
            if len([k for k in got if k]) >= n:
                return
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    time.sleep(0.3)
    lat = []
    for i in range(n):
        title = f"event {i}"
        tracker(db, "new", title)
        acked = time.monotonic()
        end = acked + 5
        while title not in got and time.monotonic() < end:
            time.sleep(0.001)
        lat.append((got.get(title, end) - acked) * 1000)
        time.sleep(0.05)
    return statistics.median(lat), max(lat)


db_cli = fresh("cli")
t_cli = cli_drain(db_cli)
db_http = fresh("http")
server, port = serve(db_http)
try:
    t_http = http_drain(port)
    median_ms, max_ms = event_latency(db_http, port)
finally:
    server.terminate()
    server.wait()
for db in (db_cli, db_http):
    assert tracker(db, "verify").returncode == 0
    left = json.loads(tracker(db, "list").stdout)
    assert len([i for i in left if i["title"].startswith("task")]) == 0, "not drained"
print(json.dumps({
    "backend": "postgres" if pg else "redb", "items": n_items, "workers": WORKERS,
    "cli_s": round(t_cli, 2), "cli_items_per_s": round(n_items / t_cli, 1),
    "http_s": round(t_http, 2), "http_items_per_s": round(n_items / t_http, 1),
    "speedup": round(t_cli / t_http, 1),
    "event_latency_median_ms": round(median_ms, 1), "event_latency_max_ms": round(max_ms, 1),
}))
