"""`sltd serve` under load, with wrk: single searches, batch search, searches during an
upload; next to the in-process `Index.check` and the stack's do-nothing endpoint.

wrk (a native HTTP load generator) comes from Debian's packages: `apt-get install wrk`.
Everything runs on this machine: wrk's two threads share the 2 cores with the service,
as they did for the stack comparison the service was chosen by.

Measured, in one run:
- the ceiling: Starlette + uvicorn answering a POST with `{}`, nothing else;
- single searches, misses and hits mixed 15,500:1 (structured numbers of the list's
  shapes), exact-only and default (with near misses), at 64 and 8 connections;
- batch search, 10,000 documents a request, in documents/s;
- searches at 8 connections while 1,000,000 records are uploaded (CSV, one request).

    python bench/serve.py                          # 10M records
    python bench/serve.py --records 100000 --seconds 5   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    DATA,
    build_sltd,
    fmt_us,
    latencies,
    machine,
    pct,
    print_table,
    records_parquet,
    sample_queries,
)

from sltd import open_index  # noqa: E402

MIX = 15_500  # misses per hit

NOTHING_APP = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def nothing(request):
    await request.body()
    return Response(b"{}", media_type="application/json")

app = Starlette(routes=[Route("/v1/check", nothing, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False)
"""

LUA = """
local bodies = {%(bodies)s}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "%(path)s", nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "JSON {\\"rps\\": %%f, \\"p50\\": %%d, \\"p99\\": %%d, \\"mean\\": %%f, "
    .. "\\"errors\\": %%d, \\"requests\\": %%d}\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50),
    latency:percentile(99), latency.mean,
    e.connect + e.read + e.write + e.status + e.timeout, summary.requests))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, path: str = "/ready") -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode})")
        try:
            httpx.post(url + path, timeout=1) if path == "/v1/check" else \
                httpx.get(url + path, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the server did not come up")


def wrk(url: str, path: str, bodies: list[str], token: str, connections: int,
        seconds: float) -> dict:
    quoted = ",".join("[==[" + b + "]==]" for b in bodies)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % {"bodies": quoted, "token": token, "path": path})
    try:
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s",
                              "--timeout", "10s", "-s", f.name, url], capture_output=True,
                             text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    line = next(ln for ln in out.splitlines() if ln.startswith("JSON "))
    return json.loads(line[5:])


def body(q: tuple, exact_only: bool) -> str:
    return json.dumps({"number": q[0], "type": q[1], "country": q[2],
                       **({"exact_only": True} if exact_only else {})})


def ms(us: float) -> str:
    return f"{us / 1000:.2f} ms"


def run(n: int, seconds: float) -> list[tuple]:
    path = records_parquet(n)
    listed, unlisted = sample_queries(path, MIX)
    src, *_ = build_sltd(path, DATA / f"bench_{n}.duckdb")
    db = DATA / f"serve_{n}.duckdb"
    # a fresh copy each run: the keys and the upload below change it
    shutil.copy(src, db)
    if Path(f"{src}.keys").exists():
        shutil.copy(f"{src}.keys", f"{db}.keys")
    with open_index(db) as ix:
        ix.set_home_ncb("DEU")
        token = ix.add_key(ncb="DEU", officer="bench", role="search")[1]
        manage = ix.add_key(ncb="FRA", officer="bench feed", role="manage",
                            countries=["FRA"])[1]
        mix = unlisted[:MIX] + listed[:1]
        exact = latencies(lambda q: ix.check(*q, exact_only=True), mix)
        default = latencies(lambda q: ix.check(*q), mix[:3000])
    label = f"{n / 1e6:g}M"
    rows = [(f"[{label}] in-process Index.check, exact-only, p50 / p99 / mean",
             f"{fmt_us(pct(exact, 50))} / {fmt_us(pct(exact, 99))} / "
             f"{fmt_us(sum(exact) / len(exact))}", "-", "-"),
            (f"[{label}] in-process Index.check, default, p50 / p99 / mean",
             f"{fmt_us(pct(default, 50))} / {fmt_us(pct(default, 99))} / "
             f"{fmt_us(sum(default) / len(default))}", "-", "-")]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(NOTHING_APP)
    nothing = subprocess.Popen([sys.executable, f.name, str(port)])
    try:
        wait_ready(url, nothing, "/v1/check")
        ceiling = {c: wrk(url, "/v1/check", ['{"number": "X1"}'], "x", c, seconds)
                   for c in (64, 8)}
    finally:
        nothing.terminate()
        nothing.wait()
        os.unlink(f.name)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "sltd", "--db", str(db), "serve",
                               "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        wait_ready(url, server)
        exact_bodies = [body(q, True) for q in mix]
        default_bodies = [body(q, False) for q in mix]
        results = {}
        for name, bodies in (("exact-only", exact_bodies), ("default", default_bodies)):
            for c in (64, 8):
                results[name, c] = wrk(url, "/v1/check", bodies, token, c, seconds)
        docs = [{"number": q[0], "type": q[1], "country": q[2]} for q in mix[:10_000]]
        batch = wrk(url, "/v1/check/batch", [json.dumps({"documents": docs,
                                                         "exact_only": True})],
                    token, 2, seconds)
        # searches during a 1M-record upload
        csv = "document_number,document_type,issuing_country,status\n" + "".join(
            f"U{i:08d},P,FRA,stolen\n" for i in range(1_000_000))
        upload: dict = {}

        def send() -> None:
            t = time.perf_counter()
            upload["r"] = httpx.post(url + "/v1/records", content=csv.encode(),
                                     timeout=600, headers={"Authorization": f"Bearer {manage}",
                                                           "Content-Type": "text/csv"})
            upload["s"] = time.perf_counter() - t

        sender = threading.Thread(target=send)
        sender.start()
        during = wrk(url, "/v1/check", exact_bodies, token, 8, seconds)
        sender.join()
        inserted = upload["r"].json().get("inserted")
    finally:
        server.terminate()
        server.wait()

    def line(name: str, c: int) -> tuple:
        r = results[name, c]
        top = ceiling[c]
        return (f"[{label}] {name} searches, {c} connections: /s; p50 / p99",
                f"{r['rps']:,.0f}/s; {ms(r['p50'])} / {ms(r['p99'])}"
                + (f"; {r['errors']} errors" if r["errors"] else ""),
                f"{top['rps']:,.0f}/s; {ms(top['p50'])} / {ms(top['p99'])}",
                f"{r['rps'] / top['rps']:.2f}x")

    rows += [line(name, c) for name in ("exact-only", "default") for c in (64, 8)]
    rows += [
        (f"[{label}] batch search, 10,000 documents a request, 2 connections",
         f"{batch['rps'] * 10_000:,.0f} documents/s (p50 {ms(batch['p50'])} a request)",
         "-", "-"),
        (f"[{label}] searches during a 1M-record upload ({upload['s']:.1f} s, "
         f"{inserted:,} inserted), 8 connections: p50 / p99 / errors",
         f"{ms(during['p50'])} / {ms(during['p99'])} / {during['errors']} "
         f"({during['requests']:,} searches)", "-", "-"),
    ]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--seconds", type=float, default=15)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    print(machine())
    print_table(run(args.records, args.seconds),
                "sltd serve under wrk (baseline: the stack's do-nothing endpoint, same run)")


if __name__ == "__main__":
    main()
