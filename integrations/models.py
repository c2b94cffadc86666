import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from common.entities import EntityType

from .tenant_keys import deleting_within


def new_hex_id() -> str:
    """32 lowercase hex characters: the platform's id format for connections and records."""
    return uuid.uuid4().hex


HEX32_PATTERN = r"^[0-9a-f]{32}$"

# What says two records are the same thing (references.findings, suggested links): the remote
# ref, or a field of the record's data. Each integration may choose its own per entity type.
REMOTE_REF = "remote_ref"
DEFAULT_MATCH_KEYS = {
    EntityType.ARTICLE: "sku",
    EntityType.CUSTOMER: "email",
    EntityType.ORDER: "orderNumber",
    EntityType.STOCK: "sku",
}


class TenantQuerySet(models.QuerySet):
    """The one choke point for tenancy: every tenant-owned model's manager has `for_tenant`."""

    # The tenant a for_tenant() queryset is scoped to: its delete() cascades within it.
    _scoped_tenant_id: int | None = None

    def for_tenant(self, tenant):
        return self.filter(tenant=tenant).scoped_to_tenant(getattr(tenant, "pk", tenant))

    def scoped_to_tenant(self, tenant_id: int | None):
        """Mark (not filter) the queryset as one tenant's, for delete()."""
        clone = self._chain()
        clone._scoped_tenant_id = tenant_id
        return clone

    def _clone(self):
        clone = super()._clone()
        clone._scoped_tenant_id = self._scoped_tenant_id
        return clone

    def delete(self):
        with deleting_within(self._scoped_tenant_id):
            return super().delete()


class Reseller(models.Model):
    name = models.CharField(max_length=200, unique=True)
    staff = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="resellers",
        help_text="Users who manage this reseller's tenants in the admin site.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tenant(models.Model):
    reseller = models.ForeignKey(Reseller, on_delete=models.PROTECT, related_name="tenants")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        SUPPORT = "support", "Support"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.SUPPORT)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__name", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "user"],
                name="membership_unique_user_per_tenant",
                violation_error_message="This user already has a role on this tenant.",
            ),
            models.CheckConstraint(
                condition=Q(role__in=["admin", "support"]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.tenant}"

    @property
    def is_admin(self) -> bool:
        return self.role == self.Role.ADMIN


class Connector(models.Model):
    class Category(models.TextChoices):
        ECOMMERCE = "ecommerce", "E-commerce"
        MARKETPLACE = "marketplace", "Marketplace"
        ERP = "erp", "Accounting / ERP"
        PAYMENTS = "payments", "Payments"
        LOGISTICS = "logistics", "Logistics"
        API = "api", "API"

    code = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=100)
    category = models.CharField(max_length=20, choices=Category.choices)
    is_native = models.BooleanField(
        default=True, help_text="Native connectors are built by the platform; others are external."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_api(self) -> bool:
        return self.category == self.Category.API


class Connection(models.Model):
    connection_id = models.CharField(
        max_length=32, unique=True, default=new_hex_id, editable=False, db_index=True
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="connections")
    connector = models.ForeignKey(Connector, on_delete=models.PROTECT, related_name="connections")
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    # API connections authenticate with a random key; only its SHA-256 digest is stored.
    api_key_digest = models.CharField(max_length=64, blank=True, editable=False)
    api_key_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(connection_id__regex=HEX32_PATTERN),
                name="connection_id_is_32_lowercase_hex",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Integration(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="integrations")
    name = models.CharField(max_length=200)
    source = models.ForeignKey(
        Connection, on_delete=models.PROTECT, related_name="integrations_as_source"
    )
    target = models.ForeignKey(
        Connection, on_delete=models.PROTECT, related_name="integrations_as_target"
    )
    entity_types = models.JSONField(
        default=list, blank=True, help_text="Record types this integration syncs."
    )
    match_keys = models.JSONField(
        default=dict,
        blank=True,
        help_text='Per entity type, what makes two records the same: "remote_ref" or a data '
        'field such as "sku". Defaults: sku for articles and stock, email for customers, '
        "orderNumber for orders.",
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(source=F("target")),
                name="integration_source_differs_from_target",
                violation_error_message="Source and target must be different connections.",
            ),
            models.UniqueConstraint(
                fields=["tenant", "source", "target"],
                name="integration_unique_pair_per_tenant",
                violation_error_message="These two connections are already integrated.",
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.source} → {self.target}"

    def save(self, *args, **kwargs):
        # A cross-tenant integration would leak one tenant's ids into another's pages:
        # refuse it here too, not only in forms (the database cannot express it without
        # a composite foreign key).
        for side in (self.source, self.target):
            if side.tenant_id != self.tenant_id:
                raise ValidationError("Both connections must belong to the integration's tenant.")
        super().save(*args, **kwargs)

    def clean(self):
        super().clean()
        errors = {}
        for side in ("source", "target"):
            connection = getattr(self, side, None) if getattr(self, f"{side}_id") else None
            if connection is not None and self.tenant_id and connection.tenant_id != self.tenant_id:
                errors[side] = "This connection belongs to another tenant."
        unknown = set(self.entity_types or []) - set(EntityType.values)
        if unknown:
            errors["entity_types"] = f"Unknown entity types: {', '.join(sorted(unknown))}."
        if errors:
            raise ValidationError(errors)

    def match_key(self, record_type: str) -> str:
        """The remote ref or the data field that says two records of a type are the same."""
        return (self.match_keys or {}).get(record_type) or DEFAULT_MATCH_KEYS.get(
            record_type, REMOTE_REF
        )

    @property
    def synced_entity_types(self) -> list[str]:
        """Entity types in tab order (the order of EntityType)."""
        chosen = set(self.entity_types or EntityType.values)
        return [value for value in EntityType.values if value in chosen]


class AuthFailure(models.Model):
    """One failed log-in or API authentication, kept for the throttling window.

    In the database (not a per-process cache) so every app server sees the same counts.
    `key` is a digest of the identity tried (username or connection id), never the secret.
    """

    scope = models.CharField(max_length=20)
    key = models.CharField(max_length=64)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["scope", "key", "created_at"], name="authfailure_key_idx"),
            models.Index(fields=["scope", "ip", "created_at"], name="authfailure_ip_idx"),
            models.Index(fields=["scope", "created_at"], name="authfailure_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} failure from {self.ip} at {self.created_at}"
