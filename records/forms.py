"""Custom data forms. They validate through the services (records/services.py, validation.py)
and turn each DomainError into an error next to the field it names."""

from django import forms

from common.errors import DomainError
from integrations.models import Connection

from .custom_data import CustomDataInput, require_self_made_module, set_custom_data
from .errors import StaleEdit
from .models import CustomData
from .validation import (
    SELF_MADE_MODULE_PREFIX,
    clean_custom_key,
    clean_module_id,
    format_custom_value,
    parse_custom_value,
)

TYPE_CHOICES = CustomData.Type.choices


def owned_by_connector(module_id: str) -> bool:
    """A module whose id does not start with x- belongs to a connector (the module ids
    people may use themselves start with x-)."""
    return not module_id.startswith(SELF_MADE_MODULE_PREFIX)


class CustomDataForm(forms.Form):
    """Shared by add and edit: the value is parsed as its type by the service on save."""

    type = forms.ChoiceField(choices=TYPE_CHOICES, initial="string")
    value = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 1, "class": "input-mono", "spellcheck": "false"}),
    )
    confirm_owned = forms.BooleanField(required=False)

    def clean(self):
        cleaned = super().clean()
        # Say everything that is wrong at once: the value's type is checked here too, with the
        # same rule the service applies again on save.
        if "type" in cleaned and "value" in cleaned:
            try:
                parse_custom_value(cleaned["type"], cleaned["value"])
            except DomainError as error:
                self.add_domain_error(error)
        return cleaned

    def add_error(self, field, error):
        super().add_error(field, error)
        # Errors sit next to their field and screen readers hear them with it.
        for name in self.errors:
            if name in self.fields:
                self.fields[name].widget.attrs.update(
                    {"aria-invalid": "true", "aria-describedby": f"{self[name].auto_id}-error"}
                )

    def add_domain_error(self, error: DomainError) -> None:
        field = error.field if error.field in self.fields else None
        self.add_error(field, error.message)

    def check_owned_confirmation(self, module_id: str, connector_name: str = "") -> None:
        if owned_by_connector(module_id) and not self.cleaned_data.get("confirm_owned"):
            owner = f"the {connector_name} connector" if connector_name else "a connector"
            self.add_error(
                "confirm_owned",
                f"Module {module_id} belongs to {owner}: it may rely on this value or overwrite "
                "it on the next sync. Tick the box to confirm the change.",
            )

    def save(
        self, record, actor, *, connection, module_id: str, key: str, version: int | None = None
    ) -> CustomData | None:
        """Write through set_custom_data; on a refused value, the error lands on its field."""
        entry = CustomDataInput(
            module_id=module_id,
            key=key,
            type=self.cleaned_data["type"],
            value=self.cleaned_data["value"],
            connection=connection,
        )
        try:
            (saved,) = set_custom_data(record, [entry], actor, version=version)
        except DomainError as error:
            self.add_domain_error(error)
            return None
        return saved


class CustomDataAddForm(CustomDataForm):
    connection = forms.ModelChoiceField(
        queryset=Connection.objects.none(),
        required=False,
        empty_label="None (not connection-scoped)",
    )
    module_id = forms.CharField(
        label="Module id",
        strip=False,
        widget=forms.TextInput(
            attrs={"class": "id", "placeholder": "x-support", "autocomplete": "off"}
        ),
    )
    key = forms.CharField(
        strip=False,
        widget=forms.TextInput(attrs={"class": "id", "placeholder": "note", "autocomplete": "off"}),
    )
    field_order = ["connection", "module_id", "key", "type", "value", "confirm_owned"]

    def __init__(self, *args, record, connections=None, **kwargs):
        kwargs.setdefault("auto_id", "cd-add-%s")
        super().__init__(*args, **kwargs)
        self.record = record
        field = self.fields["connection"]
        field.queryset = Connection.objects.for_tenant(record.tenant).select_related("connector")
        field.label_from_instance = lambda c: f"{c.name} ({c.connector.name})"
        if connections is not None:
            # Already read with the record (records.queries): choices without a query. The
            # queryset still checks what is posted.
            field.choices = [("", field.empty_label)] + [
                (connection.pk, field.label_from_instance(connection)) for connection in connections
            ]

    def clean(self):
        cleaned = super().clean()
        try:
            module_id = clean_module_id(cleaned.get("module_id"))
            require_self_made_module(self.record.tenant, module_id)
            cleaned["module_id"] = module_id
        except DomainError as error:
            self.add_error("module_id", error.message)
            return cleaned
        try:
            cleaned["key"] = clean_custom_key(cleaned.get("key"))
        except DomainError as error:
            self.add_error("key", error.message)
            return cleaned
        connection = cleaned.get("connection")
        existing = (
            CustomData.objects.for_tenant(self.record.tenant)
            .filter(
                record=self.record, connection=connection, module_id=module_id, key=cleaned["key"]
            )
            .first()
        )
        if existing is not None:
            self.add_error(
                "key",
                f"This record already has {existing.full_key}; edit that entry instead.",
            )
            return cleaned
        self.check_owned_confirmation(module_id)
        return cleaned

    def save(self, record, actor):
        data = self.cleaned_data
        return super().save(
            record,
            actor,
            connection=data["connection"],
            module_id=data["module_id"],
            key=data["key"],
        )


class CustomDataEditForm(CustomDataForm):
    """Change the type and value of one entry; its key (connection, module, key) stays.

    It carries the record's version it was opened on: if anyone changed the record since, the
    save is refused with who and when, and the current value is shown (edits are optimistic:
    the same check as a reference edit and the API's If-Match, records/versioning.py).
    """

    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, item: CustomData, **kwargs):
        self.item = item
        kwargs.setdefault("auto_id", f"cd-{item.pk}-%s")
        kwargs.setdefault(
            "initial",
            {
                "type": item.type,
                "value": format_custom_value(item.type, item.value),
                "version": item.record.version,
            },
        )
        super().__init__(*args, **kwargs)
        if item.type == "json":
            self.fields["value"].widget.attrs["rows"] = 4

    @property
    def owned_by_connector(self) -> bool:
        return owned_by_connector(self.item.module_id)

    def clean(self):
        cleaned = super().clean()
        item = self.item
        connector = item.connection.connector.name if item.connection_id else ""
        self.check_owned_confirmation(item.module_id, connector)
        return cleaned

    def add_domain_error(self, error: DomainError) -> None:
        if not isinstance(error, StaleEdit):
            super().add_domain_error(error)
            return
        # Show the current value and version as the new starting point: saving again is
        # deliberate.
        item = CustomData.objects.for_tenant(self.item.tenant).filter(pk=self.item.pk).first()
        current = (
            f"The current value is {item.type} {format_custom_value(item.type, item.value)}."
            if item
            else "The entry was deleted meanwhile."
        )
        self.data = self.data.copy()
        self.data["version"] = error.current_version
        self.add_error(None, f"{error.message.removesuffix('.')} {current}")

    def save(self, record, actor):
        return super().save(
            record,
            actor,
            connection=self.item.connection,
            module_id=self.item.module_id,
            key=self.item.key,
            version=self.cleaned_data.get("version"),
        )
