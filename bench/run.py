"""`make bench`: refdesk at BENCH_N references, over real HTTP, beside the Django admin.

    BENCH_N=1000000        references of the main integration (default 1,000,000)
    BENCH_DB=...           database name (default refdesk_bench, refdesk_bench_<N> for other N)
    BENCH_PG=postgres://postgres@127.0.0.1:5432   server to create it on; a Citus coordinator
                           (its `postgres` database lists workers) is benched as a cluster:
                           the database on every node, the app on `citus://`
    BENCH_PORT=8090        where gunicorn listens (127.0.0.1 only); the floor on PORT + 5
    BENCH_REQUESTS=300     timed requests per operation (after BENCH_WARMUP=20)
    BENCH_MAX_SECONDS=20   stop an operation's loop after this long (slow admin searches)
    BENCH_PAIR_SECONDS=60  the same for an interleaved group (admin, refdesk, floor in one loop)
    BENCH_GUNICORN_ARGS=   extra gunicorn arguments after `-c config/gunicorn.conf.py`
                           (experiments only: the results then say they are not production's)
    BENCH_COMPARE=sync:2,gthread:2x4,...   candidates of `BENCH_ONLY=gunicorn_compare`
    BENCH_ONLY=a,b         run only these operation keys (and the once-only ones named)
    BENCH_DELETE_ALL=articles   tabs whose delete-all + restore are timed (orders too at 3M)
    BENCH_UPLOAD_LINES=1000000  lines of the reconcile export and of the import_upload file

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
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
N = int(os.environ.get("BENCH_N", "1000000"))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")


def citus_workers(server: str) -> list[tuple[str, int]] | None:
    """The workers of a Citus coordinator at `server` (as its `postgres` database lists them,
    where the cluster was set up), or None for plain PostgreSQL (or a server not answering:
    create_database then says why)."""
    import psycopg

    url = "postgres://" + server.split("://", 1)[1]
    try:
        with psycopg.connect(f"{url}/postgres", autocommit=True, connect_timeout=10) as conn:
            if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone():
                return None
            return (
                conn.execute(
                    "SELECT nodename, nodeport FROM pg_dist_node "
                    "WHERE groupid <> 0 AND noderole = 'primary' ORDER BY nodeid"
                ).fetchall()
                or None
            )
    except psycopg.OperationalError:
        if server.startswith("citus://"):
            raise
        return None


# A Citus coordinator (BENCH_PG=postgres://... or citus://...): the bench database is made on
# every node (config/citus/creation.py) and the app, the loader and the job worker use the
# citus:// backend (its session settings).
CITUS_WORKERS = citus_workers(PG)
CITUS = CITUS_WORKERS is not None
if CITUS:
    PG = "postgres://" + PG.split("://", 1)[1]
DATABASE_KIND = f"citus (coordinator + {len(CITUS_WORKERS)} workers)" if CITUS else "postgresql"
_DB_STEM = "refdesk_bench_citus" if CITUS else "refdesk_bench"
DB = os.environ.get("BENCH_DB") or (_DB_STEM if N == 1_000_000 else f"{_DB_STEM}_{N}")
PORT = int(os.environ.get("BENCH_PORT", "8090"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "300"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "20"))
MAX_SECONDS = float(os.environ.get("BENCH_MAX_SECONDS", "20"))
PAIR_SECONDS = float(os.environ.get("BENCH_PAIR_SECONDS", "60"))
FLOOR_PORT = PORT + 5  # not 8091: make load (bench/load_faults.py) listens there
GUNICORN_CONF = ROOT / "config" / "gunicorn.conf.py"
GUNICORN_ARGS = os.environ.get("BENCH_GUNICORN_ARGS", "").split()
THROUGHPUT_CLIENTS = 8
BATCH_ITEMS = 500  # records per batch request (the API's limit)
# Records per second through the batch endpoints with THROUGHPUT_CLIENTS clients (issue 24).
BATCH_TARGETS = {"lookup": 20_000, "write": 5_000}
UPLOAD_LINES = int(os.environ.get("BENCH_UPLOAD_LINES", "1000000"))
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
        "DATABASE_URL": database_url(),
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("BENCH_SECRET_KEY", "bench-" + "x" * 50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_COOKIES": "0",  # plain HTTP on loopback
        "SECURE_HSTS_SECONDS": "0",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "ERROR",
    }


def database_url() -> str:
    """The app's DATABASE_URL: PostgreSQL's backend, or on a cluster the citus:// one."""
    if CITUS:
        return "citus://" + PG.split("://", 1)[1] + f"/{DB}"
    return f"{PG}/{DB}"


def create_database() -> None:
    import psycopg

    if CITUS:
        import dj_database_url

        from config.citus.creation import create_database as create_on_cluster

        nodes = ", ".join(f"{host}:{port}" for host, port in CITUS_WORKERS)
        log(f"Citus: database {DB} on the coordinator and the workers ({nodes})")
        create_on_cluster(dj_database_url.parse(f"{PG}/{DB}"), DB)
        return
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


def gunicorn_settings() -> dict:
    """The shared gunicorn config (config/gunicorn.conf.py) as gunicorn reads it."""
    import runpy

    values = runpy.run_path(str(GUNICORN_CONF))
    return {
        key: values[key]
        for key in ("workers", "worker_class", "threads", "timeout", "keepalive")
        if key in values
    }


class Server:
    """gunicorn as the README's production section starts it: `-c config/gunicorn.conf.py`
    (worker class, count, threads, timeout from that one file), DEBUG off, on 127.0.0.1.
    `extra` are arguments after the config file (they override it): BENCH_GUNICORN_ARGS and
    the candidates of gunicorn_compare only."""

    def __init__(
        self,
        port: int = PORT,
        settings: str = "bench.settings",
        extra: list[str] | None = None,
        name: str = "gunicorn",
    ):
        self.port = port
        self.settings = settings
        self.extra = GUNICORN_ARGS if extra is None else extra
        self.name = name
        self.log_path = RESULTS / f"{name}.log.tmp"
        self.process = None

    @property
    def command(self) -> list[str]:
        return [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "-c",
            str(GUNICORN_CONF.relative_to(ROOT)),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--error-logfile",
            str(self.log_path),
            *self.extra,
            "config.wsgi:application",
        ]

    def __enter__(self):
        env = {**server_env(), "DJANGO_SETTINGS_MODULE": self.settings}
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/favicon.ico", headers={"Host": "127.0.0.1"})
                conn.getresponse().read()
                conn.close()
                log(f"{self.name} up on 127.0.0.1:{self.port} (pid {self.process.pid})")
                return self
            except OSError:
                time.sleep(0.3)
        raise SystemExit(f"{self.name} did not start; see {self.log_path}")

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)

    def worker_pids(self) -> list[int]:
        try:
            path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def worker_rss_kb(self) -> int:
        """Summed resident memory of the worker processes."""
        total = 0
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total


# --- HTTP -------------------------------------------------------------------------------------


class Session:
    """Cookies and credentials of one client, on one persistent HTTP/1.1 connection (keep-alive,
    as a browser or an API client keeps it). When the server closes after a response (gunicorn's
    sync workers always do) the next request opens a new connection."""

    def __init__(self, basic: tuple[str, str] | None = None, port: int = PORT):
        self.cookies: dict[str, str] = {}
        self.basic = basic
        self.port = port
        self.conn: http.client.HTTPConnection | None = None
        self.connections = 0  # opened, to tell keep-alive from connection-per-request

    def on(self, port: int) -> Session:
        """The same client (cookies, credentials) talking to another server."""
        other = Session(self.basic, port)
        other.cookies = dict(self.cookies)
        return other

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

    def send(self, method, path, body=None, headers=None, sink=None):
        for attempt in (0, 1):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                self.connections += 1
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                if sink is None:
                    data = response.read()
                else:
                    data = b""
                    while chunk := response.read(1 << 16):
                        sink(chunk)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt or not reused:
                    raise
                continue  # the server closed an idle keep-alive connection: once more, anew
            if response.will_close:
                self.close()
            return response.status, response.getheaders(), data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None, sink=None):
        status, response_headers, data = self.send(
            method, path, body, self.headers(headers), sink=sink
        )
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


# --- operations -------------------------------------------------------------------------------


@dataclass
class Op:
    key: str
    label: str
    session: str  # "app", "admin", "api" or "floor"
    path: Callable[[int], str]
    method: str = "GET"
    body: Callable[[int], tuple[str, str]] | None = None  # (content type, body)
    expect: tuple[int, ...] = (200,)
    headers: dict = field(default_factory=dict)
    requests: int = REQUESTS


@dataclass
class Group:
    """Operations compared with each other, timed in one interleaved loop: each iteration sends
    one request of each (the same search term to all), so whatever else runs on the machine
    meets all of them alike. Ratios are taken per iteration (admin / refdesk, refdesk / floor)
    and summarised by their median and 10th-90th percentiles."""

    key: str
    app: Op
    admin: Op | None = None
    floor: Op | None = None
    admin_note: str = ""  # what the admin side is, when it is not the same operation

    @property
    def members(self) -> list[tuple[str, Op]]:
        return [(role, op) for role, op in (("admin", self.admin), ("app", self.app),
                                             ("floor", self.floor)) if op is not None]  # fmt: skip


# Targets of issue "Fast at a million": refdesk at least `admin` times faster than the Django
# admin (median of per-pair ratios), at most `floor` times the floor's p50, p50 at most `p50_ms`.
TARGETS = {
    "list_page1": {"admin": 20, "floor": 5},
    "search_exact": {"admin": 20, "floor": 5},
    "search_substring": {"admin": 20, "floor": 5},
    "unlinked": {"admin": 20, "floor": 5},
    "record_page": {"floor": 5},
    "api_by_remote_id": {"p50_ms": 3},
}
THROUGHPUT_TARGET = 1000  # req/s, API by-remote-id, 8 keep-alive clients
# Once-only operations, seconds from the click to done (issue 20), by key: at 1M, and the
# orders tab (a million rows) at 3M.
ONCE_TARGETS = (
    {"delete_all_orders": 15, "restore_orders": 25}
    if N >= 3_000_000
    else {"delete_all_articles": 3, "restore_articles": 6, "import_apply": 8, "health_fix": 3}
)
# Single operations with a p50 target in ms (issue 20).
P50_TARGETS = {"unlinked": 50, "list_deep": 100}


@dataclass
class Result:
    key: str
    label: str
    status: str = "ok"
    samples: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    note: str = ""
    compared: dict = field(default_factory=dict)  # interleaved ratios (the refdesk side)
    connections: int = 0

    def as_dict(self) -> dict:
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
                connections=self.connections,
            )
        out.update(self.compared)
        target = TARGETS.get(self.key)
        if target and self.samples:
            out["target"] = target
            out["misses"] = misses(out, target)
        return out


def misses(row: dict, target: dict) -> list[str]:
    """What of the target this row misses, and by how much."""
    out = []
    if "admin" in target and "admin_ratio" in row:
        got = row["admin_ratio"]["median"]
        if got < target["admin"]:
            out.append(
                f"vs admin {got}x < {target['admin']}x (short by {target['admin'] / got:.1f}x)"
            )
    if "floor" in target and "floor_multiple" in row:
        got = row["floor_multiple"]["of_p50s"]
        if got > target["floor"]:
            out.append(f"floor {got}x > {target['floor']}x (over by {got / target['floor']:.1f}x)")
    if "p50_ms" in target and row["p50_ms"] > target["p50_ms"]:
        out.append(
            f"p50 {row['p50_ms']} ms > {target['p50_ms']} ms "
            f"(over by {row['p50_ms'] - target['p50_ms']:.1f} ms)"
        )
    return out


def percentile(ordered: list[float], pct: float) -> float:
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio_stats(numerators: list[float], denominators: list[float]) -> dict:
    """Median and 10th/25th/75th/90th percentiles of the per-iteration ratios."""
    ratios = sorted(a / b for a, b in zip(numerators, denominators, strict=True))
    return {
        "median": round(percentile(ratios, 50), 1),
        "p10": round(percentile(ratios, 10), 1),
        "p25": round(percentile(ratios, 25), 1),
        "p75": round(percentile(ratios, 75), 1),
        "p90": round(percentile(ratios, 90), 1),
        "of_p50s": round(
            percentile(sorted(numerators), 50) / percentile(sorted(denominators), 50), 1
        ),
        "pairs": len(ratios),
    }


def timed(session: Session, op: Op, i: int):
    body, headers = None, dict(op.headers)
    if op.body:
        content_type, body = op.body(i)
        headers["Content-Type"] = content_type
    t0 = time.perf_counter()
    status, response_headers, data = session.request(op.method, op.path(i), body, headers)
    return status, response_headers, data, (time.perf_counter() - t0) * 1000


def run_op(op: Op, sessions: dict[str, Session]) -> Result:
    result = Result(op.key, op.label)
    session = sessions.get(op.session)
    if session is None:
        result.status, result.note = "skipped", f"no {op.session} session (not built yet?)"
        return result
    connections = session.connections
    started = time.monotonic()
    warmup = WARMUP
    for i in range(WARMUP + op.requests):
        if i < warmup and time.monotonic() - started > MAX_SECONDS / 4:
            warmup = i  # slow operation: a few warm-up requests are enough
            started = time.monotonic()
        status, response_headers, data, elapsed = timed(session, op, i)
        if status not in op.expect:
            result.status = "skipped" if status == 404 and i == 0 else "error"
            result.note = f"HTTP {status} for {op.method} {op.path(i)}"
            if result.status == "error":
                log(f"{op.key}: {result.note}: {data[:300]!r}")
            return result
        if i == warmup - 1:
            started = time.monotonic()
            connections = session.connections
        if i >= warmup:
            result.samples.append(elapsed)
            count = response_headers.get("X-Bench-Queries")
            if count is not None:
                result.queries.append(int(count))
            if time.monotonic() - started > MAX_SECONDS and len(result.samples) >= 10:
                result.note = f"stopped after {MAX_SECONDS:.0f} s"
                break
    result.connections = session.connections - connections
    return result


def run_group(group: Group, sessions: dict[str, Session]) -> list[Result]:
    """admin, refdesk, floor, in one loop; the order rotates every iteration so that none of
    them always goes first (and warms the cache for the others) or always last."""
    members = group.members
    results = {role: Result(op.key, op.label) for role, op in members}
    missing = [op.session for _, op in members if op.session not in sessions]
    if missing:
        return _all_marked(results, "skipped", f"no {', '.join(missing)} session")
    started = time.monotonic()
    warmup = WARMUP
    for i in range(WARMUP + group.app.requests):
        if i < warmup and time.monotonic() - started > PAIR_SECONDS / 4:
            warmup = i
            started = time.monotonic()
        error = _one_round(members, sessions, results, i, timing=i >= warmup)
        if error:
            return _all_marked(results, "error", error)
        if i == warmup - 1:
            started = time.monotonic()
        if i >= warmup and time.monotonic() - started > PAIR_SECONDS and i - warmup >= 29:
            for result in results.values():
                result.note = f"stopped after {PAIR_SECONDS:.0f} s"
            break
    _compare(group, results)
    return list(results.values())


def _all_marked(results: dict, status: str, note: str) -> list[Result]:
    for result in results.values():
        result.status, result.note = status, note
    return list(results.values())


def _one_round(members, sessions, results, i: int, *, timing: bool) -> str:
    """One request of each member, rotated by `i`; the error, if one answered wrongly."""
    shift = i % len(members)
    for role, op in members[shift:] + members[:shift]:
        status, response_headers, data, elapsed = timed(sessions[op.session], op, i)
        if status not in op.expect:
            note = f"HTTP {status} for {op.method} {op.path(i)}"
            log(f"{op.key}: {note}: {data[:300]!r}")
            return note
        if timing:
            results[role].samples.append(elapsed)
            count = response_headers.get("X-Bench-Queries")
            if count is not None:
                results[role].queries.append(int(count))
    return ""


def _compare(group: Group, results: dict) -> None:
    app = results["app"]
    if "admin" in results:
        app.compared["admin_ratio"] = ratio_stats(results["admin"].samples, app.samples)
        app.compared["admin_key"] = group.admin.key
        if group.admin_note:
            app.compared["admin_note"] = group.admin_note
    if "floor" in results:
        app.compared["floor_multiple"] = ratio_stats(app.samples, results["floor"].samples)
        app.compared["floor_key"] = group.floor.key


# --- CPU accounting ---------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid) -> float:
    """CPU seconds (user + system) of one process so far, 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_snapshot(server: Server | None) -> dict:
    """Machine busy/total CPU seconds, and per process those of gunicorn's workers and of the
    PostgreSQL backends of the bench database (others may use the same server)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    postgres = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if title.startswith("postgres: ") and f" {DB} " in title:
                postgres[entry.name] = _proc_cpu(entry.name)
    return {
        "total": sum(values[:8]) / CLOCK_TICKS,
        "busy": (sum(values[:8]) - idle) / CLOCK_TICKS,
        "gunicorn": {pid: _proc_cpu(pid) for pid in (server.worker_pids() if server else [])},
        "postgres": postgres,
    }


def cpu_used(before: dict, after: dict, name: str) -> float:
    """CPU seconds the processes of `after[name]` used since `before` (new ones from zero)."""
    return sum(cpu - before[name].get(pid, 0.0) for pid, cpu in after[name].items())


# --- throughput -------------------------------------------------------------------------------


def _throughput_client(port, requests, headers, start_at, end_at, pipe) -> None:
    """One client process: one persistent connection, requests back to back until end_at.

    A request is a path (GET) or (method, path, content type, body); `__N__` in a body becomes
    a number of its own per request, so repeated bodies still change what they write."""
    conn = None
    opened = 0
    sent = 0

    def one(request) -> int:
        nonlocal conn, opened, sent
        method, path, body, extra = "GET", request, None, {}
        if isinstance(request, tuple):
            method, path, content_type, body = request
            sent += 1
            body = body.replace(b"__N__", f"{os.getpid()}-{sent}".encode())
            extra = {"Content-Type": content_type}
        for attempt in (0, 1):
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                opened += 1
            try:
                conn.request(method, path, body=body, headers={**headers, **extra})
                response = conn.getresponse()
                response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = None
                if attempt or not reused:
                    return 0
                continue
            if response.will_close:
                conn.close()
                conn = None
            return response.status
        return 0

    i = 0
    while time.monotonic() < start_at:  # warm-up until every client is running
        one(requests[i % len(requests)])
        i += 1
    cpu0, opened0 = os.times(), opened
    latencies, errors = [], 0
    while time.monotonic() < end_at:
        t0 = time.perf_counter()
        status = one(requests[i % len(requests)])
        latencies.append((time.perf_counter() - t0) * 1000)
        errors += status != 200
        i += 1
    cpu1 = os.times()
    pipe.send(
        {
            "latencies": latencies,
            "errors": errors,
            "cpu": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
            "connections": opened - opened0,
        }
    )
    pipe.close()


def _rotated(requests: list, k: int) -> list:
    """Client k's order of the requests: each client starts elsewhere (and, for batches
    whose bodies cycle through slices of records, on a slice of its own)."""
    offset = (k * len(requests)) // THROUGHPUT_CLIENTS + (
        k if requests and isinstance(requests[0], tuple) else 0
    )
    offset %= max(1, len(requests))
    return requests[offset:] + requests[:offset]


def throughput(
    op: Op, session: Session, server: Server | None, *, port: int = PORT, seconds: float = 8
) -> dict:
    """Requests per second with THROUGHPUT_CLIENTS concurrent keep-alive clients, each its own
    process (threads of one process would share one GIL), on the same 2 cores as gunicorn and
    PostgreSQL: their CPU share is measured and reported beside the rate."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    if op.body is None:
        paths = [op.path(i) for i in range(4000)]
    else:  # batch bodies are large: fewer distinct ones (each still writes anew: `__N__`)
        bodies = [op.body(i) for i in range(64)]
        paths = [
            (op.method, op.path(i), content_type, body.encode())
            for i, (content_type, body) in enumerate(bodies)
        ]
    headers = session.headers()
    start_at = time.monotonic() + 1.5
    end_at = start_at + seconds
    clients = []
    for k in range(THROUGHPUT_CLIENTS):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_throughput_client,
            args=(port, _rotated(paths, k), headers, start_at, end_at, send),
        )
        process.start()
        clients.append((process, receive))
    while time.monotonic() < start_at:
        time.sleep(0.01)
    before = cpu_snapshot(server)
    while time.monotonic() < end_at:
        time.sleep(0.01)
    after = cpu_snapshot(server)
    reports = []
    for process, receive in clients:
        reports.append(receive.recv())
        process.join()
    latencies = sorted(x for report in reports for x in report["latencies"])
    machine = after["total"] - before["total"]  # CPU seconds the machine had (all cores)
    client_cpu = sum(report["cpu"] for report in reports)

    def share(cpu: float) -> float:
        return round(100 * cpu / machine, 1) if machine else 0.0

    return {
        "status": "ok" if not any(r["errors"] for r in reports) else "error",
        "clients": THROUGHPUT_CLIENTS,
        "keep_alive": True,
        "seconds": seconds,
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / seconds),
        "p50_ms": round(percentile(latencies, 50), 2) if latencies else None,
        "p95_ms": round(percentile(latencies, 95), 2) if latencies else None,
        "errors": sum(r["errors"] for r in reports),
        "connections_opened": sum(r["connections"] for r in reports),
        # Shares of the machine's CPU time over the window (100% = both cores busy).
        "cpu_share_pct": {
            "client": share(client_cpu),
            "gunicorn": share(cpu_used(before, after, "gunicorn")),
            "postgres": share(cpu_used(before, after, "postgres")),
            "machine_busy": share(after["busy"] - before["busy"]),
        },
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
        self.floor_path = f"/floor/{world.main.pk}/order/"
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
        # (remoteId, localId) of the API connection's articles: what batch writes replace.
        self.api_pairs = list(
            RemoteId.objects.for_tenant(tenant)
            .filter(connection=world.api, record_type="article")
            .order_by("record_id")
            .values_list("remote_id", "record__local_id")[:4000]
        )
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
        from references.queries import KEYSETS

        start = (self.deep_page - 7) * self.page_size - 1
        rows = list(reference_rows(world.main, "order")[start : self.deep_page * self.page_size])
        self.deep_positions = [
            row_position(
                rows[(self.deep_page - k) * self.page_size - 1 - start], KEYSETS["-modified"]
            )
            for k in range(8)
        ]

    def ops(self) -> list[Op]:
        """Operations timed on their own (nothing to compare them with)."""
        p = self
        q = urlencode
        return [
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
            self.api_op(),
            Op(
                "api_delta",
                "API modifiedAtOrAfter, 100 per page",
                "api",
                lambda i: (
                    "/api/v1/order?" + q({"modifiedAtOrAfter": p.since[i % 64], "limit": 100})
                ),
            ),
        ]

    def api_op(self) -> Op:
        return Op(
            "api_by_remote_id",
            "API by-remote-id (1 keep-alive client)",
            "api",
            lambda i: (
                "/api/v1/article/by-remote-id?"
                + urlencode({"remoteId": self.api_ids[i % len(self.api_ids)]})
            ),
        )

    def api_lookup_op(self) -> Op:
        """POST /lookup of BATCH_ITEMS remote ids (another slice of them each request)."""
        ids = self.api_ids

        def body(i: int) -> tuple[str, str]:
            start = (i * BATCH_ITEMS) % max(1, len(ids))
            chosen = (ids[start:] + ids[:start])[:BATCH_ITEMS]
            return "application/json", json.dumps({"remoteIds": chosen})

        return Op("api_lookup", f"API lookup of {BATCH_ITEMS} remote ids", "api",
                  lambda i: "/api/v1/article/lookup", method="POST", body=body)  # fmt: skip

    def api_batch_write_op(self) -> Op:
        """POST /batch replacing BATCH_ITEMS articles' data (their ids as they are): each
        request writes every record anew (`__N__`: a number per request)."""
        pairs = self.api_pairs

        def body(i: int) -> tuple[str, str]:
            start = (i * BATCH_ITEMS) % max(1, len(pairs))
            chosen = (pairs[start:] + pairs[:start])[:BATCH_ITEMS]
            items = [
                {"localId": local_id, "remoteId": remote_id, "data": {"bench": "__N__"},
                 "customData": {}}
                for remote_id, local_id in chosen
            ]  # fmt: skip
            return "application/json", json.dumps({"items": items})

        return Op("api_batch_write", f"API batch replace of {BATCH_ITEMS} records", "api",
                  lambda i: "/api/v1/article/batch", method="POST", body=body)  # fmt: skip

    def groups(self) -> list[Group]:
        """Operations compared in one interleaved loop: refdesk beside the Django admin and the
        floor (bench/floor.py: the same rows query, a minimal template, no middleware)."""
        p = self
        q = urlencode
        admin_list = Op(
            "admin_list", "Django admin RemoteId changelist, page 1", "admin", lambda i: ADMIN_PATH
        )
        return [
            Group(
                "page1",
                app=Op("list_page1", "References tab, page 1", "app", lambda i: p.list_path),
                admin=admin_list,
                floor=Op("floor_page1", "Floor: page 1", "floor", lambda i: p.floor_path),
            ),
            Group(
                "exact",
                app=Op(
                    "search_exact",
                    "Exact-id search",
                    "app",
                    lambda i: f"{p.list_path}?{q({'q': p.exact[i % 64]})}",
                ),
                admin=Op(
                    "admin_exact",
                    "Django admin, exact id (?q=)",
                    "admin",
                    lambda i: f"{ADMIN_PATH}?{q({'q': p.exact[i % 64]})}",
                ),
                floor=Op(
                    "floor_exact",
                    "Floor: exact-id search",
                    "floor",
                    lambda i: f"{p.floor_path}?{q({'q': p.exact[i % 64]})}",
                ),
            ),
            Group(
                "substring",
                app=Op(
                    "search_substring",
                    "Substring search",
                    "app",
                    lambda i: f"{p.list_path}?{q({'q': p.substrings[i % 64]})}",
                ),
                admin=Op(
                    "admin_substring",
                    "Django admin, substring (?q=)",
                    "admin",
                    lambda i: f"{ADMIN_PATH}?{q({'q': p.substrings[i % 64]})}",
                ),
                floor=Op(
                    "floor_substring",
                    "Floor: substring search",
                    "floor",
                    lambda i: f"{p.floor_path}?{q({'q': p.substrings[i % 64]})}",
                ),
            ),
            Group(
                "unlinked",
                app=Op(
                    "unlinked", "Unlinked filter", "app", lambda i: f"{p.list_path}?linked=unlinked"
                ),
                # RemoteIdAdmin has no linked/unlinked filter (list_filter: record type and
                # connection): the comparison is with its page 1.
                admin=Op(
                    "admin_list_unlinked",
                    "Django admin changelist, page 1 (beside unlinked)",
                    "admin",
                    lambda i: ADMIN_PATH,
                ),
                floor=Op(
                    "floor_unlinked",
                    "Floor: unlinked filter",
                    "floor",
                    lambda i: f"{p.floor_path}?linked=unlinked",
                ),
                admin_note="admin page 1: the admin has no unlinked filter",
            ),
            Group(
                "record",
                app=Op(
                    "record_page",
                    "Record page",
                    "app",
                    lambda i: (
                        f"/t/{p.world.tenant.slug}/records/{p.local_ids[i % len(p.local_ids)]}/"
                    ),
                ),
                floor=Op(
                    "floor_record",
                    "Floor: record page",
                    "floor",
                    lambda i: (
                        f"/floor/{p.world.tenant.pk}/records/{p.local_ids[i % len(p.local_ids)]}/"
                    ),
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

            status, _, _ = session.request("GET", f"{base}/{entity}/export.csv", sink=sink)
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
    upload = ImportUpload.objects.order_by("-pk").first()
    if upload.job_id:  # checked (planned) by a job when large: wait for its preview
        wait_for_job(upload.job_id - 1)
    t0 = time.perf_counter()
    status, _, _ = session.request("GET", preview)
    dry = time.perf_counter() - t0
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


class PeakRss:
    """The highest resident memory each of some processes reached while it ran, sampled
    every 0.1 s from /proc (a process's VmHWM would also count what came before)."""

    def __init__(self, pids: Callable[[], list[int]]):
        self.pids = pids
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _watch(self):
        while not self._stop.wait(0.1):
            self._sample()

    def _sample(self):
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    self.peak[pid] = max(self.peak.get(pid, 0), int(line.split()[1]))

    @property
    def highest_mb(self) -> int:
        return max(self.peak.values(), default=0) // 1024


def once_import_upload(world, session, server, worker, lines: int = 1_000_000) -> list[dict]:
    """Upload a `lines`-line import file (~18 MB, under the 20 MB limit) and wait for its
    preview: the upload request (read and COPY), then the check (plan) job, then the preview
    page, with the peak RSS of each gunicorn worker and of the job worker. Not applied (the
    import step times an apply); the upload is deleted afterwards."""
    from references.models import ImportUpload

    content = "source_id,target_id\n" + "".join(f"U{i:07d},V{i:07d}\n" for i in range(lines))
    base = f"/t/{world.tenant.slug}/integrations/{world.main.pk}/references/customers/import/"
    session.request("GET", base)
    with PeakRss(server.worker_pids) as web, PeakRss(lambda: [worker.process.pid]) as job:
        t0 = time.perf_counter()
        status, headers, _ = multipart_post(session, base, "file", "big.csv", content.encode())
        request_seconds = time.perf_counter() - t0
        upload = ImportUpload.objects.order_by("-pk").first()
        if status != 302 or upload is None:
            return [{"key": "import_upload", "label": "Import upload", "status": f"HTTP {status}"}]
        checked = wait_for_job(upload.job_id - 1) if upload.job_id else None
        plan_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        page_status, _, _ = session.request("GET", headers.get("Location", ""))
        preview_seconds = time.perf_counter() - t1
    upload.refresh_from_db()
    counts = upload.counts
    upload.delete()
    return [
        {
            "key": "import_upload",
            "label": f"Import upload + check of a {lines:,}-line file ({len(content) >> 20} MB)",
            "seconds": round(plan_seconds, 2),
            "request_seconds": round(request_seconds, 2),
            "preview_seconds": round(preview_seconds, 2),
            "job_seconds": _job_seconds(checked) if checked else None,
            "web_worker_rss_mb_peak": web.highest_mb,
            "job_worker_rss_mb_peak": job.highest_mb,
            "counts": counts,
            "status": "ok"
            if page_status == 200 and (checked is None or checked.state == "done")
            else (checked.error if checked else f"preview HTTP {page_status}"),
            "note": f"upload request {request_seconds:.1f} s, preview page "
            f"{preview_seconds:.2f} s; peak RSS web worker {web.highest_mb} MB, "
            f"job worker {job.highest_mb} MB",
        }
    ]


def once_health_fix(world, session: Session, rows: int = 10_000) -> list[dict]:
    """The Health fix "put back the old link" for `rows` lost stock links, through the page:
    the links are lost first by one change set (as a selection delete would), then the fix is
    confirmed for all of them, run as a job; timed from the click to the job done. Both are
    undone afterwards, to leave the data as it was."""
    from records import changes
    from records.audit import Actor
    from records.models import AuditEntry, Batch
    from references.queries import base_reference_rows
    from references.services import reference_change_set, restore_batch

    actor = Actor("user", "bench")
    record_ids = list(
        base_reference_rows(world.main, "stock")
        .filter(target_remote_id__isnull=False)
        .order_by("record_id")
        .values_list("record_id", flat=True)[:rows]
    )
    lost = changes.apply(
        reference_change_set(
            world.main,
            "stock",
            actor,
            Batch.Kind.DELETE,
            [changes.Change(changes.Action.UNLINK, record_id=pk) for pk in record_ids],
            audit_action=AuditEntry.Action.DELETE,
        )
    ).batch
    url = f"/t/{world.tenant.slug}/integrations/{world.main.pk}/health/stock/fix/"
    session.request("GET", f"/t/{world.tenant.slug}/integrations/{world.main.pk}/health/stock/")
    before = last_job_id()
    t0 = time.perf_counter()
    status, _, _ = form_post(
        session, url, {"finding": "lost", "action": "relink", "all": "1", "confirm": "1"}
    )
    if status != 302:
        restore_batch(lost, actor)
        return [{"key": "health_fix", "label": "Health fix", "status": f"HTTP {status}"}]
    job = wait_for_job(before)
    seconds = time.perf_counter() - t0
    if job.state == "done" and job.batch_id:
        restore_batch(job.batch, actor)
    restore_batch(lost, actor)
    return [
        {
            "key": "health_fix",
            "label": f"Health fix: put back {rows:,} lost links, click to done",
            "seconds": round(seconds, 2),
            "rows": rows,
            "job_seconds": _job_seconds(job),
            "status": "ok" if job.state == "done" else job.error,
        }
    ]


def scan_health(world) -> list[dict]:
    """What the health_scan job does for every entity type (duplicates and twins), timed:
    the Health pages of a large integration read its result."""
    from references.findings import findings_of, scans

    log("health scan: duplicates and twins of every entity type")
    t0 = time.perf_counter()
    for record_type in world.main.synced_entity_types:
        scans.scan([f for f in findings_of(world.main, record_type) if f.scanned])
    return [
        {
            "key": "health_scan",
            "label": "Health scan job, all entity types",
            "seconds": round(time.perf_counter() - t0, 2),
        }
    ]


def once_reconcile(world, session, server, worker, lines: int = 1_000_000) -> list[dict]:
    """Reconcile a `lines`-line Fortnox export of orders through the page: every Fortnox order
    id but the first 1,000 (stale), then unknown ids up to `lines`; compared as a job, timed
    from the click to the report, with the upload request's time and the peak RSS of each
    gunicorn worker and of the job worker."""
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
    with PeakRss(server.worker_pids) as web, PeakRss(lambda: [worker.process.pid]) as worked:
        t0 = time.perf_counter()
        status, headers, _ = multipart_post(session, base, "file", "fortnox-orders.csv", content)
        request_seconds = time.perf_counter() - t0
        if status != 302:
            return [{"key": "reconcile", "label": "Reconcile", "status": f"upload: HTTP {status}"}]
        job = wait_for_job(before)
        seconds = time.perf_counter() - t0
    upload = ReconcileUpload.objects.order_by("-pk").first()
    return [
        {
            "key": "reconcile_compare",
            "label": f"Reconcile a {lines:,}-line export ({len(content) >> 20} MB), "
            "click to report",
            "seconds": round(seconds, 2),
            "rows": lines,
            "request_seconds": round(request_seconds, 2),
            "job_seconds": _job_seconds(job),
            "web_worker_rss_mb_peak": web.highest_mb,
            "job_worker_rss_mb_peak": worked.highest_mb,
            "status": "ok" if job.state == "done" else job.error,
            "counts": upload.counts if upload else {},
            "note": f"upload request {request_seconds:.1f} s; peak RSS web worker "
            f"{web.highest_mb} MB, job worker {worked.highest_mb} MB",
        }
    ]


def throughput_rounds(
    op: Op, session: Session, server: Server, *, rounds: int = 3, seconds: float = 5
) -> dict:
    """THROUGHPUT_CLIENTS keep-alive clients for `rounds` windows; the round with the median
    rate is reported, every round's rate beside it."""
    runs = [
        throughput(op, session.on(server.port), server, port=server.port, seconds=seconds)
        for _ in range(rounds)
    ]
    runs.sort(key=lambda run: run["requests_per_second"])
    median = dict(runs[len(runs) // 2])
    median["rounds"] = [run["requests_per_second"] for run in runs]
    median["status"] = "ok" if all(run["status"] == "ok" for run in runs) else "error"
    return median


def api_batches(plan: Plan, api: Session, server: Server) -> dict:
    """Records per second through the batch endpoints, with THROUGHPUT_CLIENTS clients."""
    out = {}
    for key, op in (("lookup", plan.api_lookup_op()), ("write", plan.api_batch_write_op())):
        run = throughput_rounds(op, api, server)
        run["records_per_second"] = run["requests_per_second"] * BATCH_ITEMS
        out[key] = run
        log(f"  {key}: {run['records_per_second']:,} records/s (p50 {run['p50_ms']} ms)")
    return out


def candidate_args(spec: str) -> list[str]:
    """ "sync:2" or "gthread:2x4" (worker class : workers [x threads]) as gunicorn arguments."""
    worker_class, _, size = spec.partition(":")
    workers, _, threads = size.partition("x")
    return [
        "--worker-class",
        worker_class,
        "--workers",
        workers or "2",
        "--threads",
        threads or "1",
    ]


def gunicorn_compare(plan: Plan, sessions: dict[str, Session]) -> dict:
    """Worker classes and counts side by side: each candidate is a gunicorn of its own (same
    config file, its arguments after it) on its own port, all up at once. Page 1 and the API
    by-remote-id (one keep-alive client) are timed interleaved across the candidates; then the
    8-client throughput, candidate after candidate, in rounds (A B C, A B C, ...) so that a
    change in the machine's load meets every candidate."""
    specs = os.environ.get("BENCH_COMPARE", "sync:2,sync:3,gthread:2x4,gthread:3x4").split(",")
    out: dict = {"candidates": specs}
    with ExitStack() as stack:
        servers = {
            spec: stack.enter_context(
                Server(PORT + 10 + k, extra=candidate_args(spec), name=f"gunicorn-{spec}")
            )
            for k, spec in enumerate(specs)
        }
        page1 = next(g for g in plan.groups() if g.key == "page1").app
        api = plan.api_op()
        for op in (page1, api):
            per_spec = {
                spec: sessions[op.session].on(server.port) for spec, server in servers.items()
            }
            samples: dict[str, list[float]] = {spec: [] for spec in specs}
            started = time.monotonic()
            for i in range(WARMUP + REQUESTS):
                order = specs[i % len(specs) :] + specs[: i % len(specs)]
                for spec in order:
                    status, _, _, elapsed = timed(per_spec[spec], op, i)
                    if status != 200:
                        raise SystemExit(f"gunicorn_compare {spec} {op.key}: HTTP {status}")
                    if i >= WARMUP:
                        samples[spec].append(elapsed)
                if i >= WARMUP + 29 and time.monotonic() - started > PAIR_SECONDS / 2:
                    break
            first = samples[specs[0]]
            out[op.key] = {
                spec: {
                    "p50_ms": round(percentile(sorted(values), 50), 2),
                    "p95_ms": round(percentile(sorted(values), 95), 2),
                    f"ratio_to_{specs[0]}": ratio_stats(values, first),
                    "connections": per_spec[spec].connections,
                }
                for spec, values in samples.items()
            }
        rounds: dict[str, list[dict]] = {spec: [] for spec in specs}
        for r in range(3):
            for spec in specs[r % len(specs) :] + specs[: r % len(specs)]:
                log(f"gunicorn_compare: throughput {spec}, round {r + 1}")
                rounds[spec].append(
                    throughput(
                        api,
                        sessions["api"].on(servers[spec].port),
                        servers[spec],
                        port=servers[spec].port,
                        seconds=5,
                    )  # fmt: skip
                )
        out["api_throughput"] = {}
        for spec, runs in rounds.items():
            runs.sort(key=lambda run: run["requests_per_second"])
            median = dict(runs[1])
            median["rounds"] = [run["requests_per_second"] for run in runs]
            out["api_throughput"][spec] = median
    return out


# --- report -----------------------------------------------------------------------------------


def previous_with_other_n() -> dict | None:
    files = sorted(RESULTS.glob("*.json"), reverse=True)
    for path in files:
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        # Only benchmark results carry "n" (load_faults.json in the same folder does not);
        # files from before "database_kind" are PostgreSQL's.
        kind = data.get("database_kind", "postgresql")
        if "n" in data and data["n"] != N and kind.split()[0] == DATABASE_KIND.split()[0]:
            return data
    return None


def _spread(stats: dict | None) -> str:
    if not stats:
        return ""
    return f"{stats['median']}x [{stats['p10']}-{stats['p90']}]"


def _floor(stats: dict | None) -> str:
    return f"{stats['of_p50s']}x; {_spread(stats)}" if stats else ""


def print_table(
    rows: list[dict],
    once: list[dict],
    tput: dict,
    other: dict | None,
    compare: dict | None,
    batches: dict | None = None,
) -> None:
    other_q = {}
    if other:
        other_q = {op["key"]: op.get("queries") for op in other.get("operations", [])}
    qhead = f"q @{other['n']:,}" if other else ""
    print()
    print(
        f"refdesk bench: N={N:,} references, {time.strftime('%Y-%m-%d %H:%M')}, {git_sha()}, "
        f"{DATABASE_KIND}"
    )
    print(f"gunicorn: -c {GUNICORN_CONF.relative_to(ROOT)} {' '.join(GUNICORN_ARGS)}")
    print(f"          {gunicorn_settings()}")
    print(
        f"{'operation':44} {'p50 ms':>8} {'p95 ms':>8} {'q/req':>5} {qhead:>10} "
        f"{'vs admin: median [p10-p90]':>27} {'x floor: p50s; median [p10-p90]':>32}"
    )
    print("-" * 140)
    for row in rows:
        _print_operation(row, other_q)
    for item in once:
        _print_once(item)
    _print_throughput(tput)
    _print_batches(batches)
    _print_compare(compare)
    print(f"load average at the end: {os.getloadavg()}")


def _print_operation(row: dict, other_q: dict) -> None:
    if row["status"] != "ok":
        print(f"{row['label'][:44]:44} {row['status']}: {row['note']}")
        return
    oq = other_q.get(row["key"])
    print(
        f"{row['label'][:44]:44} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
        f"{row['queries'] if row['queries'] is not None else '':>5} "
        f"{'' if oq is None else oq:>10} {_spread(row.get('admin_ratio')):>27} "
        f"{_floor(row.get('floor_multiple')):>32}"
    )
    for miss in row.get("misses", []):
        print(f"{'':46}MISSED: {miss}")
    p50_target = P50_TARGETS.get(row["key"])
    if p50_target is not None and row["p50_ms"] > p50_target:
        print(f"{'':46}MISSED: target p50 {p50_target} ms")


def _print_once(item: dict) -> None:
    if item.get("status", "ok") != "ok":
        print(f"{item['label'][:44]:44} {item['status']}: {item.get('note', '')}")
        return
    print(
        f"{item['label'][:58]:58} {item['seconds']:>7.2f}s   (once)"
        + (f" job {item['job_seconds']} s" if item.get("job_seconds") else "")
        + f" {item.get('note', '')}"
    )
    target = ONCE_TARGETS.get(item["key"])
    if target is not None and item["seconds"] > target:
        print(f"{'':46}MISSED: target {target} s, {item['seconds'] / target:.1f}x over")


def _print_throughput(tput: dict) -> None:
    if tput.get("status") not in ("ok", "error"):
        return
    cpu = tput["cpu_share_pct"]
    print(
        f"{'API by-remote-id throughput':44} {tput['requests_per_second']:>6} req/s "
        f"(rounds {tput['rounds']}; {tput['clients']} keep-alive clients, p50 "
        f"{tput['p50_ms']} ms, {tput['connections_opened']} connections opened; CPU "
        f"client {cpu['client']}%, gunicorn {cpu['gunicorn']}%, postgres {cpu['postgres']}%,"
        f" machine busy {cpu['machine_busy']}% of 2 cores)"
    )
    if tput["requests_per_second"] < THROUGHPUT_TARGET:
        print(f"{'':46}MISSED: {tput['requests_per_second']} < {THROUGHPUT_TARGET} req/s")


def _print_batches(batches: dict | None) -> None:
    for key, run in (batches or {}).items():
        target = BATCH_TARGETS[key]
        print(
            f"{'API batch ' + key + ' (' + str(BATCH_ITEMS) + ' per request)':44} "
            f"{run['records_per_second']:>8,} records/s (rounds {run['rounds']} req/s, "
            f"p50 {run['p50_ms']} ms, {run['clients']} clients)"
        )
        if run["records_per_second"] < target:
            print(f"{'':46}MISSED: target {target:,} records/s")


def _print_compare(compare: dict | None) -> None:
    if not compare:
        return
    first = compare["candidates"][0]
    print()
    print("gunicorn candidates (page 1 and API p50 interleaved; 8-client API throughput):")
    for spec in compare["candidates"]:
        page, api = compare["list_page1"][spec], compare["api_by_remote_id"][spec]
        run = compare["api_throughput"][spec]
        print(
            f"  {spec:12} page 1 p50 {page['p50_ms']:>6.1f} ms "
            f"({_spread(page[f'ratio_to_{first}'])} of {first})  "
            f"API p50 {api['p50_ms']:>5.2f} ms  {run['requests_per_second']:>5} req/s "
            f"{run['rounds']}  CPU client {run['cpu_share_pct']['client']}% "
            f"gunicorn {run['cpu_share_pct']['gunicorn']}% "
            f"postgres {run['cpu_share_pct']['postgres']}%"
        )


def selected(*keys: str) -> bool:
    return not ONLY or any(key in ONLY for key in keys)


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    create_database()
    setup_django()
    from django.core.management import call_command

    from bench.load import ensure_data

    load_before = os.getloadavg()
    log(f"database {DB}: migrate")
    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)
    world = ensure_data(N, log)
    once: list[dict] = []
    if not ONLY or any(key.startswith("health") for key in ONLY):
        once += scan_health(world)
    plan = Plan(world)
    with (
        Server() as server,
        Server(FLOOR_PORT, "bench.floor_settings", name="floor"),
    ):
        sessions = bench_sessions(world)
        timed_runs = run_timed(plan, sessions, server)
        once += run_once_steps(world, sessions, server)
        rss = server.worker_rss_kb()
    rows = [r.as_dict() for r in timed_runs["results"]]
    other = previous_with_other_n()
    tput, compare, batches = timed_runs["tput"], timed_runs["compare"], timed_runs["batches"]
    print_table(rows, once, tput, other, compare, batches)
    write_results(
        {
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "worker_rss_kb": rss,
            "operations": rows,
            "once": once,
            "api_throughput": tput,
            "api_batch": batches,
            "gunicorn_compare": compare,
        }
    )


def bench_sessions(world) -> dict[str, Session]:
    from bench.load import APP_USER, SUPERUSER

    sessions = {
        "app": Session().login(*APP_USER),
        "admin": Session().login(*SUPERUSER),
        "floor": Session(port=FLOOR_PORT),
    }
    api = api_session(world)
    if api:
        sessions["api"] = api
    return sessions


def run_timed(plan: Plan, sessions: dict[str, Session], server: Server) -> dict:
    """The pages and API calls timed request by request, then the throughput runs."""
    groups = [g for g in plan.groups() if selected(g.key, *(op.key for _, op in g.members))]
    results: list[Result] = []
    for group in groups:
        log(f"{group.key}: " + ", ".join(op.key for _, op in group.members) + " interleaved")
        results += run_group(group, sessions)
    for op in (op for op in plan.ops() if selected(op.key)):
        log(f"{op.key}: {op.label}")
        results.append(run_op(op, sessions))
    out = {"results": results, "tput": {"status": "skipped"}, "compare": None, "batches": None}
    api = sessions.get("api")
    if selected("api_throughput") and api:
        log(f"api_throughput: {THROUGHPUT_CLIENTS} keep-alive clients, 3 rounds")
        out["tput"] = throughput_rounds(plan.api_op(), api, server)
    if selected("api_batch") and api:
        log(f"api_batch: lookups and writes of {BATCH_ITEMS}, {THROUGHPUT_CLIENTS} clients")
        out["batches"] = api_batches(plan, api, server)
    if selected("gunicorn_compare") and api:
        log("gunicorn_compare: worker classes and counts side by side")
        out["compare"] = gunicorn_compare(plan, sessions)
    return out


def run_once_steps(world, sessions: dict[str, Session], server: Server) -> list[dict]:
    """The bulk operations, each once, through the UI and the job worker."""
    once: list[dict] = []
    app = sessions["app"]
    with JobWorker() as worker:
        if selected("delete_all"):
            for entity in DELETE_ALL_TABS:
                log(f"delete_all + restore of {entity}: through the UI and the job worker")
                vacuum()
                once += once_delete_all_and_restore(world, app, entity)
                vacuum()
        if selected("reconcile"):
            log(f"reconcile: a {UPLOAD_LINES:,}-line export, compared as a job")
            once += once_reconcile(world, app, server, worker, UPLOAD_LINES)
        if selected("import_upload"):
            log(f"import_upload: a {UPLOAD_LINES:,}-line file, uploaded and checked")
            once += once_import_upload(world, app, server, worker, UPLOAD_LINES)
        once += _once_writes(world, app)
    if selected("export"):
        log("export: CSV of every tab")
        once += once_export(world, sessions, server)
    return once


def _once_writes(world, app: Session) -> list[dict]:
    once: list[dict] = []
    if selected("import"):
        log("import: upload, preview, apply as a job")
        once += once_import(world, app)
        vacuum()
    if selected("health_fix"):
        log("health_fix: put back 10,000 lost links as a job")
        once += once_health_fix(world, app)
        vacuum()
    return once


def write_results(measured: dict) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}-{git_sha()}.json"
    about = {
        "n": N,
        "git_sha": git_sha(),
        "timestamp": stamp,
        "database": DB,
        # "postgresql", or "citus (coordinator + 2 workers)" when BENCH_PG is a coordinator.
        "database_kind": DATABASE_KIND,
        "cpus": os.cpu_count(),
        "gunicorn": {
            "config": str(GUNICORN_CONF.relative_to(ROOT)),
            "settings": gunicorn_settings(),
            "extra_args": GUNICORN_ARGS,
            "as_in_production": not GUNICORN_ARGS,
        },
    }
    out.write_text(json.dumps({**about, **measured}, indent=2) + "\n")
    log(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
