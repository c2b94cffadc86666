"""The tenant home: each integration's reference counts and Health, per entity type."""

import pytest

from references.services import ReferenceInput, add_reference
from tests.factories import make_reference

pytestmark = pytest.mark.django_db


def test_tenant_home_lists_integrations_with_counts(admin_client, world):
    make_reference(world.integration, source_id="1", target_id="A")
    make_reference(world.integration, source_id="2")
    response = admin_client.get("/t/acme/")
    assert response.status_code == 200
    rows = response.context["rows"]
    orders = next(e for e in rows[0]["entities"] if e["entity"] == "orders")
    health = orders["health"]
    assert (orders["references"].value, health.unlinked.value) == (1, 1)
    assert orders["references"].exact and health.unlinked.exact
    # The dashboard says it and links it: 1 unlinked, never linked, so no "lost".
    assert "1 unlinked" in " ".join(response.text.split())
    assert "lost</a>" not in response.text


def test_tenant_home_counts_are_the_exact_counts_the_engine_keeps(admin_client, world):
    for n in range(3):
        make_reference(world.integration, source_id=f"S{n}", target_id=f"T{n}")
    make_reference(world.integration, source_id="U1")
    admin_client.get("/t/acme/")  # counted once, then kept
    add_reference(world.integration, "order", ReferenceInput("S9", "T9"), world.actor)

    response = admin_client.get("/t/acme/")

    orders = next(e for e in response.context["rows"][0]["entities"] if e["entity"] == "orders")
    assert orders["references"].exact and orders["references"].value == 4
    assert int(orders["health"].unlinked) == 1
    assert "about" not in response.text and "more than" not in response.text
