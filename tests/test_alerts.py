"""Alert delivery: sinks, routing, retries, and no loss when receivers fail or hang."""

import datetime as dt
import http.server
import json
import threading
import time

import pytest

from sltd import ManualClock, Record, open_index
from sltd.alerts import JsonlSink, MemorySink, Router, WebhookSink

T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def with_cases(n=2, clock=None):
    clock = clock or ManualClock(T0)
    ix = open_index(":memory:", create=True, clock=clock)
    ix.upsert([Record(f"X{i:07d}", "P", "FRA", "stolen") for i in range(n)])
    for i in range(n):
        hit = ix.check(f"X{i:07d}", "P", "FRA", ncb="DEU")[0]
        ix.reveal(hit.hit_id, officer="A", ncb="DEU")
    return ix, clock


class Receiver(http.server.ThreadingHTTPServer):
    """A local webhook receiver: fails the first ``fail`` requests, can hang."""

    def __init__(self, fail=0, hang=0.0):
        self.fail, self.hang, self.got, self.lock = fail, hang, [], threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/alerts"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        srv = self.server
        if srv.hang:
            time.sleep(srv.hang)
        with srv.lock:
            if srv.fail > 0:
                srv.fail -= 1
                self.send_response(503)
                self.end_headers()
                return
            srv.got.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    servers = []

    def make(**kw):
        servers.append(Receiver(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.shutdown()
        s.server_close()


def test_routing_per_recipient(tmp_path):
    ix, _ = with_cases(1)
    ccc, rest = MemorySink("ccc"), MemorySink("rest")
    report = ix.deliver_alerts(Router({"CCC": ccc, "*": rest}))
    assert report.delivered == 3
    assert [p["recipient"] for p in ccc.sent] == ["CCC"]
    assert sorted(p["recipient"] for p in rest.sent) == ["owner:FRA", "searching:DEU"]
    assert all(a.state == "delivered" for a in ix.alerts())


def test_jsonl_sink_writes_one_line_per_alert(tmp_path):
    ix, _ = with_cases(2)
    ix.deliver_alerts(Router.parse([str(tmp_path / "a.jsonl")]))
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert len(lines) == 6
    assert {json.loads(x)["kind"] for x in lines} == {"hit"}


def test_webhook_receiver_down_for_a_while_loses_nothing(receiver):
    ix, clock = with_cases(3)
    rx = receiver(fail=4)
    router = Router({"*": WebhookSink(rx.url, timeout=2)})
    rounds = 0
    while ix.alerts(undelivered=True):
        ix.deliver_alerts(router)
        clock.advance(minutes=1)              # past every backoff
        rounds += 1
        assert rounds < 10
    ids = {a.alert_id for a in ix.alerts()}
    assert {p["alert_id"] for p in rx.got} == ids
    assert len(ids) == 9
    failed_attempts = sum(a.attempts - 1 for a in ix.alerts())
    assert failed_attempts == 4


def test_a_hanging_webhook_is_bounded_by_its_timeout(receiver):
    ix, _ = with_cases(1)
    rx = receiver(hang=2.0)
    start = time.perf_counter()
    report = ix.deliver_alerts(Router({"*": WebhookSink(rx.url, timeout=0.2)}), limit=1)
    assert time.perf_counter() - start < 1.5
    assert (report.delivered, report.failed) == (0, 1)
    failing = [a for a in ix.alerts() if a.attempts]
    assert failing[0].last_error
    assert failing[0].delivered_at is None


def test_failed_delivery_backs_off_and_never_touches_the_case():
    ix, clock = with_cases(1)
    sink = MemorySink()
    sink.failing = True
    ix.deliver_alerts(Router({"*": sink}))
    assert ix.cases()[0].state.value == "pending"
    assert ix.deliver_alerts(Router({"*": sink})).failed == 0      # not due yet
    clock.advance(seconds=6)
    sink.failing = False
    assert ix.deliver_alerts(Router({"*": sink})).delivered == 3


def test_redeliver_queues_again_with_the_same_id():
    ix, _ = with_cases(1)
    sink = MemorySink()
    ix.deliver_alerts(Router({"*": sink}))
    first = ix.alerts()[0].alert_id
    assert ix.redeliver([first]) == 1
    ix.deliver_alerts(Router({"*": sink}))
    assert [p["alert_id"] for p in sink.sent].count(first) == 2


def test_jsonl_sink_failure_is_a_delivery_error(tmp_path):
    ix, _ = with_cases(1)
    blocked = tmp_path / "dir"
    blocked.mkdir()
    report = ix.deliver_alerts(Router({"*": JsonlSink(blocked)}))
    assert report.failed == 3
