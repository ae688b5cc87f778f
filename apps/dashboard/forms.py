"""The dashboard's forms. Settings forms take their fields (and so their validation
bounds) from the owning apps' models, so the limits live in one place."""

import math

import django_filters
from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models.expressions import RawSQL
from django.forms.models import fields_for_model

from apps.billing.models import CallRecord
from apps.cache.models import CacheSettings
from apps.cache.selectors import semantic_floor
from apps.core.percent import as_percent, from_percent
from apps.providers.models import CatalogModel
from apps.routing.models import RoutingSettings
from apps.tenants.forms import account_email
from apps.tenants.models import Membership, Plan, Tenant

from .rollups import MODEL_SQL

CACHE_FIELDS = ["enabled", "target_wrong_hit_rate", "threshold", "ttl_seconds", "user_scope", "tool_calls",
                "high_temperature"]


def model_fields(model, names: list[str]) -> dict[str, forms.Field]:
    """The model's form fields with the model fields' own validators (bounds) attached."""
    found = fields_for_model(model, fields=names)
    for name, field in found.items():
        field.validators = [*field.validators, *model._meta.get_field(name).validators]
    return found


class PercentField(forms.FloatField):
    """A rate kept as a fraction (0.007), shown, typed and bounded as a percentage (0.7),
    converted exactly (apps.core.percent)."""

    def __init__(self, *, fraction_validators, **kwargs):
        bounds = {type(v): as_percent(v.limit_value) for v in fraction_validators
                  if isinstance(v, MinValueValidator | MaxValueValidator)}   # not `finite`: the form refuses NaN itself
        super().__init__(min_value=float(bounds[MinValueValidator]), max_value=float(bounds[MaxValueValidator]),
                         **kwargs)

    def prepare_value(self, value):
        return as_percent(value) if isinstance(value, float) else value

    def clean(self, value):
        value = super().clean(value)
        return None if value is None else from_percent(value)


def target_field() -> PercentField:
    """What a tenant (and staff) choose: a share of wrong hits, in percent; the similarity
    threshold is the expert's knob."""
    target = PercentField(fraction_validators=CacheSettings._meta.get_field("target_wrong_hit_rate").validators,
                          label="Wrong hits allowed (%)", required=False)
    target.help_text = (
        f"share of semantic hits allowed to be wrong, in percent ({target.min_value:g}-{target.max_value:g}, "
        f"e.g. 1; lower is stricter). Below {math.ceil(semantic_floor() * 1e5) / 1e5:.3%} only exact repeats are "
        "answered from the cache. Empty: the similarity threshold alone (expert)")
    return target


class TargetForm(forms.Form):
    """A form with the target wrong-hit rate (target_field) and the similarity threshold,
    labelled for tenants."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target_wrong_hit_rate"] = target_field()
        self.fields["threshold"].label = "Similarity threshold (expert)"

    def clean(self):
        # A field the request does not carry keeps its value (a page from before the field
        # existed, a script): for the target, empty means off, and off is not a default.
        cleaned = super().clean()
        if self.add_prefix("target_wrong_hit_rate") not in self.data:
            cleaned.pop("target_wrong_hit_rate", None)
        return cleaned


class CacheSettingsForm(TargetForm):
    locals().update(model_fields(CacheSettings, CACHE_FIELDS))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["enabled"].label = "Cache on"
        self.fields["ttl_seconds"].label = "Keep answers for (seconds)"


class BaselineForm(forms.Form):
    baseline_model = forms.ChoiceField(
        label="Baseline model", help_text="the model you would call without us: every saving is measured against it")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        ids = CatalogModel.objects.filter(enabled=True).order_by("model_id").values_list("model_id", flat=True)
        self.fields["baseline_model"].choices = [(i, i) for i in ids]


class PrivacyForm(forms.Form):
    log_prompts = model_fields(Tenant, ["log_prompts"])["log_prompts"]
    log_prompts.label = "Log prompts"
    log_prompts.help_text = "keep each call's prompt in the call log (off: only tokens and costs are kept)"


class PlanForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.order_by("-price_per_call_cents"), empty_label=None)


ROUTING_FIELDS = ["quality_floor", "speculation", "buffered_speculation", "judge", "judge_threshold"]


class ModelListField(forms.CharField):
    """Model ids as a comma-separated line, a list in Python (the routing service checks
    them against the catalog)."""

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value):
        return [part.strip() for part in super().to_python(value).split(",") if part.strip()]


class RoutingForm(forms.Form):
    locals().update(model_fields(RoutingSettings, ROUTING_FIELDS))
    pool = ModelListField(label="Pool", help_text="catalog model ids, cheapest first, strongest last, comma-separated")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["judge_threshold"].label = "Judge's pass threshold"


class RuleForm(TargetForm):
    """The staff console's tuning: a tenant's target and threshold (the cache's hit rule)."""

    locals().update(model_fields(CacheSettings, ["target_wrong_hit_rate", "threshold"]))


class InviteForm(forms.Form):
    email = account_email()
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class KeyNameForm(forms.Form):
    name = forms.CharField(max_length=100)


class CallFilter(django_filters.FilterSet):
    """The call log's filters; every queryset it sees is already the tenant's."""

    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte", label="From",
                                             widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt", label="Until",
                                             widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    key = django_filters.ModelChoiceFilter(field_name="api_key", queryset=None, label="Key")
    model = django_filters.ChoiceFilter(method="by_model", label="Model")
    cache = django_filters.ChoiceFilter(choices=CallRecord.Cache.choices, label="Cache")
    route = django_filters.CharFilter(label="Route")
    status = django_filters.ChoiceFilter(method="by_status", label="Status",
                                         choices=[("ok", "succeeded"), ("error", "failed")])

    class Meta:
        model = CallRecord
        fields: list[str] = []

    def __init__(self, data, *, queryset, keys, models):
        super().__init__(data, queryset=queryset)
        self.filters["key"].queryset = keys
        self.filters["model"].extra["choices"] = [(m, m) for m in models]

    def by_model(self, queryset, name, value):
        # As models_seen names the choices (a failed call's is the model it asked for).
        return queryset.alias(model_shown=RawSQL(MODEL_SQL, ())).filter(model_shown=value)

    def by_status(self, queryset, name, value):
        return queryset.filter(status_code=200) if value == "ok" else queryset.exclude(status_code=200)
