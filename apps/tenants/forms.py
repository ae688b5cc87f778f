from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import PasswordResetForm

from .models import ApiKey


def account_email() -> forms.EmailField:
    """An email that names a user account: the account's username is the email, so it can
    be no longer than that column (an address longer passed the form and failed the insert)."""
    return forms.EmailField(max_length=get_user_model()._meta.get_field("username").max_length)


class SignupForm(forms.Form):
    organisation = forms.CharField(max_length=200, label="Organisation")
    email = account_email()
    password = forms.CharField(widget=forms.PasswordInput, strip=False)

    def clean_email(self):
        # Whether the email has an account is never said here (apps.tenants.signups).
        return self.cleaned_data["email"].lower()

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password"):
            user = get_user_model()(username=cleaned.get("email", ""), email=cleaned.get("email", ""))
            try:
                password_validation.validate_password(cleaned["password"], user)
            except forms.ValidationError as err:
                self.add_error("password", err)
        return cleaned


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(choices=ApiKey.Scope.choices, initial=ApiKey.Scope.INFERENCE, required=False)

    def clean_scope(self):
        return self.cleaned_data["scope"] or ApiKey.Scope.INFERENCE


class AccountResetForm(PasswordResetForm):
    """Django's reset, also for an account without a usable password. Here that is a person
    invited (or an owner created by `create_tenant`) who has not chosen one yet: Django skips
    them, so once the invitation's link expired they could never sign in."""

    def get_users(self, email):
        return get_user_model()._default_manager.filter(email__iexact=email, is_active=True)
