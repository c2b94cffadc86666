"""Database sessions get their limits: the app servers a request's (a statement and a lock
are given up on), every process keepalives and an idle-in-transaction timeout, so a vanished
worker or a hung process does not hold its locks for hours. Read back from PostgreSQL itself,
in a fresh process started the way production starts it."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

SHOW = """
import json, sys
{setup}
from django.db import connection
names = sys.argv[1:]
with connection.cursor() as cursor:
    values = {{}}
    for name in names:
        cursor.execute("SHOW " + name)
        values[name] = cursor.fetchone()[0]
print(json.dumps(values))
"""
NAMES = [
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "client_connection_check_interval",
    "tcp_keepalives_idle",
    "tcp_keepalives_interval",
    "tcp_keepalives_count",
]


def session_settings(setup: str) -> dict:
    db = connection.settings_dict
    env = {
        **{k: v for k, v in os.environ.items() if k != "REFDESK_PROCESS"},
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "SECRET_KEY": "x",
    }
    done = subprocess.run(
        [sys.executable, "-c", SHOW.format(setup=setup), *NAMES],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_an_app_server_s_session_gives_up_on_long_statements_and_lock_waits():
    shown = session_settings("import config.wsgi")  # what gunicorn loads
    assert shown == {
        "statement_timeout": "30s",
        "lock_timeout": "10s",
        "idle_in_transaction_session_timeout": "1min",
        "client_connection_check_interval": "10s",
        "tcp_keepalives_idle": "30",
        "tcp_keepalives_interval": "10",
        "tcp_keepalives_count": "3",
    }


def test_a_worker_s_session_waits_as_long_as_its_job_takes_but_not_for_a_dead_peer():
    shown = session_settings(
        "import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); "
        "django.setup()"  # what manage.py db_worker loads
    )
    assert shown == {
        "statement_timeout": "0",
        "lock_timeout": "0",
        "idle_in_transaction_session_timeout": "10min",
        "client_connection_check_interval": "10s",
        "tcp_keepalives_idle": "30",
        "tcp_keepalives_interval": "10",
        "tcp_keepalives_count": "3",
    }
