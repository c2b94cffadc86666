"""seed_demo: realistic, idempotent, and never creates known passwords without DEBUG."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from integrations.models import Integration
from records.models import Record, RemoteId
from references.services import count_references, count_unlinked
from references.suggestions import find_suggestions

pytestmark = pytest.mark.django_db


def test_seed_is_idempotent_and_gives_a_demo_worth_looking_at(settings, capsys):
    settings.DEBUG = True
    call_command("seed_demo")
    counts = (Record.objects.count(), RemoteId.objects.count())
    call_command("seed_demo")

    assert (Record.objects.count(), RemoteId.objects.count()) == counts
    out = capsys.readouterr().out
    assert "Demo data already present; nothing added." in out
    assert "admin / admin" in out
    assert authenticate(username="admin", password="admin") is not None
    main = Integration.objects.get(tenant__slug="acme", name="Shopify → Fortnox")
    for record_type in ("article", "customer", "order", "stock"):
        assert count_references(main, record_type) > 100
        assert count_unlinked(main, record_type) > 0
    suggestions, total = find_suggestions(main, "order")
    assert total == len(suggestions) == 8


def test_seed_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("seed_demo")
    assert not Record.objects.exists()


def test_the_demo_has_orders_known_to_more_than_two_systems(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=StringIO())
    three = [
        record
        for record in Record.objects.filter(tenant__slug="acme", record_type="order")
        .prefetch_related("remote_ids__connection")
        .order_by("id")[:20]
        if record.remote_ids.count() >= 3
    ]
    assert three, "no order known to more than two connections"
    names = {row.connection.name for row in three[0].remote_ids.all()}
    assert {"WooCommerce Outlet", "Warehouse API"} <= names
