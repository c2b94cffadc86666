# ruff: noqa: E501 (the setup script embedded as a string has long lines)
"""Load and faults: 50 concurrent clients against gunicorn on PostgreSQL, with a restart of
PostgreSQL in the middle. A script (`make load`), not a unit test.

    make load                     # 50 clients, 60 s, PostgreSQL restarted at 20 s
    LOAD_CLIENTS=10 LOAD_SECONDS=20 make load

Each client logs in (or uses an API key) and loops over a mix of search, add, edit and API
creates, logging every request. An admin client runs delete-all of one entity type while the
database restarts. At the end the database is checked against the clients' log:
- no 5xx other than 503, and every 503 is the clear page (HTML) or JSON (under /api/);
- every add/edit/create the server confirmed is there exactly as confirmed, none twice;
- a request that got a 503 or no answer left all or nothing (no half reference);
- each delete-all batch removed exactly the rows it recorded, or nothing at all;
- the app answers normally after the restart without being restarted.
Only 127.0.0.1 is contacted. Results: bench/results/load_faults.json and the README.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG = os.environ.get("LOAD_PG", "postgres://postgres@127.0.0.1:5432")
DB = os.environ.get("LOAD_DB", "refdesk_load")
PORT = int(os.environ.get("LOAD_PORT", "8091"))
CLIENTS = int(os.environ.get("LOAD_CLIENTS", "50"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "60"))
RESTART_AT = float(os.environ.get("LOAD_RESTART_AT", "20"))
BASE = f"http://127.0.0.1:{PORT}"
PASSWORD = "load-test-password-1"
PRELOADED_ARTICLES = 2000
ENV = {
    **os.environ,
    "DATABASE_URL": f"{PG}/{DB}",
    "SECRET_KEY": "load-" + "k" * 60,
    "ALLOWED_HOSTS": "127.0.0.1",
    "SECURE_COOKIES": "0",
    "SECURE_SSL_REDIRECT": "0",
    "CONN_MAX_AGE": "60",
    "DJANGO_SETTINGS_MODULE": "config.settings",
}
ENV.pop("DEBUG", None)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=ENV, check=True)


def setup_database() -> dict:
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", DB], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DB], check=True)
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    script = f"""
import json, django
django.setup()
from django.contrib.auth import get_user_model
from integrations.models import *
from integrations import apikeys
from records.services import Actor
from references.services import ReferenceInput, add_reference
from tests.factories import make_reference
reseller = Reseller.objects.create(name="Load")
tenant = Tenant.objects.create(reseller=reseller, name="Load AB", slug="load")
def connector(code, category):
    return Connector.objects.get_or_create(code=code, defaults={{"name": code, "category": category}})[0]
shop = Connection.objects.create(tenant=tenant, connector=connector("shopify", "ecommerce"), name="Shopify")
erp = Connection.objects.create(tenant=tenant, connector=connector("fortnox", "erp"), name="Fortnox")
api = Connection.objects.create(tenant=tenant, connector=connector("api", "api"), name="Load API")
integration = Integration.objects.create(tenant=tenant, source=shop, target=erp, name="Shopify -> Fortnox", entity_types=["article", "customer", "order", "stock"])
User = get_user_model()
for n in range({CLIENTS}):
    user = User.objects.create_user(f"load{{n}}", password="{PASSWORD}")
    Membership.objects.create(user=user, tenant=tenant, role="support")
admin = User.objects.create_user("load-admin", password="{PASSWORD}")
Membership.objects.create(user=admin, tenant=tenant, role="admin")
for n in range({PRELOADED_ARTICLES}):
    make_reference(integration, "article", source_id=f"ART-{{n}}", target_id=f"FA-{{n}}")
print(json.dumps({{"integration": integration.pk, "api_id": api.connection_id, "api_key": apikeys.rotate_key(api)}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


class Server:
    def __enter__(self):
        RESULTS.mkdir(exist_ok=True)
        self.logfile = open(RESULTS / "load_faults_gunicorn.log.tmp", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "gunicorn"),
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{PORT}",
                "--workers",
                "3",
                "--worker-class",
                "gthread",
                "--threads",
                "8",
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=ENV,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
        )
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{BASE}/login/", timeout=2)
                return self
            except OSError:
                time.sleep(0.2)
        raise SystemExit("gunicorn did not start")

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.logfile.close()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    """One person's browser (cookies, CSRF token) or one API connection."""

    def __init__(self, name: str, events: list, lock: threading.Lock, auth: str | None = None):
        self.name, self.events, self.lock, self.auth = name, events, lock, auth
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )
        self.token = ""

    def request(self, op: str, method: str, path: str, data=None, json_body=None, **info):
        headers = {"X-CSRFToken": self.token, "HX-Request": "true", "Referer": BASE + "/"}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            body = urllib.parse.urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.auth:
            headers = {"Authorization": self.auth, "Content-Type": "application/json"}
        request = urllib.request.Request(BASE + path, data=body, method=method, headers=headers)
        started = time.monotonic()
        try:
            with self.opener.open(request, timeout=30) as response:
                status, text, ctype = response.status, response.read().decode(), response.headers
        except urllib.error.HTTPError as error:
            status, text, ctype = error.code, error.read().decode(errors="replace"), error.headers
        except OSError as error:
            status, text, ctype = 0, str(error), {}
        event = {
            "client": self.name,
            "op": op,
            "method": method,
            "path": path,
            "status": status,
            "seconds": round(time.monotonic() - started, 3),
            "content_type": (ctype.get("Content-Type") or "") if ctype else "",
            **info,
        }
        if status == 503:
            event["clear_503"] = (
                "database_unavailable" in text
                if path.startswith("/api/")
                else "briefly unavailable" in text
            )
        if status >= 500 and status != 503:
            event["body"] = text[:500]
        with self.lock:
            self.events.append(event)
        return status, text

    def log_in(self, username: str) -> None:
        status, page = self.request("login-page", "GET", "/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        self.token = token.group(1) if token else ""
        status, _ = self.request(
            "login",
            "POST",
            "/login/",
            data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": self.token},
        )
        if status != 302:
            raise RuntimeError(f"{username} could not log in: {status}")
        self.request("home", "GET", "/t/load/")
        # Log-in rotates the CSRF secret: send the new one (the cookie's value is a valid token).
        self.token = next((c.value for c in self.jar if c.name == "csrftoken"), self.token)


def person(n: int, world: dict, events, lock, stop: threading.Event):
    client = Client(f"load{n}", events, lock)
    client.log_in(f"load{n}")
    refs = f"/t/load/integrations/{world['integration']}/references/orders/"
    rng = random.Random(n)
    mine = []  # (source, target) this client added
    i = 0
    while not stop.is_set():
        i += 1
        roll = rng.random()
        if roll < 0.35 or not mine:
            source, target = f"C{n}-{i}", f"T{n}-{i}"
            status, _ = client.request(
                "add",
                "POST",
                refs + "add/",
                data={"source_id": source, "target_id": target, "source_ref": "", "target_ref": ""},
                source=source,
                target=target,
            )
            if status in (200, 201, 302):
                mine.append([source, target])
        elif roll < 0.65:
            q = rng.choice([f"C{n}-", f"T{rng.randrange(CLIENTS)}-", "ART-1", "nothing"])
            client.request("search", "GET", refs + "?" + urllib.parse.urlencode({"q": q}))
        else:
            pair = rng.choice(mine)
            status, page = client.request(
                "find", "GET", refs + "?" + urllib.parse.urlencode({"q": pair[0]})
            )
            found = re.search(refs + r"([0-9a-f]{32})/edit/", page)
            if status != 200 or not found:
                continue
            edit_url = refs + found.group(1) + "/edit/"
            status, form = client.request("edit-form", "GET", edit_url)
            version = re.search(r'name="version" value="(\d+)"', form)
            if status != 200 or not version:
                continue
            new_target = f"{pair[1].split('~')[0]}~{i}"
            status, _ = client.request(
                "edit",
                "POST",
                edit_url,
                data={
                    "source_id": pair[0],
                    "target_id": new_target,
                    "source_ref": "",
                    "target_ref": "",
                    "version": version.group(1),
                },
                source=pair[0],
                target=new_target,
                previous=pair[1],
            )
            if status in (200, 302):
                pair[1] = new_target


def api_client(n: int, world: dict, events, lock, stop: threading.Event):
    auth = "Basic " + b64encode(f"{world['api_id']}:{world['api_key']}".encode()).decode()
    client = Client(f"api{n}", events, lock, auth=auth)
    i = 0
    while not stop.is_set():
        i += 1
        remote_id = f"API{n}-{i}"
        client.request(
            "api-create",
            "POST",
            "/api/v1/order",
            json_body={"remoteId": remote_id, "data": {"n": i}, "customData": {}},
            remote_id=remote_id,
        )


def delete_all_during_restart(world, events, lock, start_at: float, t0: float):
    client = Client("load-admin", events, lock)
    client.log_in("load-admin")
    if start_at >= SECONDS:
        return
    time.sleep(max(0.0, t0 + start_at - time.monotonic()))
    url = f"/t/load/integrations/{world['integration']}/references/articles/delete-all/"
    client.request("delete-all", "POST", url, data={"confirm": "articles"})


def restart_postgres(events, lock, at: float, t0: float):
    if at >= SECONDS:
        return
    time.sleep(max(0.0, t0 + at - time.monotonic()))
    log("restarting PostgreSQL")
    started = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart", "-m", "fast"],
        check=True,
    )
    with lock:
        events.append(
            {
                "op": "pg-restart",
                "seconds": round(time.monotonic() - started, 2),
                "at": round(started - t0, 2),
            }
        )
    log(f"PostgreSQL back after {time.monotonic() - started:.1f} s")


def check(world: dict, events: list) -> dict:
    import psycopg

    problems = []
    statuses = Counter(e["status"] for e in events if "status" in e)
    bad_5xx = [e for e in events if e.get("status", 0) >= 500 and e["status"] != 503]
    unclear_503 = [e for e in events if e.get("status") == 503 and not e.get("clear_503")]
    if bad_5xx:
        problems.append(f"{len(bad_5xx)} responses were 5xx other than 503: {bad_5xx[:3]}")
    if unclear_503:
        problems.append(f"{len(unclear_503)} 503s without the clear page/JSON: {unclear_503[:3]}")

    with psycopg.connect(f"{PG}/{DB}") as conn:
        rows = conn.execute(
            "SELECT r.remote_id, c.name, r.record_id FROM records_remoteid r "
            "JOIN integrations_connection c ON c.id = r.connection_id WHERE r.record_type = 'order'"
        ).fetchall()
        by_record: dict[int, dict] = {}
        for remote_id, connection, record_id in rows:
            by_record.setdefault(record_id, {})[connection] = remote_id
        source_to_target = {
            ids["Shopify"]: ids.get("Fortnox") for ids in by_record.values() if "Shopify" in ids
        }
        api_ids = Counter(ids["Load API"] for ids in by_record.values() if "Load API" in ids)
        articles = conn.execute(
            "SELECT count(*) FROM records_remoteid r JOIN integrations_connection c "
            "ON c.id = r.connection_id WHERE r.record_type='article' AND c.name='Fortnox'"
        ).fetchone()[0]
        batches = conn.execute(
            "SELECT b.id, b.row_count, (SELECT count(*) FROM records_batchchange x "
            "WHERE x.batch_id = b.id), (SELECT count(*) FROM records_auditentry a "
            "WHERE a.batch_id = b.id) FROM records_batch b WHERE b.kind = 'delete_all'"
        ).fetchall()

    # The final state of each source id, from the log: the last confirmed add/edit.
    confirmed, uncertain = {}, set()
    for e in events:
        if e.get("op") in ("add", "edit"):
            if e["status"] in (200, 201, 302):
                confirmed[e["source"]] = e["target"]
            elif e["status"] in (0, 503):
                uncertain.add(e["source"])
    lost = {
        s: t for s, t in confirmed.items() if source_to_target.get(s) != t and s not in uncertain
    }
    if lost:
        problems.append(
            f"{len(lost)} confirmed references differ or are lost: {list(lost.items())[:5]}"
        )
    half = [s for s, t in source_to_target.items() if s.startswith("C") and t is None]
    if half:
        problems.append(f"{len(half)} added sources have no target (half-applied add): {half[:5]}")
    unexpected = [
        s
        for s in source_to_target
        if s.startswith("C") and s not in confirmed and s not in uncertain
    ]
    if unexpected:
        problems.append(f"{len(unexpected)} references nobody was told about: {unexpected[:5]}")
    api_ok = {e["remote_id"] for e in events if e.get("op") == "api-create" and e["status"] == 201}
    api_uncertain = {
        e["remote_id"] for e in events if e.get("op") == "api-create" and e["status"] in (0, 503)
    }
    missing_api = api_ok - set(api_ids)
    doubled_api = [r for r, count in api_ids.items() if count > 1]
    extra_api = set(api_ids) - api_ok - api_uncertain
    if missing_api or doubled_api or extra_api:
        problems.append(
            f"API creates: missing {sorted(missing_api)[:5]}, doubled {doubled_api[:5]}, unconfirmed {sorted(extra_api)[:5]}"
        )
    for batch_id, row_count, changes, audits in batches:
        if row_count != changes or audits != 1:
            problems.append(
                f"delete-all batch {batch_id}: row_count {row_count}, {changes} changes, {audits} audit entries"
            )
    if articles not in (0, PRELOADED_ARTICLES):
        problems.append(
            f"half-applied delete-all: {articles} of {PRELOADED_ARTICLES} article targets left"
        )
    if articles == 0 and not batches:
        problems.append("articles gone without a delete-all batch")
    after_restart = [e for e in events if e.get("op") == "pg-restart"]
    restart_at = after_restart[0]["at"] + after_restart[0]["seconds"] if after_restart else 0
    return {
        "clients": CLIENTS,
        "seconds": SECONDS,
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "ops": dict(Counter(e.get("op") for e in events)),
        "pg_restart": after_restart,
        "confirmed_references": len(confirmed),
        "uncertain_requests": len(uncertain) + len(api_uncertain),
        "api_created": len(api_ok),
        "article_targets_left": articles,
        "delete_all_batches": [list(b) for b in batches],
        "ok_after_restart": sum(
            1
            for e in events
            if e.get("t", 0) > restart_at + 3 and e.get("status") in (200, 201, 302)
        ),
        "problems": problems,
    }


def main() -> int:
    log(f"setting up {DB}")
    world = setup_database()
    t0 = time.monotonic()

    class Events(list):
        def append(self, event):
            event.setdefault("t", round(time.monotonic() - t0, 2))
            super().append(event)

    events = Events()
    lock = threading.Lock()
    stop = threading.Event()
    with Server():
        log(f"gunicorn up on {BASE}; {CLIENTS} clients for {SECONDS:.0f} s")
        t0 = time.monotonic()
        threads = []
        people = max(1, CLIENTS * 4 // 5)
        for n in range(people):
            threads.append(threading.Thread(target=person, args=(n, world, events, lock, stop)))
        for n in range(CLIENTS - people):
            threads.append(threading.Thread(target=api_client, args=(n, world, events, lock, stop)))
        threads.append(
            threading.Thread(target=restart_postgres, args=(events, lock, RESTART_AT, t0))
        )
        threads.append(
            threading.Thread(
                target=delete_all_during_restart, args=(world, events, lock, RESTART_AT, t0)
            )
        )
        for thread in threads:
            thread.start()
        time.sleep(SECONDS)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        # Recovered without restarting the app:
        probe = Client("probe", events, lock)
        probe.log_in("load-admin")
    result = check(world, list(events))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load_faults.json").write_text(json.dumps(result, indent=2))
    log(json.dumps(result, indent=2))
    log("PASS" if not result["problems"] else "FAIL")
    return 0 if not result["problems"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
