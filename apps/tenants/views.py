from django.contrib.auth import login
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from . import services
from .forms import SignupForm
from .sessions import SESSION_TENANT


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated and request.method == "GET":
        return redirect("dashboard:overview")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        tenant, user, raw_key = services.signup(
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password"],
            organisation=form.cleaned_data["organisation"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        request.session[SESSION_TENANT] = tenant.pk
        # Rendered, not redirected: the key is in this response and nowhere else.
        response = render(request, "tenants/signup_done.html", {"tenant": tenant, "raw_key": raw_key})
        response["Cache-Control"] = "no-store"
        return response
    return render(request, "tenants/signup.html", {"form": form})
