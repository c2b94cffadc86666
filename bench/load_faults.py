# ruff: noqa: E501 (the setup script embedded as a string has long lines)
"""Load and faults: 50 concurrent clients against gunicorn on PostgreSQL, with big changes
running as background jobs, a job worker killed mid-job and PostgreSQL restarted, both at fixed
times while the clients run, and a connector paging the delta feed throughout. A script
(`make load`), not a unit test.

    make load                     # 50 clients, 60 s; worker killed at 20%, PostgreSQL at 40%
    LOAD_CLIENTS=20 LOAD_SECONDS=60 make load

PostgreSQL: by default a throwaway cluster of its own (initdb into a temporary directory, run
as the postgres user on a free port from 5439, removed at the end), so the restart touches
nobody else's database. LOAD_PG=postgres://... uses another server; then LOAD_PG_RESTART must
be the shell command that restarts it (the script refuses to run without one).

Each client logs in (or uses an API key) and loops over a mix of search, add, edit and API
creates, logging every request; a client that gets a 503 (log-in during the restart
included) waits and tries again, so the load does not quietly shrink. A connector ("Load
Feed", an API connection) pages the delta feed of articles, customers and orders by the
documented contract (modifiedAtOrAfter once, then nextCursor) the whole time. An admin, in
two sessions (each fault on its own clock):
- at LOAD_KILL_WORKER_AT (20% of the run) starts a delete-all of the articles (a job), holds one
  article row so the job is caught inside its transaction, and kills the job worker with
  SIGKILL; a new worker starts; the sweeper (`manage.py jobs --requeue --every 2`, beside the
  worker as in production) must fail that job, restartable;
- imports a CSV of customers (a job, on the new worker);
- 3 s before LOAD_RESTART_AT (40% of the run) starts another delete-all, held inside its
  transaction, and at LOAD_RESTART_AT restarts PostgreSQL, whatever the job is doing.
At the end the sweeper runs once more, the connector pages the feed to its end, and the
database is checked against the clients' log:
- no 5xx other than 503, and every 503 is the clear page (HTML) or JSON (under /api/);
- every add/edit/create the server confirmed is there exactly as confirmed, none twice;
- a request that got a 503 or no answer left all or nothing (no half reference);
- each delete-all batch removed exactly the rows it recorded, or nothing at all;
- each job completed exactly once (done, with its batch) or left nothing (no batch, no rows);
- the faults happened under load: PostgreSQL restarted while every kind of client was running,
  at least one 503 during it, and afterwards each kind (people, API clients, the feed) was
  answered normally again by the same gunicorn; the killed worker's job was running when its
  worker died and ends failed and restartable;
- the connector saw every record that changed during the run at its final version.
Any problem: exit 1, each printed. Only 127.0.0.1 is contacted. Results:
bench/results/load_faults.json and bench/README.md.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
OWN_CLUSTER = "LOAD_PG" not in os.environ
PG_BIN = Path(os.environ.get("LOAD_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_RESTART = os.environ.get("LOAD_PG_RESTART", "")
DB = os.environ.get("LOAD_DB", "refdesk_load")
PORT = int(os.environ.get("LOAD_PORT", "8091"))
CLIENTS = int(os.environ.get("LOAD_CLIENTS", "50"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "60"))
RESTART_AT = float(os.environ.get("LOAD_RESTART_AT", str(round(0.4 * SECONDS, 1))))
KILL_WORKER_AT = float(os.environ.get("LOAD_KILL_WORKER_AT", str(round(0.2 * SECONDS, 1))))
JOB_BEFORE_RESTART = 3.0  # the second delete-all starts this long before the restart
BASE = f"http://127.0.0.1:{PORT}"
PASSWORD = "load-test-password-1"
PRELOADED_ARTICLES = 2000
IMPORT_ROWS = 1500
JOB_THRESHOLD = 500  # the delete-all (2,000 rows) and the import (1,500) run as jobs
FEED_TYPES = ("article", "customer", "order")
FEED_PAGE = 200
CLIENT_KINDS = ("people", "api", "feed")
PG = os.environ.get("LOAD_PG", "")  # set by OwnCluster when it starts
ENV = {
    **os.environ,
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


def database_url() -> str:
    return f"{PG}/{DB}"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=ENV, check=True)


class OwnCluster:
    """A throwaway PostgreSQL cluster (initdb into a temporary directory, on a free port from
    5439), run as the postgres user, so restarting it disturbs nobody; gone at the end."""

    def __enter__(self):
        global PG
        self.home = Path(tempfile.mkdtemp(prefix="refdesk-load-pg-"))
        self.data = self.home / "data"
        self.port = free_port(5439)
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres", "postgres")
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        settings = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.home} -c max_connections=200 "
            "-c fsync=off -c shared_buffers=128MB"  # throwaway: what is tested is the restart
        )
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.home / "log"),
            "-w",
            "-o",
            settings,
            "start",
        )
        PG = f"postgres://postgres@127.0.0.1:{self.port}"
        log(f"own PostgreSQL cluster on port {self.port} in {self.home}")
        return self

    def restart(self):
        # -l again: without it the new server writes to (and holds open) pg_ctl's output.
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.home / "log"),
            "-m",
            "fast",
            "-w",
            "restart",
        )

    def __exit__(self, *exc):
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.home, ignore_errors=True)

    def _pg(self, program: str, *args: str, check: bool = True):
        command = [str(PG_BIN / program), *args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, cwd="/tmp")


class OtherServer:
    """LOAD_PG: a server somebody else runs, restarted with the LOAD_PG_RESTART command."""

    def __enter__(self):
        return self

    def restart(self):
        subprocess.run(PG_RESTART, shell=True, check=True)

    def __exit__(self, *exc):
        pass


def free_port(first: int) -> int:
    for port in range(first, first + 100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise SystemExit(f"no free port from {first}")


def setup_database() -> dict:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as server:
        server.execute(f'DROP DATABASE IF EXISTS "{DB}"')
        server.execute(f'CREATE DATABASE "{DB}"')
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
feed = Connection.objects.create(tenant=tenant, connector=connector("api", "api"), name="Load Feed")
integration = Integration.objects.create(tenant=tenant, source=shop, target=erp, name="Shopify -> Fortnox", entity_types=["article", "customer", "order", "stock"])
User = get_user_model()
for n in range({CLIENTS}):
    user = User.objects.create_user(f"load{{n}}", password="{PASSWORD}")
    Membership.objects.create(user=user, tenant=tenant, role="support")
admin = User.objects.create_user("load-admin", password="{PASSWORD}")
Membership.objects.create(user=admin, tenant=tenant, role="admin")
for n in range({PRELOADED_ARTICLES}):
    make_reference(integration, "article", source_id=f"ART-{{n}}", target_id=f"FA-{{n}}")
from django.utils import timezone
print(json.dumps({{"integration": integration.pk, "tenant": tenant.pk, "api_id": api.connection_id, "api_key": apikeys.rotate_key(api), "feed_id": feed.connection_id, "feed_key": apikeys.rotate_key(feed), "since": timezone.now().isoformat()}}))
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


class Feed:
    """A connector paging the delta feed by its documented contract: `modifiedAtOrAfter` once,
    then each page's `nextCursor` back as `cursor`; the last one kept between polls. It keeps
    the newest version it was given of each record."""

    def __init__(self, world: dict, events, lock):
        auth = "Basic " + b64encode(f"{world['feed_id']}:{world['feed_key']}".encode()).decode()
        self.client = Client("feed", events, lock, auth=auth)
        self.since = world["since"]
        self.cursors: dict[str, str | None] = dict.fromkeys(FEED_TYPES)
        self.seen: dict[str, int] = {}  # localId -> the newest version given
        self.pages = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for record_type in FEED_TYPES:
                self.poll(record_type)
            stop.wait(0.5)

    def poll(self, record_type: str) -> bool:
        """Page one type to its end; True when it got there (False: an error, try later)."""
        while True:
            cursor = self.cursors[record_type]
            query = {"cursor": cursor} if cursor else {"modifiedAtOrAfter": self.since}
            status, text = self.client.request(
                "feed",
                "GET",
                f"/api/v1/{record_type}?" + urllib.parse.urlencode({**query, "limit": FEED_PAGE}),
            )
            if status != 200:
                time.sleep(0.5)
                return False
            page = json.loads(text)
            self.pages += 1
            for item in page["items"]:
                local_id = item["localId"]
                self.seen[local_id] = max(self.seen.get(local_id, 0), item["version"])
            if page["nextCursor"]:
                self.cursors[record_type] = page["nextCursor"]
            if not page["hasMore"]:
                return True

    def catch_up(self, timeout: float = 60) -> bool:
        """After the load: page every type to its end (the contract's next sync)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.poll(record_type) for record_type in FEED_TYPES):
                return True
        return False


class Sweeper:
    """`manage.py jobs --requeue --every 2` beside the worker, as in production, restarted if
    it exits (a sweep that meets the database restart ends the command; a process manager
    starts it again)."""

    def __init__(self):
        self.process = None
        self.starts = 0
        self.logfile = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sweeper")

    def __enter__(self):
        self.logfile = open(RESULTS / "load_faults_sweeper.log.tmp", "w")  # noqa: SIM115
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.is_set():
            if self.process is None or self.process.poll() is not None:
                self.starts += 1
                self.process = subprocess.Popen(
                    [sys.executable, "manage.py", "jobs", "--requeue", "--every", "2"],
                    cwd=ROOT,
                    env=ENV,
                    stdout=self.logfile,
                    stderr=subprocess.STDOUT,
                )
            self._stop.wait(1)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.process.terminate()
        self.process.wait(timeout=30)
        self.logfile.close()


def wait_for_job_state(job_id: int, states: set[str], timeout: float = 60) -> str:
    import psycopg

    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(database_url(), connect_timeout=2) as conn:
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

    with psycopg.connect(database_url()) as conn:
        return conn.execute("SELECT coalesce(max(id), 0) FROM records_job").fetchone()[0]


def worker_fault(client, world, events, lock, worker: JobWorker, t0: float):
    """At its fixed time: a delete-all job whose worker is killed; then an import (a job) on
    the new worker. `client` is the admin, logged in before the load starts."""
    integration = f"/t/load/integrations/{world['integration']}/references/"
    sleep_until(t0 + KILL_WORKER_AT)
    try:
        kill_worker_mid_job(client, integration + "articles/", events, lock, worker)
    finally:
        worker.start()  # whatever happened, the jobs after it have a worker
        log("job worker restarted")
    start_import(client, integration + "customers/", events, lock)


def database_fault(client, world, events, lock, cluster, t0: float):
    """At its fixed time, on its own clock (another session of the admin): a delete-all held
    inside its transaction, and PostgreSQL restarted beside it."""
    articles = f"/t/load/integrations/{world['integration']}/references/articles/"
    delete_all_during_restart(client, articles, events, lock, cluster, t0)


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def hold_an_article(holder, last: bool = False) -> None:
    """Lock one article record, so a delete-all of the articles waits inside its transaction
    (the first article, or the last: the two faults hold different rows, so neither waits
    for the other)."""
    order = "DESC" if last else "ASC"
    holder.execute(
        "SELECT r.id FROM records_record r WHERE r.record_type = 'article' "
        f"ORDER BY r.id {order} LIMIT 1 FOR UPDATE"
    )


def kill_worker_mid_job(client, articles: str, events, lock, worker: JobWorker) -> None:
    """A delete-all job, its worker killed with SIGKILL while the job is inside its
    transaction (held there by a locked article row)."""
    import psycopg

    holder = psycopg.connect(database_url())
    try:
        hold_an_article(holder)
        before = latest_job_id()
        client.request("delete-all", "POST", articles + "delete-all/", data={"confirm": "articles"})
        job = before + 1
        state = wait_for_job_state(job, {"running"}, timeout=10)
        time.sleep(0.5)  # inside its transaction, waiting for the held row
        worker.kill()
        with lock:
            events.append({"op": "worker-killed", "job": job, "job_state_at_kill": state})
        log(f"job worker killed (SIGKILL) during job {job} ({state})")
    finally:
        holder.close()  # lets the killed job's statement go (or the restart closed it)


def start_import(client, customers: str, events, lock):
    """Upload an import file and apply it as a job; a 503 (the database is away) is tried
    again a moment later, as a person would."""
    client.request("import-page", "GET", customers + "import/")
    for _ in range(20):
        status, location = upload_import(client, customers, events, lock)
        if status not in (0, 503):
            break
        time.sleep(1)
    token = re.search(r"upload=([\w-]+)", location or "")
    if not token:
        return
    for _ in range(20):
        before = latest_job_id()
        status, _ = client.request(
            "import-apply", "POST", customers + "import/apply/", data={"upload": token.group(1)}
        )
        if status != 503:  # a 503 saved nothing: apply again
            break
        time.sleep(1)
    with lock:
        events.append({"op": "import-started", "job": before + 1})


def upload_import(client, customers: str, events, lock) -> tuple[int, str]:
    rows = "".join(f"CUS-{i},FC-{i}\n" for i in range(IMPORT_ROWS))
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
    location, status, text = "", 0, ""
    try:
        with client.opener.open(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:  # the 302 to the preview, or a 503
        status, location = error.code, error.headers.get("Location", "")
        text = error.read().decode(errors="replace")
    except OSError:
        pass
    event = {"op": "import-upload", "status": status, "client": "load-admin"}
    if status == 503:
        event["clear_503"] = "briefly unavailable" in text
    with lock:
        events.append(event)
    return status, location


def delete_all_during_restart(client, articles: str, events, lock, cluster, t0: float):
    """Another delete-all, held inside its transaction, started a moment before PostgreSQL
    restarts (beside, on a thread of its own); the restart comes at its fixed time whatever
    the job or the request starting it is doing."""
    job = threading.Thread(target=start_held_delete_all, args=(client, articles, events, lock))
    sleep_until(t0 + RESTART_AT - JOB_BEFORE_RESTART)
    job.start()
    sleep_until(t0 + RESTART_AT)
    restart_postgres(cluster, events, lock, t0)
    job.join()


def start_held_delete_all(client, articles: str, events, lock) -> None:
    import psycopg

    try:
        with psycopg.connect(database_url()) as holder:
            hold_an_article(holder, last=True)
            before = latest_job_id()
            client.request(
                "delete-all", "POST", articles + "delete-all/", data={"confirm": "articles"}
            )
            with lock:
                events.append({"op": "job-during-restart", "job": before + 1})
            for _ in range(120):  # held until the restart ends this session
                time.sleep(0.5)
                holder.execute("SELECT 1")
    except psycopg.OperationalError:
        pass  # the restart closed it


def restart_postgres(cluster, events, lock, t0: float):
    log("restarting PostgreSQL")
    started = time.monotonic()
    cluster.restart()
    with lock:
        events.append(
            {
                "op": "pg-restart",
                "seconds": round(time.monotonic() - started, 2),
                "at": round(started - t0, 2),
            }
        )
    log(f"PostgreSQL back after {time.monotonic() - started:.1f} s")


def check(world: dict, events: list, feed: Feed, feed_complete: bool, load_ended: float) -> dict:
    problems = _response_problems(events)
    state = _read_final_state(world)
    confirmed, uncertain = _confirmed_references(events)
    problems += _reference_problems(state, confirmed, uncertain)
    api_ok, api_uncertain, api_problems = _api_problems(events, state["api_ids"])
    problems += api_problems
    problems += _batch_problems(state)
    problems += _job_problems(state, events)
    faults, fault_problems = _fault_problems(events, state, load_ended)
    problems += fault_problems
    feed_summary, feed_problems = _feed_problems(feed, feed_complete, state)
    problems += feed_problems
    statuses = Counter(e["status"] for e in events if "status" in e)
    jobs = state["jobs"]
    return {
        "clients": CLIENTS,
        "seconds": SECONDS,
        "postgres": "own throwaway cluster" if OWN_CLUSTER else "LOAD_PG",
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "ops": dict(Counter(e.get("op") for e in events)),
        **faults,
        "confirmed_references": len(confirmed),
        "uncertain_requests": len(uncertain) + len(api_uncertain),
        "api_created": len(api_ok),
        "article_targets_left": state["articles"],
        "delete_all_batches": [list(b) for b in state["batches"]],
        "jobs": [
            {
                "id": j[0],
                "kind": j[1],
                "state": j[2],
                "batch": j[3],
                "error": j[4],
                "restartable": j[7],
            }
            for j in jobs
        ],
        "feed": feed_summary,
        "requests_per_second": round(sum(statuses.values()) / SECONDS, 1),
        "problems": problems,
    }


def client_kind(event: dict) -> str | None:
    name = event.get("client", "")
    if name == "feed":
        return "feed"
    if name.startswith("api"):
        return "api"
    if name.startswith("load") and name != "load-admin":
        return "people"
    return None


def _fault_problems(events: list, state: dict, load_ended: float) -> tuple[dict, list[str]]:
    """The faults happened, at their times, while every kind of client was running, and
    every kind was answered normally again after the restart."""
    problems = _killed_job_problems(events, state, load_ended)
    restarts = [e for e in events if e.get("op") == "pg-restart"]
    if not restarts:
        return {"pg_restart": None}, [*problems, "PostgreSQL was not restarted"]
    at = restarts[0]["at"]
    back = at + restarts[0]["seconds"]
    during_load = [e for e in events if "status" in e and e["t"] <= load_ended]
    # A request under way in the 5 s before the restart (sent before it, answered after the
    # window opened): a feed page of a few hundred records takes seconds under this load.
    in_flight = Counter(
        client_kind(e)
        for e in during_load
        if e["t"] - e.get("seconds", 0) <= at and e["t"] >= at - 5
    )
    idle = [kind for kind in CLIENT_KINDS if not in_flight[kind]]
    if idle:
        problems.append(
            f"PostgreSQL restarted at {at} s with no {', '.join(idle)} requests under way "
            "in the 5 s before it: not under load"
        )
    if back > load_ended - 10:
        problems.append(
            f"PostgreSQL came back at {back:.1f} s, the load ended at {load_ended:.1f} s: "
            "too little load after it to see every client recover"
        )
    during = [e for e in during_load if e["status"] == 503 and at <= e["t"] <= back + 10]
    if not during:
        problems.append("no 503 answered during the restart: it did not meet the clients")
    ok_after = {
        kind: sum(
            1
            for e in during_load
            if client_kind(e) == kind and e["t"] > back + 3 and e["status"] in (200, 201, 302)
        )
        for kind in CLIENT_KINDS
    }
    for kind, count in ok_after.items():
        if not count:
            problems.append(f"no {kind} request succeeded after the restart")
    faults = {
        "load_ended_at": round(load_ended, 2),
        "pg_restart": restarts[0],
        "requests_under_way_before_restart": {kind: in_flight[kind] for kind in CLIENT_KINDS},
        "during_restart_503": len(during),
        "ok_after_restart": ok_after,
        "worker_killed": next((e for e in events if e.get("op") == "worker-killed"), None),
    }
    return faults, problems


def _killed_job_problems(events: list, state: dict, load_ended: float) -> list[str]:
    killed = [e for e in events if e.get("op") == "worker-killed"]
    if not killed:
        return ["the job worker was not killed"]
    kill = killed[0]
    problems = []
    if kill["job_state_at_kill"] != "running":
        problems.append(
            f"the worker was killed while its job {kill['job']} was "
            f"{kill['job_state_at_kill'] or 'missing'}, not running"
        )
    if kill["t"] > load_ended:
        problems.append(f"the worker was killed at {kill['t']} s, after the load")
    job = next((j for j in state["jobs"] if j[0] == kill["job"]), None)
    if job is None or not (job[2] == "failed" and job[7]) and job[2] != "done":
        problems.append(
            f"job {kill['job']}, whose worker was killed, ended "
            f"{job[2] if job else 'missing'} (restartable: {job[7] if job else None}); "
            "the sweeper should have failed it, restartable"
        )
    return problems


def _feed_problems(feed: Feed, complete: bool, state: dict) -> tuple[dict, list[str]]:
    """The connector saw every record that changed during the run, at its final version."""
    changed = state["changed_records"]
    missed = [
        (local_id, record_type, version)
        for local_id, record_type, version in changed
        if feed.seen.get(local_id, 0) < version
    ]
    problems = []
    if not complete:
        problems.append("the feed client could not page the feed to its end after the load")
    if missed:
        problems.append(
            f"the feed client missed {len(missed)} of {len(changed)} changed records "
            f"(localId, type, version): {missed[:5]}"
        )
    if not changed:
        problems.append("no record changed during the run: the feed was not tested")
    summary = {
        "types": list(FEED_TYPES),
        "pages": feed.pages,
        "records_seen": len(feed.seen),
        "records_changed": len(changed),
        "changed_by_type": dict(Counter(record_type for _, record_type, _ in changed)),
        "missed": len(missed),
        "complete": complete,
    }
    return summary, problems


def _response_problems(events: list) -> list[str]:
    problems = []
    bad_5xx = [e for e in events if e.get("status", 0) >= 500 and e["status"] != 503]
    unclear_503 = [e for e in events if e.get("status") == 503 and not e.get("clear_503")]
    if bad_5xx:
        problems.append(f"{len(bad_5xx)} responses were 5xx other than 503: {bad_5xx[:3]}")
    if unclear_503:
        problems.append(f"{len(unclear_503)} 503s without the clear page/JSON: {unclear_503[:3]}")
    return problems


def _read_final_state(world: dict) -> dict:
    """What the database holds after the load: references, batches, jobs, changed records."""
    import psycopg

    with psycopg.connect(database_url()) as conn:
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
                "(SELECT count(*) FROM records_batchchange x WHERE x.batch_id = j.batch_id), "
                "j.restartable "
                "FROM records_job j LEFT JOIN records_batch b ON b.id = j.batch_id ORDER BY j.id"
            ).fetchall(),
            "changed_records": conn.execute(
                "SELECT local_id, record_type, version FROM records_record "
                "WHERE tenant_id = %s AND last_modified >= %s",
                [world["tenant"], world["since"]],
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
    for job_id, kind, job_state, batch_id, _error, row_count, changes, _restartable in jobs:
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

    with psycopg.connect(database_url()) as conn:
        return conn.execute(
            "SELECT count(*) FROM records_job WHERE state = 'queued' "
            "OR (state = 'running' AND heartbeat_at > now() - interval '30 seconds')"
        ).fetchone()[0]


class Events(list):
    """The log of every request and fault, each with its time `t` in seconds from `t0`."""

    def __init__(self):
        super().__init__()
        self.t0 = time.monotonic()

    def append(self, event):
        event.setdefault("t", round(time.monotonic() - self.t0, 2))
        super().append(event)


def main() -> int:
    if not OWN_CLUSTER and not PG_RESTART:
        raise SystemExit(
            "LOAD_PG is set: set LOAD_PG_RESTART to the shell command that restarts that "
            "server (or unset LOAD_PG for a throwaway cluster of the script's own)."
        )
    RESULTS.mkdir(exist_ok=True)
    with OwnCluster() if OWN_CLUSTER else OtherServer() as cluster:
        ENV["DATABASE_URL"] = database_url()
        log(f"setting up {DB}")
        world = setup_database()
        events, lock = Events(), threading.Lock()
        feed = Feed(world, events, lock)
        worker = JobWorker().start()
        with Server():
            load_ended = run_load(world, events, lock, feed, worker, cluster)
            manage("jobs", "--requeue")  # the sweeper once more, as cron would
            feed_complete = feed.catch_up()
        worker.stop()
        (RESULTS / "load_faults_events.json.tmp").write_text(json.dumps(list(events)))
        result = check(world, list(events), feed, feed_complete, load_ended)
    (RESULTS / "load_faults.json").write_text(json.dumps(result, indent=2))
    log(json.dumps(result, indent=2))
    for problem in result["problems"]:
        log(f"problem: {problem}")
    log("PASS" if not result["problems"] else "FAIL")
    return 0 if not result["problems"] else 1


def run_load(world, events: Events, lock, feed: Feed, worker: JobWorker, cluster) -> float:
    """The clients for SECONDS, the faults at their times; the time the load ended."""
    stop = threading.Event()
    with Sweeper() as sweeper:
        log(f"gunicorn up on {BASE}; {CLIENTS} clients for {SECONDS:.0f} s")
        admin = Client("load-admin", events, lock)
        admin.log_in("load-admin")
        admin2 = Client("load-admin", events, lock)
        admin2.log_in("load-admin")
        events.t0 = t0 = time.monotonic()
        people = max(1, CLIENTS * 4 // 5)
        threads = [
            *(
                threading.Thread(target=person, args=(n, world, events, lock, stop))
                for n in range(people)
            ),
            *(
                threading.Thread(target=api_client, args=(n, world, events, lock, stop))
                for n in range(CLIENTS - people)
            ),
            threading.Thread(target=feed.run, args=(stop,)),
        ]
        faults = [
            threading.Thread(target=worker_fault, args=(admin, world, events, lock, worker, t0)),
            threading.Thread(
                target=database_fault, args=(admin2, world, events, lock, cluster, t0)
            ),
        ]
        for thread in [*threads, *faults]:
            thread.start()
        time.sleep(SECONDS)
        stop.set()
        load_ended = time.monotonic() - t0
        for thread in threads:
            thread.join(timeout=60)
        for thread in faults:
            thread.join()  # a fault set for after the load still happens (and fails the check)
        # Recovered without restarting the app:
        Client("probe", events, lock).log_in("load-admin")
        # Let the worker finish (or give up on) what it was doing, and the sweeper see it.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _active_jobs(worker):
            time.sleep(0.5)
        time.sleep(3)
    events.append({"op": "sweeper", "starts": sweeper.starts})
    return load_ended


if __name__ == "__main__":
    raise SystemExit(main())
