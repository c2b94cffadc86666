"""Settings of the floor server (bench/floor.py): production settings with no middleware at
all and a URLconf of two bare views, served by gunicorn with the same config/gunicorn.conf.py
as the app, on the port after the app's. What a page costs with nothing but its rows query and
a minimal template: the floor the References page and the record page are measured against.
"""

from config.settings import *  # noqa: F403
from config.settings import BASE_DIR, TEMPLATES

MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.floor"
TEMPLATES = [
    {**TEMPLATES[0], "DIRS": [BASE_DIR / "bench" / "templates", *TEMPLATES[0]["DIRS"]]},
]
