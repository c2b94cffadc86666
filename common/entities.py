"""The entity types an integration syncs, and the one map of their URL slugs.

A record's type is singular (`order`); the References and Health URLs name a tab by its plural
slug (`.../references/orders/`). Every page, URL pattern and command translates through here.
"""

from django.db import models


class EntityType(models.TextChoices):
    """Record types shown as tabs on the References page (other record types may exist)."""

    ARTICLE = "article", "Articles"
    CUSTOMER = "customer", "Customers"
    ORDER = "order", "Orders"
    STOCK = "stock", "Stock"


SLUGS = {
    EntityType.ARTICLE: "articles",
    EntityType.CUSTOMER: "customers",
    EntityType.ORDER: "orders",
    EntityType.STOCK: "stock",
}
RECORD_TYPES_BY_SLUG = {slug: record_type for record_type, slug in SLUGS.items()}
# For URL patterns: only these slugs resolve, so an unknown entity is a 404 before any view.
SLUG_REGEX = "|".join(SLUGS.values())


def slug_of(record_type: str) -> str | None:
    """`order` -> `orders`; None for a record type that has no tab (e.g. `invoice`)."""
    return SLUGS.get(record_type)


def record_type_of(slug: str) -> str | None:
    """`orders` -> `order`; None for anything that is not an entity slug."""
    return RECORD_TYPES_BY_SLUG.get(slug)
