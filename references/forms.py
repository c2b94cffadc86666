"""Forms of the References page. They only carry values: the rules (trimming, length, control
characters, conflicts) are in references.services, whose errors the views attach to fields."""

from django import forms

from common.errors import DomainError
from records.errors import BulkChangeRunning, Conflict
from references.services import ReferenceInput


class ReferenceForm(forms.Form):
    source_id = forms.CharField(required=False, strip=False)
    source_ref = forms.CharField(required=False, strip=False)
    target_id = forms.CharField(required=False, strip=False)
    target_ref = forms.CharField(required=False, strip=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.holders = {}  # field -> Record holding the id (for "open it" links)
        self.stale = None
        self.running_job = None  # the bulk change's job that refused it (a progress link)

    def reference_input(self) -> ReferenceInput:
        data = self.cleaned_data
        return ReferenceInput(
            source_id=data["source_id"],
            target_id=data["target_id"],
            source_ref=data["source_ref"],
            target_ref=data["target_ref"],
        )

    def trimmed_note(self) -> str:
        """Ids and refs are trimmed; say so when it happened, so nobody wonders which was saved."""
        trimmed = [
            value.strip()
            for name in ("source_id", "source_ref", "target_id", "target_ref")
            if (value := self.data.get(name, "")) != value.strip() and value.strip()
        ]
        return f" Saved as {', '.join(trimmed)} (spaces removed)." if trimmed else ""

    @property
    def focus_field(self) -> str:
        """The field the cursor starts in: the first one with an error, else the source id, so
        that after a refusal the user types straight into what needs fixing."""
        return next((name for name in self.fields if name in self.errors), "source_id")

    def add_domain_error(self, error: DomainError) -> None:
        """Show a service's refusal next to the field it names (or above the form)."""
        field = error.field if error.field in self.fields else None
        if isinstance(error, Conflict) and error.holder is not None:
            self.holders[field or "form"] = error.holder
        if isinstance(error, BulkChangeRunning):
            self.running_job = error.job
        self.add_error(field, error.message)


class EditReferenceForm(ReferenceForm):
    version = forms.IntegerField(widget=forms.HiddenInput)


class DeleteAllForm(forms.Form):
    confirm = forms.CharField(required=False, strip=True)

    def __init__(self, *args, expected: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.expected = expected

    def clean_confirm(self):
        value = self.cleaned_data["confirm"]
        if value != self.expected:
            raise forms.ValidationError(
                f"Type {self.expected} exactly to confirm. Nothing was deleted."
            )
        return value
