"""Settings for the benchmark server: production settings plus a query-count header.

gunicorn runs with DJANGO_SETTINGS_MODULE=bench.settings, so the app is served exactly as in
production (DEBUG off, WhiteNoise manifest storage, database sessions) and every response
also says how many SQL queries it ran (bench/middleware.py).
"""

from config.settings import *  # noqa: F403
from config.settings import MIDDLEWARE

MIDDLEWARE = ["bench.middleware.QueryCountMiddleware", *MIDDLEWARE]
