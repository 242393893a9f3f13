"""Second level: reveal + outbox write latency, escalation, and alert delivery throughput.

A reveal verifies the hit id, opens the case and writes three alerts and an audit entry in
one DuckDB transaction; it is timed against the first-level check that precedes it in the
same run. Delivery throughput is measured per sink: in memory (the cost of the outbox
bookkeeping itself), JSON Lines with fsync, and a webhook on a local HTTP receiver.

    python bench/workflow.py --records 1000000 --reveals 500
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import pyarrow.parquet as pq  # noqa: E402
from _common import fmt_us, latencies, machine, pct, print_table, records_parquet  # noqa: E402

from sltd import ManualClock, open_index  # noqa: E402
from sltd.alerts import JsonlSink, MemorySink, Router, WebhookSink  # noqa: E402


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--reveals", type=int, default=500)
    args = ap.parse_args()
    print(machine())
    path = records_parquet(args.records)
    rows = pq.read_table(path, columns=["document_number", "document_type",
                                        "issuing_country"]).slice(0, args.reveals).to_pylist()
    queries = [(r["document_number"], r["document_type"], r["issuing_country"]) for r in rows]
    clock = ManualClock(dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC))
    with tempfile.TemporaryDirectory() as tmp:
        ix = open_index(Path(tmp) / "wf.duckdb", create=True, clock=clock)
        ix.load(path)
        hit_ids: list[str] = []
        check_t = latencies(lambda q: hit_ids.append(
            ix.check(*q, exact_only=True, ncb="DEU")[0].hit_id), queries, warmup=0)
        reveal_t = latencies(lambda h: ix.reveal(h, officer="bench", ncb="DEU"),
                             hit_ids, warmup=0)
        n_alerts = len(ix.alerts())
        results = []
        for name, sink in (("memory", MemorySink()),
                           ("jsonl+fsync", JsonlSink(Path(tmp) / "alerts.jsonl")),
                           ("webhook (local)", None)):
            if sink is None:
                srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
                threading.Thread(target=srv.serve_forever, daemon=True).start()
                sink = WebhookSink(f"http://127.0.0.1:{srv.server_address[1]}/", timeout=5)
            ix.redeliver([a.alert_id for a in ix.alerts()])
            t = time.perf_counter()
            report = ix.deliver_alerts(Router({"*": sink}), limit=10**9)
            secs = time.perf_counter() - t
            assert report.delivered == n_alerts
            results.append((f"alert delivery, {name}", f"{n_alerts / secs:,.0f} alerts/s", "-",
                            "-"))
        clock.advance(hours=2)
        t = time.perf_counter()
        escalated = ix.escalate_overdue()
        esc = time.perf_counter() - t
        ix.close()
    table = [
        (f"reveal + 3 outbox alerts + audit, p50 ({args.records:,} records)",
         fmt_us(pct(reveal_t, 50)), fmt_us(pct(check_t, 50)) + " (check)",
         f"{pct(reveal_t, 50) / pct(check_t, 50):.1f}x a check"),
        ("reveal + outbox, p99", fmt_us(pct(reveal_t, 99)), fmt_us(pct(check_t, 99)) + " (check)",
         f"{pct(reveal_t, 99) / pct(check_t, 99):.1f}x a check"),
        *results,
        (f"escalate {len(escalated)} overdue cases (one transaction)", f"{esc:.2f} s",
         f"{len(escalated) / esc:,.0f} cases/s", "-"),
    ]
    print_table(table, "Second-level workflow (baseline column: the first-level check)")


if __name__ == "__main__":
    main()
