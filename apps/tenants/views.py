from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import PasswordResetView
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from . import signups, throttle
from .forms import AccountResetForm, SignupForm
from .sessions import SESSION_TENANT, session_tenant_choose


def _throttled(request):
    return render(request, "tenants/throttled.html", status=429)


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated and request.method == "GET":
        return redirect("dashboard:overview")
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        if not throttle.allow("signup", throttle.client_ip(request), limit=settings.AKA_THROTTLE_SIGNUP_PER_CLIENT):
            return _throttled(request)
        if form.is_valid():
            email = form.cleaned_data["email"]
            # Bounded per address as the reset is, so nobody mails someone else without end.
            if throttle.allow("signup-email", email.lower(), limit=settings.AKA_THROTTLE_RESET_PER_EMAIL):
                signups.signup_request(
                    email=email, password=form.cleaned_data["password"],
                    organisation=form.cleaned_data["organisation"],
                    link_for=lambda token: request.build_absolute_uri(reverse("signup-confirm", args=[token])))
            # The same page whether the email has an account, or was sent nothing this time.
            return render(request, "tenants/signup_sent.html", {"email": email})
    return render(request, "tenants/signup.html", {"form": form})


@require_http_methods(["GET", "POST"])
def signup_confirm(request, token):
    # GET only shows a button: mail scanners that open links must not create the tenant.
    if request.method == "GET":
        return render(request, "tenants/signup_confirm.html",
                      {"valid": signups.signup_link_valid(token=token)})
    try:
        tenant, user, raw_key = signups.signup_confirm(token=token)
    except signups.LinkInvalid:
        return render(request, "tenants/signup_confirm.html", {"valid": False}, status=400)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session[SESSION_TENANT] = tenant.pk
    # Rendered, not redirected: the key is in this response and nowhere else.
    response = render(request, "tenants/signup_done.html", {"tenant": tenant, "raw_key": raw_key})
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def tenant_choose(request):
    """The header's tenant picker: act for another of the user's tenants."""
    membership = session_tenant_choose(request, tenant_id=request.POST.get("tenant"))
    messages.success(request, f"Now acting for {membership.tenant.name}.")
    return redirect("dashboard:overview")


class ThrottledPasswordReset(PasswordResetView):
    """Django's reset, bounded per client (429) and per address (silently: the answer is
    the same whether an email was sent, skipped, or the address is unknown)."""

    form_class = AccountResetForm

    def post(self, request, *args, **kwargs):
        if not throttle.allow("reset-client", throttle.client_ip(request),
                              limit=settings.AKA_THROTTLE_RESET_PER_CLIENT):
            return _throttled(request)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        if not throttle.allow("reset-email", form.cleaned_data["email"].lower(),
                              limit=settings.AKA_THROTTLE_RESET_PER_EMAIL):
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)
