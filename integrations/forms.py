from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from . import throttling


class ThrottledLoginMixin:
    """Refuses a log-in while the username or address is locked out; counts failures."""

    throttle_scope = "login"
    lockout: throttling.Lockout | None = None

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        self.lockout = throttling.check(self.throttle_scope, username, self.request)
        if self.lockout:
            raise forms.ValidationError(self.lockout.message, code="throttled")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            throttling.record_failure(self.throttle_scope, username, self.request)
            raise
        throttling.record_success(self.throttle_scope, username, self.request)
        return cleaned


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
