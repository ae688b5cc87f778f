"""The audit trail's one write: the values a change actually changed."""

from collections.abc import Mapping

from django.contrib.auth.base_user import AbstractBaseUser

from .models import AuditEvent


def _plain(value):
    """A value as JSON can hold it (plans and other models by their name)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def audit_changes(*, tenant, actor, area: str, before: Mapping, after: Mapping, staff: bool = False) -> list[AuditEvent]:
    """One event per key whose value differs between `before` and `after` (unchanged keys
    leave no trace); `staff` marks a change our staff made for the tenant. Call it inside
    the transaction that made the change."""
    # An API key acts too (the management API's request.user): kept by its name, not a user.
    user = actor if isinstance(actor, AbstractBaseUser) else None
    who = (getattr(actor, "email", "") or "") if user else str(actor or "")
    events = [
        AuditEvent(tenant=tenant, actor=user, actor_email=who, staff=staff, area=area, field=name,
                   old_value=_plain(before.get(name)), new_value=_plain(after.get(name)))
        for name in after if _plain(before.get(name)) != _plain(after.get(name))
    ]
    return AuditEvent.objects.for_tenant(tenant).bulk_create(events) if events else []

