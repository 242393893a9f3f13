"""`sltd serve` as a real process on 127.0.0.1, spoken to over HTTP: every endpoint, the
roles (401, 403), live updates, bad traffic, SIGTERM and SIGKILL, and the Python client."""

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import sltd
from sltd import (
    AccessDenied,
    HitIdError,
    InvalidNumber,
    RecordNotFound,
    Unauthorized,
    open_index,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    #: Every server started, so that a failed test leaves none running (see the fixture).
    started: list["Server"] = []

    def __init__(self, db: Path, *extra: str, tls: bool = False):
        self.db, self.port = db, free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.log = db.parent / f"serve-{self.port}.log"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sltd", "--db", str(db), "serve", "--port",
                 str(self.port), "--interval", "0.1", *extra],
                stdout=subprocess.DEVNULL, stderr=err)
        Server.started.append(self)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/ready", timeout=1, verify=False).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.05)
        raise AssertionError("the service did not come up: " + self.log.read_text())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


@pytest.fixture(autouse=True, scope="module")
def _no_server_outlives_its_tests():
    yield
    for server in Server.started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
    Server.started.clear()


def make_index(db: Path) -> dict[str, str]:
    """An index with the fixture records and one key per role; their tokens."""
    with open_index(db, create=True) as ix:
        ix.set_home_ncb("DEU")
        ix.load(FIXTURES / "records.csv")
        tokens = {name: ix.add_key(ncb=ncb, officer=name, role=role,
                                   countries=countries)[1]
                  for name, ncb, role, countries in [
                      ("search", "DEU", "search", ()), ("reveal", "DEU", "reveal", ()),
                      ("owner", "FRA", "reveal", ()), ("other", "ITA", "reveal", ()),
                      ("manage", "FRA", "manage", ("FRA",)), ("admin", "DEU", "admin", ())]}
    return tokens


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    db = tmp_path_factory.mktemp("serve") / "s.duckdb"
    tokens = make_index(db)
    server = Server(db, "--sink", str(db.parent / "alerts.jsonl"))
    yield server, tokens
    assert server.stop() == 0
    log = server.log.read_text()
    assert "Traceback" not in log, log


def call(service, who, path, body=None, **kw):
    server, tokens = service
    headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
    if body is None and "content" not in kw:
        return httpx.get(server.url + path, headers=headers, params=kw.get("params"))
    return httpx.post(server.url + path, json=body, headers={**headers,
                      **kw.pop("headers", {})}, timeout=60, **kw)


def test_probes_and_the_openapi_document_need_no_key(service):
    server, _ = service
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    doc = httpx.get(server.url + "/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert {"/v1/check", "/v1/check/batch", "/v1/reveal", "/v1/records"} <= set(doc["paths"])
    assert "CheckRequest" in doc["components"]["schemas"]
    assert "/v1/check" in httpx.get(server.url + "/docs").text


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer sltd_000000000000_x",
                                    "Basic abc"])
def test_a_missing_or_bad_key_is_401_problem_json(service, header):
    server, _ = service
    r = httpx.post(server.url + "/v1/check", json={"number": "X1234567"},
                   headers={"Authorization": header} if header else {})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["status"] == 401


def test_a_check_answers_as_the_library_does(service, tmp_path):
    r = call(service, "search", "/v1/check", {"number": "X1234567", "type": "P",
                                              "country": "FRA"})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert [(h["match"], h["number"], h["type"], h["country"]) for h in hits] == [
        ("exact", "X1234567", "P", "FRA"), ("partial", "X1234567", "I", "DEU")]
    assert set(hits[0]) == {"hit_id", "number", "type", "country", "match"}  # first level
    miss = call(service, "search", "/v1/check", {"number": "Q9999999", "country": "FRA"})
    assert miss.json()["hits"] == []
    assert miss.json()["list_version"]["version"] >= 1  # the version it answered from
    mrz = call(service, "search", "/v1/check", {
        "mrz": (FIXTURES / "mrz" / "td3_ocr_error.txt").read_text()})
    assert mrz.json()["mrz"]["format"] == "TD3"
    assert [h["match"] for h in mrz.json()["hits"]] == ["near"]


def test_batch_answers_in_input_order_and_names_a_bad_document(service):
    docs = [{"number": "Q9999999"}, {"number": "X1234567", "type": "P", "country": "FRA"},
            {"number": "??"}, {"number": "L898902C3", "country": "UTO"}]
    r = call(service, "search", "/v1/check/batch", {"documents": docs})
    assert r.status_code == 200
    results = r.json()["results"]
    assert results[0] == {"hits": []}
    assert results[1]["hits"][0]["match"] == "exact"
    assert results[2]["error"]["field"] == "document_number"
    assert results[3]["hits"][0]["number"] == "L898902C3"
    too_many = call(service, "search", "/v1/check/batch",
                    {"documents": [{"number": "Q9999999"}] * 10_001})
    assert too_many.status_code == 413


@pytest.mark.parametrize(("body", "status"), [
    (b"{not json", 400), (b'{"number": 5}', 422), (b'{"number": "X1", "colour": "red"}', 422),
    (b'[1, 2]', 422), (b'{"number": "X1234567", "mrz": "P<"}', 422),
    (b'{"number": "X1234567", "country": "XYZ"}', 422),
])
def test_bad_requests_get_a_problem_answer_and_the_service_goes_on(service, body, status):
    r = call(service, "search", "/v1/check", content=body,
             headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    if status == 422 and b"XYZ" in body:
        assert r.json()["field"] == "issuing_country"
        assert r.json()["value"] == "XYZ"
    assert call(service, "search", "/v1/check", {"number": "Q9999999"}).status_code == 200


def test_oversize_slow_and_vanished_clients_do_not_stop_the_service(service):
    server, tokens = service
    big = call(service, "search", "/v1/check", content=b"x" * (300 << 20),
               headers={"Content-Type": "application/json"})
    assert big.status_code == 413
    for partial in (b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
                    b"POST /v1/check HTTP/1.1\r\nHo"):
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(partial)  # then vanish mid-request
    slow = socket.create_connection(("127.0.0.1", server.port))
    slow.sendall(b"POST /v1/check HTTP/1.1\r\n")  # a client that stalls
    try:
        r = call(service, "search", "/v1/check", {"number": "X1234567"})
        assert r.status_code == 200
        assert r.json()["hits"]
    finally:
        slow.close()
    leaked = call(service, "search", "/v1/check", {"number": "X1234567", "leads": True})
    for h in leaked.json()["hits"]:  # first level only: no status, owner, dates, place
        assert not {"status", "owner", "place_of_loss", "date_of_loss"} & set(h)


def test_reveal_and_decide_by_role_and_ncb(service):
    hit = call(service, "reveal", "/v1/check", {"number": "X1234567", "type": "P",
                                                "country": "FRA"}).json()["hits"][0]
    assert call(service, "search", "/v1/reveal", {"hit_id": hit["hit_id"]}).status_code == 403
    # a hit id is bound to the NCB it was issued to
    wrong_ncb = call(service, "owner", "/v1/reveal", {"hit_id": hit["hit_id"]})
    assert wrong_ncb.status_code == 404
    assert wrong_ncb.json()["hit_id"] == hit["hit_id"]
    details = call(service, "reveal", "/v1/reveal", {"hit_id": hit["hit_id"]}).json()
    assert details["status"] == "stolen"
    assert details["owner"] == "FRA"
    case_id = details["case_id"]
    assert call(service, "other", "/v1/cases/confirm",
                {"case_id": case_id}).status_code == 403  # not its case
    mine = call(service, "owner", "/v1/cases").json()["cases"]
    assert case_id in {c["case_id"] for c in mine}
    assert call(service, "other", "/v1/cases").json()["cases"] == []
    done = call(service, "owner", "/v1/cases/confirm", {"case_id": case_id})
    assert done.status_code == 200
    assert done.json()["state"] == "confirmed"
    again = call(service, "owner", "/v1/cases/reject", {"case_id": case_id, "reason": "x"})
    assert again.status_code == 409
    alerts = call(service, "owner", "/v1/alerts", params={"case_id": case_id}).json()
    assert {a["recipient"] for a in alerts["alerts"]} == {"owner:FRA"}


def test_manage_adds_and_withdraws_its_countries_records_seen_by_the_next_search(service):
    new = [{"document_number": "F0000001", "document_type": "P", "issuing_country": "FRA",
            "status": "stolen"}]
    assert call(service, "search", "/v1/records", new).status_code == 403
    assert call(service, "manage", "/v1/records", [{**new[0], "issuing_country": "DEU"}]
                ).status_code == 403  # not a country on its key
    report = call(service, "manage", "/v1/records", new + [
        {**new[0], "document_number": "??"}]).json()
    report_version = call(service, "search", "/v1/status").json()["list_version"]["version"]
    assert (report["inserted"], report["rejected"]) == (1, 1)
    assert report["problems"][0]["field"] == "document_number"
    found = call(service, "search", "/v1/check", {"number": "F0000001", "type": "P",
                                                  "country": "FRA"}).json()["hits"]
    assert [h["match"] for h in found] == ["exact"]
    csv = b"document_number,document_type,issuing_country,status\nF0000002,P,FRA,lost\n"
    assert call(service, "manage", "/v1/records", content=csv,
                headers={"Content-Type": "text/csv"}).json()["inserted"] == 1
    out = call(service, "manage", "/v1/records/withdraw",
               {"number": "F0000001", "type": "P", "country": "FRA", "reason": "recovered"})
    assert out.status_code == 200
    after = call(service, "search", "/v1/check", {"number": "F0000001", "type": "P",
                                                  "country": "FRA", "exact_only": True}).json()
    assert after["hits"] == []
    assert after["list_version"]["version"] == report_version + 2  # the CSV, the withdrawal
    gone = call(service, "manage", "/v1/records/withdraw",
                {"number": "F0000001", "type": "P", "country": "FRA"})
    assert gone.status_code == 404


def test_admin_makes_and_revokes_keys(service):
    assert call(service, "search", "/v1/keys").status_code == 403
    made = call(service, "admin", "/v1/keys", {"ncb": "ESP", "officer": "gate 3",
                                               "role": "search"}).json()
    token = made["token"]
    server, _ = service
    ok = httpx.post(server.url + "/v1/check", json={"number": "Q9999999"},
                    headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    listed = call(service, "admin", "/v1/keys").json()["keys"]
    assert all("token" not in k for k in listed)
    assert call(service, "admin", "/v1/keys/revoke", {"key_id": made["key_id"]}
                ).json()["revoked_at"]
    gone = httpx.post(server.url + "/v1/check", json={"number": "Q9999999"},
                      headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401


def test_status_and_metrics(service):
    status = call(service, "search", "/v1/status").json()
    assert status["records"] >= 8
    assert status["list_version"]["version"] >= 1
    assert status["list_age_seconds"] >= 0
    metrics = call(service, "search", "/metrics").text
    assert 'sltd_requests_total{endpoint="check",status="200"}' in metrics
    assert "sltd_hits_total" in metrics


def test_the_client_speaks_the_librarys_language(service, tmp_path):
    server, tokens = service
    with sltd.Client(server.url, tokens["reveal"]) as c:
        hits = c.check("X1234567", "P", "FRA")
        assert [(h.match.value, h.number) for h in hits] == [
            ("exact", "X1234567"), ("partial", "X1234567")]
        read = c.check_mrz((FIXTURES / "mrz" / "td3_ocr_error.txt").read_text())
        assert read.mrz.failed_checks
        assert [h.number for h in read.hits] == ["L898902C3"]
        details = c.reveal(hits[0].hit_id)
        assert details.owner == "FRA"
        assert details.case_id in {k.case_id for k in c.cases()}
        assert [r if isinstance(r, list) else "error" for r in
                c.check_many([{"number": "Q9999999"}, {"number": "??"}])] == [[], "error"]
        with pytest.raises(InvalidNumber) as bad:
            c.check("??")
        assert bad.value.field == "document_number"
        with pytest.raises(HitIdError):
            c.reveal("h" + "0" * 44)
        with pytest.raises(AccessDenied):
            c.withdraw("X1234567", "P", "FRA")
    with sltd.Client(server.url, tokens["manage"]) as c:
        with pytest.raises(RecordNotFound):
            c.withdraw("Z9999999", "P", "FRA")
        import pyarrow as pa
        import pyarrow.feather as feather
        import pyarrow.parquet as pq

        rows = {"document_number": ["F1000001"], "document_type": ["P"],
                "issuing_country": ["FRA"], "status": ["stolen"]}
        pq.write_table(pa.table(rows), tmp_path / "r.parquet")
        feather.write_feather(pa.table({**rows, "document_number": ["F1000002"]}),
                              tmp_path / "r.arrow")
        (tmp_path / "r.jsonl").write_text(json.dumps({**rows, "document_number": "F1000003",
                                                      "document_type": "P",
                                                      "issuing_country": "FRA",
                                                      "status": "lost"}) + "\n")
        for name in ("r.parquet", "r.arrow", "r.jsonl"):
            report = c.load(tmp_path / name)
            assert (report["inserted"], report["rejected"]) == (1, 0), (name, report)
        assert [h.number for h in c.check("F1000003", "P", "FRA")] == ["F1000003"]
    with sltd.Client(server.url, "sltd_bad_token") as c, pytest.raises(Unauthorized):
        c.check("X1234567")


def test_searches_are_answered_during_a_large_upload(tmp_path):
    db = tmp_path / "u.duckdb"
    tokens = make_index(db)
    server = Server(db)
    rows = "".join(f"U{i:08d},P,FRA,stolen\n" for i in range(1_000_000))
    body = ("document_number,document_type,issuing_country,status\n" + rows).encode()
    result = {}

    def upload():
        result["r"] = httpx.post(server.url + "/v1/records", content=body, timeout=300,
                                 headers={"Authorization": f"Bearer {tokens['manage']}",
                                          "Content-Type": "text/csv"})

    t = threading.Thread(target=upload)
    t.start()
    answered, slowest = 0, 0.0
    with httpx.Client(headers={"Authorization": f"Bearer {tokens['search']}"}) as web:
        while t.is_alive():
            start = time.perf_counter()
            r = web.post(server.url + "/v1/check", json={"number": "X1234567", "type": "P",
                                                         "country": "FRA"})
            slowest = max(slowest, time.perf_counter() - start)
            assert r.status_code == 200
            assert r.json()["hits"]
            answered += 1
    t.join()
    assert result["r"].json()["inserted"] == 1_000_000
    assert answered > 10  # searches went on while the upload ran (timings: bench/serve.py)
    with httpx.Client(headers={"Authorization": f"Bearer {tokens['search']}"}) as web:
        last = web.post(server.url + "/v1/check", json={"number": "U00999999", "type": "P",
                                                        "country": "FRA"}).json()
    assert last["hits"][0]["match"] == "exact"  # applied whole, seen by the next search
    assert server.stop() == 0


def test_sigterm_flushes_the_audit_and_sigkill_loses_no_alert(tmp_path):
    db, sink = tmp_path / "k.duckdb", tmp_path / "alerts.jsonl"
    tokens = make_index(db)
    server = Server(db)  # no sink: alerts wait in the outbox
    auth = {"Authorization": f"Bearer {tokens['reveal']}"}
    for _ in range(20):
        httpx.post(server.url + "/v1/check", json={"number": "Q9999999"}, headers=auth)
    hit = httpx.post(server.url + "/v1/check", json={"number": "X1234567", "type": "P",
                                                      "country": "FRA"}, headers=auth
                     ).json()["hits"][0]
    case = httpx.post(server.url + "/v1/reveal", json={"hit_id": hit["hit_id"]},
                      headers=auth).json()["case_id"]
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    server = Server(db, "--sink", str(sink))  # a restart delivers what was queued
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not sink.exists():
        time.sleep(0.1)
    time.sleep(0.5)
    for _ in range(5):
        httpx.post(server.url + "/v1/check", json={"number": "Q9999998"}, headers=auth)
    httpx.post(server.url + "/v1/check", json={"number": "Q9999998"},
               headers={"Authorization": "Bearer sltd_nope_nope"})  # 401
    httpx.post(server.url + "/v1/records/withdraw", json={
        "number": "X1234567", "type": "P", "country": "FRA"}, headers=auth)  # 403
    assert server.stop(signal.SIGTERM) == 0
    assert "service stopped" in server.log.read_text()
    sent = [json.loads(line) for line in sink.read_text().splitlines()]
    assert sorted(a["recipient"] for a in sent if a["case_id"] == case) == [
        "CCC", "owner:FRA", "searching:DEU"]
    with open_index(db) as ix:
        assert ix.verify_audit().ok
        checks = ix._db.cursor().execute(
            "SELECT count(*) FROM audit WHERE subject LIKE '%Q9999998%'").fetchall()[0][0]
        assert checks == 5  # flushed at SIGTERM
        assert {c.case_id for c in ix.cases()} == {case}
        refused = ix._db.cursor().execute(
            "SELECT actor, result FROM audit WHERE action = 'refused' ORDER BY seq").fetchall()
        assert [r[1][:3] for r in refused] == ["401", "403"]  # every refusal, audited
        assert refused[1][0] == "reveal"  # with the key's officer


def sltd_cli(db, *args, env=None):
    return subprocess.run([sys.executable, "-m", "sltd", "--db", str(db), *args],
                          capture_output=True, text=True, env=env)


def masked(text: str) -> str:
    """Output with hit ids, case ids and times blanked (they differ run to run)."""
    import re

    return re.sub(r"h[0-9a-f]{44}|c[0-9a-f-]{8,}|\d{4}-\d\d-\d\d[ T][0-9:.+]+( UTC)?",
                  "*", text)


def test_the_cli_with_server_gives_what_it_gives_on_the_file(tmp_path):
    import os

    db = tmp_path / "c.duckdb"
    tokens = make_index(db)
    mrz = (FIXTURES / "mrz" / "td3_ocr_error.txt").read_text()
    commands = [["check", "X1234567", "--type", "P", "--country", "FRA"],
                ["check", "X1234567", "--json"], ["check", "Q9999999"],
                ["check", "--mrz", mrz, "--json"], ["check", "X12345G7", "--leads"]]  # a look-alike
    local = [sltd_cli(db, *c) for c in commands]
    server = Server(db)
    busy = sltd_cli(db, "--wait", "0", "check", "X1234567")
    assert busy.returncode == 3
    assert f"--server {server.url}" in busy.stderr  # names the service, not just a pid
    keys = sltd_cli(db, "--wait", "0", "keys", "list")
    assert "`keys list` needs the file itself" in keys.stderr
    assert f"{server.url}/v1/keys" in keys.stderr
    env = {**os.environ, "SLTD_SERVER": server.url, "SLTD_TOKEN": tokens["reveal"]}
    remote = [sltd_cli(db, *c, env=env) for c in commands]
    for c, a, b in zip(commands, local, remote, strict=True):
        assert (a.returncode, masked(a.stdout)) == (b.returncode, masked(b.stdout)), c
    assert [r.returncode for r in remote] == [1, 1, 0, 1, 1]
    hit_id = next(h["hit_id"] for h in json.loads(remote[1].stdout)["hits"]
                  if h["country"] == "FRA")
    revealed = sltd_cli(db, "reveal", hit_id, env=env)
    assert revealed.returncode == 0, revealed.stderr
    assert "is STOLEN" in revealed.stdout
    case_id = revealed.stdout.split()[1].rstrip(":")
    assert case_id in sltd_cli(db, "hits", env=env).stdout
    owner = {**env, "SLTD_TOKEN": tokens["owner"]}
    assert "confirmed" in sltd_cli(db, "confirm", case_id, "--officer", "x", env=owner).stdout
    manage = {**env, "SLTD_TOKEN": tokens["manage"]}
    records = tmp_path / "more.csv"
    records.write_text("document_number,document_type,issuing_country,status\n"
                       "F7777777,P,FRA,stolen\n??,P,FRA,lost\n")
    loaded = sltd_cli(db, "load", str(records), env=manage)
    assert "1 inserted" in loaded.stdout, loaded.stderr
    assert "1 rejected" in loaded.stdout
    assert sltd_cli(db, "check", "F7777777", env=env).returncode == 1
    denied = sltd_cli(db, "withdraw", "F7777777", "--type", "P", "--country", "FRA",
                      env=env)
    assert denied.returncode == 3
    assert "may not manage" in denied.stderr
    assert sltd_cli(db, "withdraw", "F7777777", "--type", "P", "--country", "FRA",
                    env=manage).returncode == 0
    assert "active records" in sltd_cli(db, "stats", env=env).stdout
    assert sltd_cli(db, "screen", str(records), "--out", str(tmp_path / "o.csv"),
                    env=env).returncode == 2  # works on the file only: usage error
    assert server.stop() == 0


def test_numbers_stay_out_of_urls_and_unknown_paths_are_problems(service):
    """Document numbers only in bodies: the check endpoints take no GET."""
    server, tokens = service
    r = httpx.get(server.url + "/v1/check", params={"number": "X1234567"},
                  headers={"Authorization": f"Bearer {tokens['search']}"})
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"
    missing = httpx.post(server.url + "/v1/nothing-here", json={})
    assert missing.status_code == 404
    assert missing.json()["status"] == 404


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_with_certfile_and_keyfile(tmp_path):
    db = tmp_path / "t.duckdb"
    tokens = make_index(db)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server = Server(db, "--certfile", str(cert), "--keyfile", str(key), tls=True)
    with sltd.Client(server.url, tokens["search"], verify=str(cert)) as c:
        assert [h.number for h in c.check("X1234567", "P", "FRA")][:1] == ["X1234567"]
    with pytest.raises(httpx.TransportError):  # plain HTTP is not answered
        httpx.get(server.url.replace("https", "http") + "/health", timeout=2)
    assert server.stop() == 0


def test_the_feed_is_served_to_replicas_and_a_replica_service_keeps_syncing(tmp_path):
    """A service serves its feed (--feed) to replicas made from its URL; a replica's own
    service syncs with its feed in the background; only feed files are served."""
    from sltd.feed import init_replica, new_key, publish

    source = tmp_path / "source.duckdb"
    tokens = make_index(source)
    key, pub = new_key(tmp_path / "feed.key")
    feed = tmp_path / "feed"
    with open_index(source) as ix:
        publish(ix, feed, key)
        version = ix.list_version.version
    server = Server(source, "--feed", str(feed))
    try:
        url = server.url + "/v1/feed"
        assert httpx.get(url + "/feed.json").status_code == 401
        auth = {"Authorization": f"Bearer {tokens['search']}"}
        for bad in ("../source.duckdb", "v0000000001/../../source.duckdb", "feed.key",
                    "v0000000001/other.parquet"):
            assert httpx.get(f"{url}/{bad}", headers=auth).status_code == 404, bad
        by_url = init_replica(tmp_path / "by-url.duckdb", url, pub, token=tokens["search"])
        assert by_url.list_version.version == version
        assert [h.match.value for h in by_url.check("X1234567", "P", "FRA")] == [
            "exact", "partial"]
        by_url.close()
    finally:
        assert server.stop() == 0
    replica = init_replica(tmp_path / "post.duckdb", feed, pub)
    post_token = replica.add_key(ncb="ITA", officer="post", role="search")[1]  # its own keys
    replica.close()
    post = Server(tmp_path / "post.duckdb", "--sync-every", "1")
    try:
        with open_index(source) as ix:
            ix.withdraw("X1234567", "P", "FRA", reason="found")
            publish(ix, feed, key)
            version = ix.list_version.version
        auth = {"Authorization": f"Bearer {post_token}"}
        deadline = time.monotonic() + 30
        while httpx.get(post.url + "/v1/status", headers=auth).json()[
                "list_version"]["version"] != version:
            assert time.monotonic() < deadline, post.log.read_text()
            time.sleep(0.2)
        with sltd.Client(post.url, post_token) as client:
            assert [(h.doc_type, h.country) for h in client.check("X1234567", "P", "FRA",
                                                                    exact_only=True)] \
                == [("I", "DEU")]  # the FRA passport was withdrawn at the source
    finally:
        assert post.stop() == 0
    assert "Traceback" not in post.log.read_text()
