"""The delta feed is gapless: a change whose transaction commits after later-stamped ones is
still delivered to a client that follows the documented cursor.

PostgreSQL only: it takes a second connection holding a transaction open while the client
pages, which is what a bulk job does for seconds or minutes.
"""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from records.audit import Actor, mark_changed
from tests.factories import RecordFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# How long the client keeps polling for the committed changes: they come once no older
# transaction of this database runs (the test's own connections), at once unless the machine
# is slow.
POLL_FOR = 20


class FeedClient:
    """A connector following the contract: store `nextCursor`, send it back as `cursor`;
    until it has one, ask again with the same `modifiedAtOrAfter`."""

    def __init__(self, api, since):
        self.api, self.since, self.cursor = api, since, None
        self.seen: list[str] = []

    def poll(self) -> list[str]:
        got = []
        while True:
            params = {"cursor": self.cursor} if self.cursor else {"modifiedAtOrAfter": self.since}
            body = self.api.get("order", {**params, "limit": 2}).json()
            got += [item["localId"] for item in body["items"]]
            self.cursor = body["nextCursor"] or self.cursor
            if not body["hasMore"]:
                self.seen += got
                return got


def hold_open_with_changes(tenant, record_ids, at, started, release):
    """In a second connection: mark records changed (stamped `at`), then keep the
    transaction open until released, as a bulk job does."""
    try:
        with transaction.atomic():
            mark_changed(tenant, record_ids, Actor.system("bulk-job"), at=at)
            started.set()
            release.wait(30)
    finally:
        connection.close()


def test_a_change_committed_after_later_stamped_ones_reaches_the_client(api, world):
    start = timezone.now()
    in_the_long_transaction = [
        RecordFactory(tenant=world.tenant, last_modified=start - timedelta(days=1))
        for _ in range(3)
    ]
    started, release = threading.Event(), threading.Event()
    job = threading.Thread(
        target=hold_open_with_changes,
        args=(world.tenant, [r.pk for r in in_the_long_transaction], start, started, release),
    )
    job.start()
    try:
        assert started.wait(10)
        # Shorter writes stamped later commit while the long transaction runs.
        committed_first = [RecordFactory(tenant=world.tenant) for _ in range(3)]
        assert committed_first[0].last_modified > start
        client = FeedClient(api, (start - timedelta(seconds=1)).isoformat())
        while_it_runs = client.poll()
    finally:
        release.set()
        job.join()

    expected = {r.local_id for r in in_the_long_transaction + committed_first}
    deadline = time.monotonic() + POLL_FOR
    while not expected <= set(client.seen) and time.monotonic() < deadline:
        client.poll()
        time.sleep(0.1)
    assert expected <= set(client.seen), "the long transaction's changes never came"
    assert len(client.seen) == len(expected)  # each once: no write came twice here
    # While it ran, nothing it could still precede was handed out.
    assert while_it_runs == []
