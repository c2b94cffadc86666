"""gunicorn's settings for refdesk, in one place: the README's production command line and the
benchmark (bench/run.py) both start gunicorn with `-c config/gunicorn.conf.py`, so what is
measured is what is deployed.

    .venv/bin/gunicorn -c config/gunicorn.conf.py config.wsgi:application

GUNICORN_BIND (default 0.0.0.0:8000) says where to listen; the benchmark passes `--bind
127.0.0.1:<port>`, which overrides it (gunicorn's command line wins over this file).
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# About one worker per core (2 cores), each with 4 threads: gthread workers keep connections
# alive (sync workers close after every response) and overlap one request's database waits
# with another's Python. Measured side by side at a million references (bench/README.md,
# "gunicorn"): the API served about 1.5x the requests per second of 2 sync workers, pages
# as fast. Each thread holds its own database connection (CONN_MAX_AGE): 8 per server.
workers = 2
worker_class = "gthread"
threads = 4
# Web requests stay short (big changes are jobs): the default 30 s is enough.
timeout = 30
# Seconds an idle keep-alive connection stays open (gunicorn's default).
keepalive = 2


def post_worker_init(worker):
    """Once a worker has loaded the app: import every view (the URLconf is otherwise imported
    on the first request), then move everything loaded so far out of the garbage collector's
    reach (`gc.freeze()`: Python's advice for servers). Those objects live as long as the
    process; a full collection walked them all again every few requests, up to ~90 ms each
    during a batch write of 500 records (bench/README.md, "gunicorn's garbage collector").
    Objects made later are collected as before."""
    import gc

    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports the views)
    gc.collect()
    gc.freeze()
