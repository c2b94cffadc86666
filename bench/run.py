"""`make bench`: refdesk at BENCH_N references, over real HTTP, beside the Django admin.

    BENCH_N=1000000        references of the main integration (default 1,000,000)
    BENCH_DB=...           database name (default refdesk_bench, refdesk_bench_<N> for other N)
    BENCH_PG=postgres://postgres@127.0.0.1:5432   server to create it on
    BENCH_PORT=8090        where gunicorn listens (127.0.0.1 only)
    BENCH_REQUESTS=300     timed requests per operation (after BENCH_WARMUP=20)
    BENCH_MAX_SECONDS=20   stop an operation's loop after this long (slow admin searches)
    BENCH_ONLY=a,b         run only these operation keys (and the once-only ones named)
    BENCH_DELETE_ALL=articles   tabs whose delete-all + restore are timed (orders too at 3M)

See bench/README.md for what is measured and the latest results.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
N = int(os.environ.get("BENCH_N", "1000000"))
DB = os.environ.get("BENCH_DB") or ("refdesk_bench" if N == 1_000_000 else f"refdesk_bench_{N}")
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")
PORT = int(os.environ.get("BENCH_PORT", "8090"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "300"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "20"))
MAX_SECONDS = float(os.environ.get("BENCH_MAX_SECONDS", "20"))
ONLY = {key for key in os.environ.get("BENCH_ONLY", "").split(",") if key}
ADMIN_PATH = "/admin/records/remoteid/"
# Tabs whose delete-all and restore are timed: articles (~256k rows at 1M); at 3M also orders
# (~1M rows).
DELETE_ALL_TABS = os.environ.get(
    "BENCH_DELETE_ALL", "articles,orders" if N >= 3_000_000 else "articles"
).split(",")


def log(message: str) -> None:
    # UTC: Django's settings switch the process's local time zone part-way through a run.
    print(f"[bench {time.strftime('%H:%M:%SZ', time.gmtime())}] {message}", flush=True)


# --- environment ----------------------------------------------------------------------------


def server_env() -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": f"{PG}/{DB}",
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("BENCH_SECRET_KEY", "bench-" + "x" * 50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_COOKIES": "0",  # plain HTTP on loopback
        "SECURE_HSTS_SECONDS": "0",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "ERROR",
    }


def create_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone()
        if not exists:
            log(f"creating database {DB}")
            conn.execute(f'CREATE DATABASE "{DB}"')


def setup_django() -> None:
    os.environ.update(server_env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def git_sha() -> str:
    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "nogit"
    return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


# --- the server -------------------------------------------------------------------------------


class Server:
    """gunicorn as the README's production section starts it (2 sync workers, the default
    30 s timeout, DEBUG off), on 127.0.0.1."""

    def __init__(self):
        self.log_path = RESULTS / "gunicorn.log.tmp"
        self.process = None

    def __enter__(self):
        command = [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            os.environ.get("BENCH_WORKERS", "2"),
            "--error-logfile",
            str(self.log_path),
        ]
        self.process = subprocess.Popen(command, cwd=ROOT, env=server_env())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                status, _, _ = request("GET", "/login/")
                if status == 200:
                    log(f"gunicorn up on 127.0.0.1:{PORT} (pid {self.process.pid})")
                    return self
            except OSError:
                time.sleep(0.3)
        raise SystemExit(f"gunicorn did not start; see {self.log_path}")

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)

    def worker_rss_kb(self) -> int:
        """Summed resident memory of the worker processes."""
        total = 0
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            for pid in children.read_text().split():
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
        return total


# --- HTTP -------------------------------------------------------------------------------------


class Session:
    """Cookies and credentials of one client; each request is a fresh HTTP/1.1 connection
    (gunicorn's sync workers close after every response, as behind a real proxy)."""

    def __init__(self, basic: tuple[str, str] | None = None):
        self.cookies: dict[str, str] = {}
        self.basic = basic

    def headers(self, extra: dict | None = None) -> dict:
        headers = {"Host": "127.0.0.1"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.basic:
            token = base64.b64encode(":".join(self.basic).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
        headers.update(extra or {})
        return headers

    def request(self, method, path, body=None, headers=None):
        status, response_headers, data = request(method, path, body, self.headers(headers))
        for name, value in response_headers:
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        return status, dict(response_headers), data

    def login(self, username: str, password: str) -> Session:
        self.request("GET", "/login/")
        status, headers, _ = self.request(
            "POST",
            "/login/",
            urlencode(
                {
                    "username": username,
                    "password": password,
                    "csrfmiddlewaretoken": self.cookies.get("csrftoken", ""),
                }
            ),
            {"Content-Type": "application/x-www-form-urlencoded", "Referer": "/login/"},
        )
        if status != 302 or "sessionid" not in self.cookies:
            raise SystemExit(f"login as {username} failed ({status})")
        return self


def request(method, path, body=None, headers=None, sink=None):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=600)
    try:
        conn.request(method, path, body=body, headers=headers or {"Host": "127.0.0.1"})
        response = conn.getresponse()
        if sink is None:
            data = response.read()
        else:
            data = b""
            while chunk := response.read(1 << 16):
                sink(chunk)
        return response.status, response.getheaders(), data
    finally:
        conn.close()


# --- operations -------------------------------------------------------------------------------


@dataclass
class Op:
    key: str
    label: str
    session: str  # "app", "admin" or "api"
    path: Callable[[int], str]
    method: str = "GET"
    body: Callable[[int], tuple[str, str]] | None = None  # (content type, body)
    baseline: str | None = None
    expect: tuple[int, ...] = (200,)
    headers: dict = field(default_factory=dict)
    requests: int = REQUESTS


@dataclass
class Result:
    key: str
    label: str
    status: str = "ok"
    samples: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    note: str = ""
    baseline: str | None = None

    def as_dict(self, by_key) -> dict:
        out = {"key": self.key, "label": self.label, "status": self.status, "note": self.note}
        if self.samples:
            ordered = sorted(self.samples)
            out.update(
                requests=len(ordered),
                p50_ms=round(percentile(ordered, 50), 2),
                p95_ms=round(percentile(ordered, 95), 2),
                mean_ms=round(statistics.fmean(ordered), 2),
                queries=max(self.queries) if self.queries else None,
                queries_min=min(self.queries) if self.queries else None,
            )
            base = by_key.get(self.baseline)
            if base and base.samples:
                out["baseline"] = self.baseline
                out["ratio_to_admin"] = round(
                    percentile(sorted(base.samples), 50) / out["p50_ms"], 1
                )
        return out


def percentile(ordered: list[float], pct: float) -> float:
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def run_op(op: Op, sessions: dict[str, Session]) -> Result:
    result = Result(op.key, op.label, baseline=op.baseline)
    session = sessions.get(op.session)
    if session is None:
        result.status, result.note = "skipped", f"no {op.session} session (not built yet?)"
        return result
    started = time.monotonic()
    warmup = WARMUP
    for i in range(WARMUP + op.requests):
        if i < warmup and time.monotonic() - started > MAX_SECONDS / 4:
            warmup = i  # slow operation: a few warm-up requests are enough
            started = time.monotonic()
        body, headers = None, dict(op.headers)
        if op.body:
            content_type, body = op.body(i)
            headers["Content-Type"] = content_type
        t0 = time.perf_counter()
        status, response_headers, data = session.request(op.method, op.path(i), body, headers)
        elapsed = (time.perf_counter() - t0) * 1000
        if status not in op.expect:
            result.status = "skipped" if status == 404 and i == 0 else "error"
            result.note = f"HTTP {status} for {op.method} {op.path(i)}"
            if result.status == "error":
                log(f"{op.key}: {result.note}: {data[:300]!r}")
            return result
        if i == warmup - 1:
            started = time.monotonic()
        if i >= warmup:
            result.samples.append(elapsed)
            count = response_headers.get("X-Bench-Queries")
            if count is not None:
                result.queries.append(int(count))
            if time.monotonic() - started > MAX_SECONDS and len(result.samples) >= 10:
                result.note = f"stopped after {MAX_SECONDS:.0f} s"
                break
    return result


def throughput(op: Op, sessions, clients: int = 4, total: int = 2000) -> dict:
    """Requests per second with `clients` concurrent connections (client on the same cores)."""
    session = sessions.get(op.session)
    if session is None:
        return {"status": "skipped"}
    counter = iter(range(total))
    lock = threading.Lock()
    errors = []

    deadline = time.monotonic() + MAX_SECONDS
    done = []

    def worker():
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            status, _, _ = request(op.method, op.path(i), None, session.headers())
            if status != 200:
                errors.append(status)
            done.append(i)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - t0
    return {
        "status": "ok" if not errors else "error",
        "requests": len(done),
        "clients": clients,
        "seconds": round(seconds, 2),
        "requests_per_second": round(len(done) / seconds),
        "errors": len(errors),
    }


# --- the plan ---------------------------------------------------------------------------------


class Plan:
    """Sample ids and URLs for the loaded world."""

    def __init__(self, world):
        from records.models import Record, RemoteId

        self.world = world
        self.rng = random.Random(11)
        tenant = world.tenant
        self.integration = world.main
        base = f"/t/{tenant.slug}/integrations/{world.main.pk}/references"
        self.list_path = f"{base}/orders/"
        self.health_path = f"/t/{tenant.slug}/integrations/{world.main.pk}/health/"
        self.tab_path = base
        orders = round(N * 0.35)
        self.page_size = 50
        self.deep_page = max(1, orders // self.page_size // 2)
        picks = [self.rng.randrange(orders) for _ in range(64)]
        from bench.load import remote_ids

        self.exact = [remote_ids("order", k)[0] for k in picks]
        # What people type: part of an order number or of an invoice ref.
        self.substrings = [str(5_001_000_000 + 7 * k)[3:9] for k in picks[:32]] + [
            f"Faktura {90_001 + k}"[2:10] for k in picks[32:]
        ]
        api_rows = list(
            RemoteId.objects.for_tenant(tenant)
            .filter(connection=world.api, record_type="article")
            .values_list("remote_id", flat=True)[:2000]
        )
        self.api_ids = api_rows or ["none"]
        self.rng.shuffle(self.api_ids)
        self.local_ids = list(
            Record.objects.for_tenant(tenant)
            .filter(record_type="order", id__in=[1 + round(N * 0.5) + k for k in picks])
            .values_list("local_id", flat=True)
        ) or ["0" * 32]
        since = datetime(2025, 6, 1, 12, tzinfo=UTC) - timedelta(days=45)
        self.since = [(since + timedelta(minutes=17 * i)).isoformat() for i in range(64)]
        self.run_id = secrets.token_hex(3)
        # "Next" from deep pages: the position of the last row of pages deep_page - k.
        from common.paging import row_position
        from references.filters import reference_rows
        from references.selectors import KEYSETS

        start = (self.deep_page - 7) * self.page_size - 1
        rows = list(reference_rows(world.main, "order")[start : self.deep_page * self.page_size])
        self.deep_positions = [
            row_position(
                rows[(self.deep_page - k) * self.page_size - 1 - start], KEYSETS["-modified"]
            )
            for k in range(8)
        ]

    def ops(self) -> list[Op]:
        p = self
        q = urlencode
        return [
            Op(
                "admin_list",
                "Django admin RemoteId changelist, page 1",
                "admin",
                lambda i: ADMIN_PATH,
            ),
            Op(
                "admin_exact",
                "Django admin, exact id (?q=)",
                "admin",
                lambda i: f"{ADMIN_PATH}?{q({'q': p.exact[i % 64]})}",
            ),
            Op(
                "admin_substring",
                "Django admin, substring (?q=)",
                "admin",
                lambda i: f"{ADMIN_PATH}?{q({'q': p.substrings[i % 64]})}",
            ),
            Op(
                "list_page1",
                "References tab, page 1",
                "app",
                lambda i: p.list_path,
                baseline="admin_list",
            ),
            Op(
                "list_deep",
                f"References tab, page {p.deep_page}",
                "app",
                lambda i: f"{p.list_path}?page={p.deep_page - i % 8}",
            ),
            Op(
                "list_deep_next",
                f"References tab, Next from page {p.deep_page}",
                "app",
                lambda i: (
                    f"{p.list_path}?"
                    + q({"page": p.deep_page + 1 - i % 8, "after": p.deep_positions[i % 8]})
                ),
            ),
            Op(
                "search_exact",
                "Exact-id search",
                "app",
                lambda i: f"{p.list_path}?{q({'q': p.exact[i % 64]})}",
                baseline="admin_exact",
            ),
            Op(
                "search_substring",
                "Substring search",
                "app",
                lambda i: f"{p.list_path}?{q({'q': p.substrings[i % 64]})}",
                baseline="admin_substring",
            ),
            Op("unlinked", "Unlinked filter", "app", lambda i: f"{p.list_path}?linked=unlinked"),
            Op(
                "record_page",
                "Record page",
                "app",
                lambda i: f"/t/{p.world.tenant.slug}/records/{p.local_ids[i % len(p.local_ids)]}/",
            ),
            Op("health_overview", "Health overview", "app", lambda i: p.health_path),
            Op(
                "health_lost",
                "Health: lost links, page 1",
                "app",
                lambda i: f"{p.health_path}orders/?finding=lost",
            ),
            Op(
                "health_duplicates",
                "Health: probable duplicates, page 1",
                "app",
                lambda i: f"{p.health_path}orders/?finding=duplicates",
            ),
            Op(
                "health_reused",
                "Health: reused ids, page 1",
                "app",
                lambda i: f"{p.health_path}orders/?finding=reused",
            ),
            Op(
                "api_by_remote_id",
                "API by-remote-id",
                "api",
                lambda i: (
                    "/api/v1/article/by-remote-id?" + q({"remoteId": p.api_ids[i % len(p.api_ids)]})
                ),
            ),
            Op(
                "api_delta",
                "API modifiedAtOrAfter, 100 per page",
                "api",
                lambda i: (
                    "/api/v1/order?" + q({"modifiedAtOrAfter": p.since[i % 64], "limit": 100})
                ),
            ),
        ]


def api_session(world) -> Session | None:
    """Basic auth with a fresh key for the Warehouse API connection (needs issue 5's command)."""
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    try:
        call_command("api_key", world.api.connection_id, stdout=out)
    except Exception as error:  # noqa: BLE001 - the API may not be built yet
        log(f"api: no key ({error.__class__.__name__}: {error}); API operations skipped")
        return None
    keys = re.findall(r"[A-Za-z0-9_\-]{32,}", out.getvalue())
    keys = [k for k in keys if k != world.api.connection_id]
    if not keys:
        log("api: could not read the key from `manage.py api_key`; API operations skipped")
        return None
    return Session(basic=(world.api.connection_id, keys[-1]))


# --- once-only operations ---------------------------------------------------------------------


def once_export(world, sessions, server) -> list[dict]:
    """CSV export of every tab (N rows in all) over HTTP, one after the other, watching the
    gunicorn workers' resident memory while the files stream."""
    session = sessions["app"]
    base = f"/t/{world.tenant.slug}/integrations/{world.main.pk}/references"
    rss_before = server.worker_rss_kb()
    peak = [rss_before]
    stop = threading.Event()

    def watch():
        while not stop.wait(0.2):
            peak[0] = max(peak[0], server.worker_rss_kb())

    watcher = threading.Thread(target=watch)
    watcher.start()
    lines = 0
    t0 = time.perf_counter()
    try:
        for entity in ("articles", "customers", "orders", "stock"):
            counted = [0]

            def sink(chunk, counted=counted):
                counted[0] += chunk.count(b"\n")

            status, _, _ = request(
                "GET", f"{base}/{entity}/export.csv", None, session.headers(), sink=sink
            )
            if status != 200:
                return [
                    {
                        "key": "export",
                        "label": "CSV export",
                        "status": "skipped",
                        "note": f"HTTP {status} for {base}/{entity}/export.csv",
                    }
                ]
            lines += counted[0] - 1  # the header line
    finally:
        stop.set()
        watcher.join()
    seconds = time.perf_counter() - t0
    return [
        {
            "key": "export",
            "label": f"CSV export ({lines:,} rows, 4 tabs)",
            "seconds": round(seconds, 2),
            "rows": lines,
            "worker_rss_kb_before": rss_before,
            "worker_rss_kb_peak": peak[0],
            "note": f"workers' RSS {rss_before // 1024} MB before, {peak[0] // 1024} MB at most",
        }
    ]


def vacuum() -> None:
    """Clean up after (and before) the bulk writes, as autovacuum would between real ones, so
    every run starts from the same state instead of from the last run's dead rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) records_record, records_remoteid, records_batchchange")


class JobWorker:
    """The job worker beside gunicorn, started as the README says (manage.py db_worker)."""

    def __init__(self):
        self.log_path = RESULTS / "worker.log.tmp"
        self.process = None

    def __enter__(self):
        command = [
            str(ROOT / ".venv" / "bin" / "python"),
            "manage.py",
            "db_worker",
            "--no-reload",
            "--no-startup-delay",
            "--interval",
            "0.1",
        ]
        with open(self.log_path, "w") as log_file:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=server_env(), stdout=log_file, stderr=log_file
            )
        log(f"job worker up (pid {self.process.pid})")
        return self

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)


def form_post(session: Session, path: str, fields: dict):
    """A browser's form POST: the CSRF token as a field, the page as Referer."""
    body = urlencode({**fields, "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")})
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Referer": path}
    return session.request("POST", path, body, headers)


def multipart_post(session: Session, path: str, name: str, filename: str, content: bytes):
    boundary = secrets.token_hex(16)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n'
        f"{session.cookies.get('csrftoken', '')}\r\n".encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
        + content
        + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Referer": path}
    return session.request("POST", path, b"".join(parts), headers)


def wait_for_job(after_id: int, timeout: float = 1800):
    """The first job created after `after_id`, once it is done or failed."""
    from records.models import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.filter(pk__gt=after_id).order_by("pk").first()
        if job is not None and not job.is_active:
            return job
        time.sleep(0.05)
    raise SystemExit(f"no job after {after_id} finished within {timeout:.0f} s")


def last_job_id() -> int:
    from records.models import Job

    return Job.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def once_delete_all_and_restore(world, session: Session, entity: str) -> list[dict]:
    """Delete all references of one tab and restore them through the real UI path: the form
    POSTs to gunicorn, the job worker applies them; timed from the click to the job done."""
    base = f"/t/{world.tenant.slug}/integrations/{world.main.pk}/references/{entity}/"
    session.request("GET", f"{base}delete-all/")
    before = last_job_id()
    t0 = time.perf_counter()
    status, _, _ = form_post(session, f"{base}delete-all/", {"confirm": entity})
    if status != 302:
        return [{"key": "delete_all", "label": "Delete all", "status": f"HTTP {status}"}]
    deleted_job = wait_for_job(before)
    deleted = time.perf_counter() - t0
    if deleted_job.state != "done":
        return [{"key": "delete_all", "label": "Delete all", "status": deleted_job.error}]
    rows = deleted_job.batch.row_count
    before = last_job_id()
    t0 = time.perf_counter()
    form_post(session, f"/t/{world.tenant.slug}/batches/{deleted_job.batch_id}/restore/", {})
    restore_job = wait_for_job(before)
    restore = time.perf_counter() - t0
    return [
        {
            "key": f"delete_all_{entity}",
            "label": f"Delete all {entity}, click to done ({rows:,} rows)",
            "seconds": round(deleted, 2),
            "rows": rows,
            "job_seconds": _job_seconds(deleted_job),
        },
        {
            "key": f"restore_{entity}",
            "label": f"Restore {entity}, click to done ({rows:,} rows)",
            "seconds": round(restore, 2),
            "rows": rows,
            "status": "ok" if restore_job.state == "done" else restore_job.error,
            "job_seconds": _job_seconds(restore_job),
        },
    ]


def _job_seconds(job) -> float | None:
    if job.started_at and job.finished_at:
        return round((job.finished_at - job.started_at).total_seconds(), 2)
    return None


def once_import(world, session: Session, rows: int = 100_000) -> list[dict]:
    """CSV import of `rows` customer references through the upload page: upload, the preview
    (the dry run), then Apply, which runs as a job; timed from the click to the job done.
    Then undone, to leave the data as it was."""
    from references.models import ImportUpload
    from references.services import restore_batch, unlinked_source_rows

    unlinked = list(
        unlinked_source_rows(world.main, "customer").values_list("remote_id", flat=True)[
            : rows // 10
        ]
    )
    lines = ["source_id,target_id,source_ref,target_ref"]
    lines += [f"{sid},IMP-C{i:07d},,Imported {i}" for i, sid in enumerate(unlinked)]
    for i in range(len(unlinked), rows):
        lines.append(f"IMP-{i:07d},IMP-T{i:07d},imported{i}@example.com,Imported {i}")
    content = ("\n".join(lines) + "\n").encode()
    base = f"/t/{world.tenant.slug}/integrations/{world.main.pk}/references/customers/import/"
    session.request("GET", base)
    status, headers, _ = multipart_post(session, base, "file", "bench.csv", content)
    if status != 302:
        return [{"key": "import", "label": "CSV import", "status": f"upload: HTTP {status}"}]
    preview = headers.get("Location", "")
    t0 = time.perf_counter()
    status, _, _ = session.request("GET", preview)
    dry = time.perf_counter() - t0
    upload = ImportUpload.objects.order_by("-pk").first()
    before = last_job_id()
    t0 = time.perf_counter()
    form_post(session, f"{base}apply/", {"upload": upload.token})
    job = wait_for_job(before)
    apply = time.perf_counter() - t0
    if job.state != "done":
        return [{"key": "import", "label": "CSV import", "status": job.error}]
    from records.audit import Actor

    restore_batch(job.batch, Actor("user", "bench"))  # put the data back as it was
    return [
        {
            "key": "import_dry_run",
            "label": f"CSV import preview page ({rows:,} rows)",
            "seconds": round(dry, 2),
            "rows": rows,
        },
        {
            "key": "import_apply",
            "label": f"CSV import apply, click to done ({rows:,} rows)",
            "seconds": round(apply, 2),
            "rows": rows,
            "job_seconds": _job_seconds(job),
        },
    ]


def scan_health(world) -> list[dict]:
    """What the health_scan job does for every entity type (duplicates and twins), timed:
    the Health pages of a large integration read its result."""
    from references import health

    log("health scan: duplicates and twins of every entity type")
    t0 = time.perf_counter()
    for record_type in world.main.synced_entity_types:
        health.scan(world.main, record_type)
    return [
        {
            "key": "health_scan",
            "label": "Health scan job, all entity types",
            "seconds": round(time.perf_counter() - t0, 2),
        }
    ]


def once_reconcile(world, session: Session, lines: int = 1_000_000) -> list[dict]:
    """Reconcile a `lines`-line Fortnox export of orders through the page: every Fortnox order
    id but the first 1,000 (stale), then unknown ids up to `lines`; compared as a job, timed
    from the click to the report."""
    from records.models import RemoteId
    from references.models import ReconcileUpload

    known = list(
        RemoteId.objects.for_tenant(world.tenant)
        .filter(connection=world.main.target, record_type="order")
        .order_by("pk")
        .values_list("remote_id", flat=True)
    )
    ids = known[1000:lines]
    ids += [f"NEW-{i:08d}" for i in range(lines - len(ids))]
    content = ("Id\n" + "\n".join(ids) + "\n").encode()
    base = f"/t/{world.tenant.slug}/integrations/{world.main.pk}/health/orders/reconcile/"
    session.request("GET", base)
    before = last_job_id()
    t0 = time.perf_counter()
    status, headers, _ = multipart_post(session, base, "file", "fortnox-orders.csv", content)
    if status != 302:
        return [{"key": "reconcile", "label": "Reconcile", "status": f"upload: HTTP {status}"}]
    job = wait_for_job(before)
    seconds = time.perf_counter() - t0
    upload = ReconcileUpload.objects.order_by("-pk").first()
    return [
        {
            "key": "reconcile_compare",
            "label": f"Reconcile a {lines:,}-line export, click to report",
            "seconds": round(seconds, 2),
            "rows": lines,
            "job_seconds": _job_seconds(job),
            "status": "ok" if job.state == "done" else job.error,
            "counts": upload.counts if upload else {},
        }
    ]


# --- report -----------------------------------------------------------------------------------


def previous_with_other_n() -> dict | None:
    files = sorted(RESULTS.glob("*.json"), reverse=True)
    for path in files:
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        # Only benchmark results carry "n" (load_faults.json in the same folder does not).
        if "n" in data and data["n"] != N:
            return data
    return None


def print_table(rows: list[dict], once: list[dict], tput: dict, other: dict | None) -> None:
    other_q = {}
    if other:
        other_q = {op["key"]: op.get("queries") for op in other.get("operations", [])}
    qhead = f"q/req @{other['n']:,}" if other else ""
    print()
    print(f"refdesk bench: N={N:,} references, {time.strftime('%Y-%m-%d %H:%M')}, {git_sha()}")
    print(f"{'operation':46} {'p50 ms':>8} {'p95 ms':>8} {'q/req':>6} {qhead:>14} {'vs admin':>9}")
    print("-" * 96)
    for row in rows:
        if row["status"] != "ok":
            print(f"{row['label'][:46]:46} {row['status']}: {row['note']}")
            continue
        ratio = f"{row['ratio_to_admin']}x" if "ratio_to_admin" in row else ""
        oq = other_q.get(row["key"])
        print(
            f"{row['label'][:46]:46} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
            f"{row['queries'] if row['queries'] is not None else '':>6} "
            f"{'' if oq is None else oq:>14} {ratio:>9}"
        )
    for item in once:
        if item.get("status", "ok") != "ok":
            print(f"{item['label'][:46]:46} {item['status']}: {item.get('note', '')}")
        else:
            print(
                f"{item['label'][:58]:58} {item['seconds']:>7.2f}s   (once)"
                + (f" job {item['job_seconds']} s" if item.get("job_seconds") else "")
                + f" {item.get('note', '')}"
            )
    if tput.get("status") == "ok":
        print(
            f"{'API by-remote-id throughput':46} {tput['requests_per_second']:>6} req/s "
            f"({tput['clients']} clients, {tput['requests']} requests)"
        )
    print(f"load average at the end: {os.getloadavg()}")


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    create_database()
    setup_django()
    from django.core.management import call_command

    from bench.load import APP_USER, SUPERUSER, ensure_data

    load_before = os.getloadavg()
    log(f"database {DB}: migrate")
    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)
    world = ensure_data(N, log)
    once: list[dict] = []
    if not ONLY or any(key.startswith("health") for key in ONLY):
        once += scan_health(world)
    plan = Plan(world)
    ops = plan.ops()
    if ONLY:
        ops = [op for op in ops if op.key in ONLY]
    results: list[Result] = []
    tput: dict = {"status": "skipped"}
    with Server() as server:
        sessions = {
            "app": Session().login(*APP_USER),
            "admin": Session().login(*SUPERUSER),
        }
        api = api_session(world)
        if api:
            sessions["api"] = api
        for op in ops:
            log(f"{op.key}: {op.label}")
            results.append(run_op(op, sessions))
        api_op = next((op for op in plan.ops() if op.key == "api_by_remote_id"), None)
        if (not ONLY or "api_throughput" in ONLY) and api_op:
            log("api_throughput: 4 concurrent clients")
            tput = throughput(api_op, sessions)
        with JobWorker():
            if not ONLY or "delete_all" in ONLY:
                for entity in DELETE_ALL_TABS:
                    log(f"delete_all + restore of {entity}: through the UI and the job worker")
                    vacuum()
                    once += once_delete_all_and_restore(world, sessions["app"], entity)
                    vacuum()
            if not ONLY or "reconcile" in ONLY:
                log("reconcile: a 1,000,000-line export, compared as a job")
                once += once_reconcile(world, sessions["app"])
            if not ONLY or "import" in ONLY:
                log("import: upload, preview, apply as a job")
                once += once_import(world, sessions["app"])
                vacuum()
        if not ONLY or "export" in ONLY:
            log("export: CSV of every tab")
            once += once_export(world, sessions, server)
        rss = server.worker_rss_kb()
    by_key = {r.key: r for r in results}
    rows = [r.as_dict(by_key) for r in results]
    other = previous_with_other_n()
    print_table(rows, once, tput, other)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}-{git_sha()}.json"
    out.write_text(
        json.dumps(
            {
                "n": N,
                "git_sha": git_sha(),
                "timestamp": stamp,
                "database": DB,
                "cpus": os.cpu_count(),
                "gunicorn_workers": int(os.environ.get("BENCH_WORKERS", "2")),
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
                "worker_rss_kb": rss,
                "operations": rows,
                "once": once,
                "api_throughput": tput,
            },
            indent=2,
        )
        + "\n"
    )
    log(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
