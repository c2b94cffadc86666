# ruff: noqa: E501 (the setup script embedded as a string has long lines)
"""Load and faults: 50 concurrent clients against gunicorn on PostgreSQL, with big changes
running as background jobs, a job worker killed mid-job, and a restart of PostgreSQL during
a job. A script (`make load`), not a unit test.

    make load                     # 50 clients, 60 s, worker killed at 5 s, PostgreSQL at 20 s
    LOAD_CLIENTS=10 LOAD_SECONDS=20 make load

Each client logs in (or uses an API key) and loops over a mix of search, add, edit and API
creates, logging every request; a client that gets a 503 (log-in during the restart
included) waits and tries again, so the load does not quietly shrink. An admin starts a
delete-all of the articles (a job) and the job worker is killed with SIGKILL while the job
is inside its transaction, then restarted; the admin imports a CSV of customers (a job); and
starts another delete-all of the articles just before PostgreSQL restarts. At the end the
database is checked against the clients' log:
- no 5xx other than 503, and every 503 is the clear page (HTML) or JSON (under /api/);
- every add/edit/create the server confirmed is there exactly as confirmed, none twice;
- a request that got a 503 or no answer left all or nothing (no half reference);
- each delete-all batch removed exactly the rows it recorded, or nothing at all;
- each job completed exactly once (done, with its batch) or left nothing (no batch, no rows);
- the app answers normally after the restart without being restarted.
Only 127.0.0.1 is contacted. Results: bench/results/load_faults.json and the README.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import random
import re
import signal
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
IMPORT_ROWS = 1500
KILL_WORKER_AT = float(os.environ.get("LOAD_KILL_WORKER_AT", "5"))
JOB_THRESHOLD = 500  # the delete-all (2,000 rows) and the import (1,500) run as jobs
ENV = {
    **os.environ,
    "DATABASE_URL": f"{PG}/{DB}",
    "SECRET_KEY": "load-" + "k" * 60,
    "ALLOWED_HOSTS": "127.0.0.1",
    "SECURE_COOKIES": "0",
    "SECURE_SSL_REDIRECT": "0",
    "CONN_MAX_AGE": "60",
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "REFDESK_JOB_THRESHOLD": str(JOB_THRESHOLD),
    "TASKS_BACKEND": "db",
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
from records.audit import Actor
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


class JobWorker:
    """`manage.py db_worker` in its own process group (so SIGKILL takes all of it)."""

    def __init__(self):
        self.process = None
        self.logfile = None

    def start(self):
        self.logfile = open(RESULTS / "load_faults_worker.log.tmp", "a")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "db_worker", "--no-reload", "--interval", "0.2"],
            cwd=ROOT,
            env=ENV,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.logfile:
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

    def log_in(self, username: str, stop: threading.Event | None = None) -> bool:
        """Log in, retrying while the database is away (a 503 or no answer), as a person
        would; False only if the run ends first."""
        delay = 0.5
        while True:
            status, page = self.request("login-page", "GET", "/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
            self.token = token.group(1) if token else ""
            if status == 200:
                status, _ = self.request(
                    "login",
                    "POST",
                    "/login/",
                    data={
                        "username": username,
                        "password": PASSWORD,
                        "csrfmiddlewaretoken": self.token,
                    },
                )
                if status == 302:
                    break
            if status not in (0, 503, 200):
                raise RuntimeError(f"{username} could not log in: {status}")
            if stop is not None and stop.is_set():
                return False
            time.sleep(delay)
            delay = min(delay * 2, 4)
        self.request("home", "GET", "/t/load/")
        # Log-in rotates the CSRF secret: send the new one (the cookie's value is a valid token).
        self.token = next((c.value for c in self.jar if c.name == "csrftoken"), self.token)
        return True


def person(n: int, world: dict, events, lock, stop: threading.Event):
    client = Client(f"load{n}", events, lock)
    if not client.log_in(f"load{n}", stop):
        return
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
            status, _ = client.request(
                "search", "GET", refs + "?" + urllib.parse.urlencode({"q": q})
            )
            if status in (0, 503):
                time.sleep(0.5)  # the database is away: try again in a moment
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


def wait_for_job_state(job_id: int, states: set[str], timeout: float = 60) -> str:
    import psycopg

    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(f"{PG}/{DB}", connect_timeout=2) as conn:
                row = conn.execute(
                    "SELECT state FROM records_job WHERE id = %s", [job_id]
                ).fetchone()
            state = row[0] if row else ""
            if state in states:
                return state
        except psycopg.OperationalError:
            pass
        time.sleep(0.05)
    return state


def latest_job_id() -> int:
    import psycopg

    with psycopg.connect(f"{PG}/{DB}") as conn:
        return conn.execute("SELECT coalesce(max(id), 0) FROM records_job").fetchone()[0]


def admin_jobs(client, world, events, lock, worker: JobWorker, t0: float):
    """The admin's big changes, as jobs, and the faults around them (`client` is logged in
    before the load starts, so the faults happen on time)."""
    import psycopg

    articles = f"/t/load/integrations/{world['integration']}/references/articles/"
    customers = f"/t/load/integrations/{world['integration']}/references/customers/"
    # 1. A delete-all job, its worker killed with SIGKILL while the job is in its transaction:
    #    one article record is held locked so the job is caught in the middle of its writes.
    time.sleep(max(0.0, t0 + KILL_WORKER_AT - time.monotonic()))
    with psycopg.connect(f"{PG}/{DB}") as holder:
        holder.execute(
            "SELECT r.id FROM records_record r WHERE r.record_type = 'article' "
            "ORDER BY r.id LIMIT 1 FOR UPDATE"
        )
        before = latest_job_id()
        client.request("delete-all", "POST", articles + "delete-all/", data={"confirm": "articles"})
        job = before + 1
        wait_for_job_state(job, {"running"})
        time.sleep(0.5)  # inside its transaction, waiting for the held row
        worker.kill()
        with lock:
            events.append({"op": "worker-killed", "job": job})
        log(f"job worker killed (SIGKILL) during job {job}")
        holder.rollback()
    worker.start()
    log("job worker restarted")
    # 2. An import job, on the restarted worker.
    start_import(client, customers, events, lock)
    # 3. Another delete-all of the articles, held inside its transaction (as in 1.) when
    #    PostgreSQL restarts: the restart comes once the job is running.
    if RESTART_AT < SECONDS:
        delete_all_during_restart(client, articles, events, lock, t0)


def start_import(client, customers: str, events, lock):
    """Upload an import file and apply it as a job."""
    rows = "".join(f"CUS-{i},FC-{i}\n" for i in range(IMPORT_ROWS))
    status, page = client.request("import-page", "GET", customers + "import/")
    boundary = "loadboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n'
        f'{client.token}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="customers.csv"\r\nContent-Type: text/csv\r\n\r\nsource_id,target_id\n'
        f"{rows}\r\n--{boundary}--\r\n"
    ).encode()
    request = urllib.request.Request(
        BASE + customers + "import/",
        data=body,
        method="POST",
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "X-CSRFToken": client.token,
            "Referer": BASE + "/",
        },
    )
    location, status = "", 0
    try:
        with client.opener.open(request, timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as error:  # the 302 to the preview
        status, location = error.code, error.headers.get("Location", "")
    with lock:
        events.append({"op": "import-upload", "status": status, "client": "load-admin"})
    token = re.search(r"upload=([\w-]+)", location or "")
    if token:
        before = latest_job_id()
        client.request(
            "import-apply", "POST", customers + "import/apply/", data={"upload": token.group(1)}
        )
        with lock:
            events.append({"op": "import-started", "job": before + 1})


def delete_all_during_restart(client, articles: str, events, lock, t0: float):
    import psycopg

    time.sleep(max(0.0, t0 + RESTART_AT - time.monotonic()))
    try:
        with psycopg.connect(f"{PG}/{DB}") as holder:
            holder.execute(
                "SELECT r.id FROM records_record r WHERE r.record_type = 'article' "
                "ORDER BY r.id LIMIT 1 FOR UPDATE"
            )
            before = latest_job_id()
            client.request(
                "delete-all", "POST", articles + "delete-all/", data={"confirm": "articles"}
            )
            with lock:
                events.append({"op": "job-during-restart", "job": before + 1})
            wait_for_job_state(before + 1, {"running"})
            time.sleep(0.5)
            restart_postgres(events, lock, t0)
    except psycopg.OperationalError:
        pass  # the restart closed the holding connection too


def restart_postgres(events, lock, t0: float):
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
    problems = _response_problems(events)
    state = _read_final_state()
    confirmed, uncertain = _confirmed_references(events)
    problems += _reference_problems(state, confirmed, uncertain)
    api_ok, api_uncertain, api_problems = _api_problems(events, state["api_ids"])
    problems += api_problems
    problems += _batch_problems(state)
    problems += _job_problems(state, events)
    statuses = Counter(e["status"] for e in events if "status" in e)
    after_restart = [e for e in events if e.get("op") == "pg-restart"]
    restart_at = after_restart[0]["at"] + after_restart[0]["seconds"] if after_restart else 0
    jobs = state["jobs"]
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
        "article_targets_left": state["articles"],
        "delete_all_batches": [list(b) for b in state["batches"]],
        "jobs": [
            {"id": j[0], "kind": j[1], "state": j[2], "batch": j[3], "error": j[4]} for j in jobs
        ],
        "requests_per_second": round(sum(statuses.values()) / SECONDS, 1),
        "ok_after_restart": sum(
            1
            for e in events
            if e.get("t", 0) > restart_at + 3 and e.get("status") in (200, 201, 302)
        ),
        "problems": problems,
    }


def _response_problems(events: list) -> list[str]:
    problems = []
    bad_5xx = [e for e in events if e.get("status", 0) >= 500 and e["status"] != 503]
    unclear_503 = [e for e in events if e.get("status") == 503 and not e.get("clear_503")]
    if bad_5xx:
        problems.append(f"{len(bad_5xx)} responses were 5xx other than 503: {bad_5xx[:3]}")
    if unclear_503:
        problems.append(f"{len(unclear_503)} 503s without the clear page/JSON: {unclear_503[:3]}")
    return problems


def _read_final_state() -> dict:
    """What the database holds after the load: references, batches, jobs."""
    import psycopg

    with psycopg.connect(f"{PG}/{DB}") as conn:
        rows = conn.execute(
            "SELECT r.remote_id, c.name, r.record_id FROM records_remoteid r "
            "JOIN integrations_connection c ON c.id = r.connection_id WHERE r.record_type = 'order'"
        ).fetchall()
        by_record: dict[int, dict] = {}
        for remote_id, connection, record_id in rows:
            by_record.setdefault(record_id, {})[connection] = remote_id
        return {
            "source_to_target": {
                ids["Shopify"]: ids.get("Fortnox") for ids in by_record.values() if "Shopify" in ids
            },
            "api_ids": Counter(ids["Load API"] for ids in by_record.values() if "Load API" in ids),
            "articles": conn.execute(
                "SELECT count(*) FROM records_remoteid r JOIN integrations_connection c "
                "ON c.id = r.connection_id WHERE r.record_type='article' AND c.name='Fortnox'"
            ).fetchone()[0],
            "batches": conn.execute(
                "SELECT b.id, b.row_count, (SELECT count(*) FROM records_batchchange x "
                "WHERE x.batch_id = b.id), (SELECT count(*) FROM records_auditentry a "
                "WHERE a.batch_id = b.id) FROM records_batch b WHERE b.kind = 'delete_all'"
            ).fetchall(),
            "jobs": conn.execute(
                "SELECT j.id, j.kind, j.state, j.batch_id, j.error, b.row_count, "
                "(SELECT count(*) FROM records_batchchange x WHERE x.batch_id = j.batch_id) "
                "FROM records_job j LEFT JOIN records_batch b ON b.id = j.batch_id ORDER BY j.id"
            ).fetchall(),
            "import_batches": conn.execute(
                "SELECT count(*) FROM records_batch WHERE kind = 'import'"
            ).fetchone()[0],
            "customer_targets": conn.execute(
                "SELECT count(*) FROM records_remoteid r JOIN integrations_connection c "
                "ON c.id = r.connection_id WHERE r.record_type='customer' AND c.name='Fortnox'"
            ).fetchone()[0],
        }


def _confirmed_references(events: list) -> tuple[dict, set]:
    """The final state of each source id, from the log: the last confirmed add/edit."""
    confirmed, uncertain = {}, set()
    for e in events:
        if e.get("op") in ("add", "edit"):
            if e["status"] in (200, 201, 302):
                confirmed[e["source"]] = e["target"]
            elif e["status"] in (0, 503):
                uncertain.add(e["source"])
    return confirmed, uncertain


def _reference_problems(state: dict, confirmed: dict, uncertain: set) -> list[str]:
    problems = []
    source_to_target = state["source_to_target"]
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
    return problems


def _api_problems(events: list, api_ids: Counter) -> tuple[set, set, list[str]]:
    creates = [e for e in events if e.get("op") == "api-create"]
    api_ok = {e["remote_id"] for e in creates if e["status"] == 201}
    api_uncertain = {e["remote_id"] for e in creates if e["status"] in (0, 503)}
    missing_api = api_ok - set(api_ids)
    doubled_api = [r for r, count in api_ids.items() if count > 1]
    extra_api = set(api_ids) - api_ok - api_uncertain
    problems = []
    if missing_api or doubled_api or extra_api:
        problems.append(
            f"API creates: missing {sorted(missing_api)[:5]}, doubled {doubled_api[:5]}, "
            f"unconfirmed {sorted(extra_api)[:5]}"
        )
    return api_ok, api_uncertain, problems


def _batch_problems(state: dict) -> list[str]:
    problems = []
    articles, batches = state["articles"], state["batches"]
    for batch_id, row_count, changes, audits in batches:
        if row_count != changes or audits != 1:
            problems.append(
                f"delete-all batch {batch_id}: row_count {row_count}, {changes} changes, "
                f"{audits} audit entries"
            )
    if articles not in (0, PRELOADED_ARTICLES):
        problems.append(
            f"half-applied delete-all: {articles} of {PRELOADED_ARTICLES} article targets left"
        )
    if articles == 0 and not batches:
        problems.append("articles gone without a delete-all batch")
    return problems


def _job_problems(state: dict, events: list) -> list[str]:
    """Jobs: done exactly once with a whole batch, or nothing left behind."""
    problems = []
    jobs, articles, batches = state["jobs"], state["articles"], state["batches"]
    done_delete_alls = [j for j in jobs if j[1] == "delete_all" and j[2] == "done"]
    for job_id, kind, job_state, batch_id, _error, row_count, changes in jobs:
        # A delete-all batch records one removed row per reference; an import of new
        # references two added rows (source and target) per line.
        expected = row_count if kind == "delete_all" else 2 * (row_count or 0)
        if job_state == "done" and (batch_id is None or changes != expected):
            problems.append(f"job {job_id} ({kind}) done without a whole batch")
        if job_state != "done" and batch_id is not None:
            problems.append(f"job {job_id} ({kind}) is {job_state} but has a batch")
    if len(done_delete_alls) != len(batches):
        problems.append(
            f"{len(done_delete_alls)} delete-all jobs done but {len(batches)} delete-all batches"
        )
    if (articles == 0) != (len(done_delete_alls) == 1) or len(done_delete_alls) > 1:
        problems.append(
            f"{articles} article targets left with {len(done_delete_alls)} delete-all jobs done"
        )
    imports_done = [j for j in jobs if j[1] == "import" and j[2] == "done"]
    customer_targets, import_batches = state["customer_targets"], state["import_batches"]
    if customer_targets != IMPORT_ROWS * len(imports_done) or import_batches != len(imports_done):
        problems.append(
            f"import: {customer_targets} customer targets, {import_batches} batches, "
            f"{len(imports_done)} import jobs done"
        )
    killed = [e["job"] for e in events if e.get("op") == "worker-killed"]
    for job_id, _kind, job_state, *_ in jobs:
        if job_id in killed and job_state == "done":
            problems.append(f"job {job_id} was killed mid-way but says done")
    return problems


def _active_jobs(worker: JobWorker) -> int:
    """Jobs still queued or running on a live worker (a killed job stays 'running')."""
    import psycopg

    with psycopg.connect(f"{PG}/{DB}") as conn:
        return conn.execute(
            "SELECT count(*) FROM records_job WHERE state = 'queued' "
            "OR (state = 'running' AND heartbeat_at > now() - interval '30 seconds')"
        ).fetchone()[0]


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
    worker = JobWorker().start()
    with Server():
        log(f"gunicorn up on {BASE}; {CLIENTS} clients for {SECONDS:.0f} s")
        admin = Client("load-admin", events, lock)
        admin.log_in("load-admin")
        t0 = time.monotonic()
        threads = []
        people = max(1, CLIENTS * 4 // 5)
        for n in range(people):
            threads.append(threading.Thread(target=person, args=(n, world, events, lock, stop)))
        for n in range(CLIENTS - people):
            threads.append(threading.Thread(target=api_client, args=(n, world, events, lock, stop)))
        threads.append(
            threading.Thread(target=admin_jobs, args=(admin, world, events, lock, worker, t0))
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
        # Let the worker finish (or give up on) what it was doing before checking.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _active_jobs(worker):
            time.sleep(0.5)
    worker.stop()
    result = check(world, list(events))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load_faults.json").write_text(json.dumps(result, indent=2))
    log(json.dumps(result, indent=2))
    log("PASS" if not result["problems"] else "FAIL")
    return 0 if not result["problems"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
