"""A tenant keeps at least one owner, even when owners change each other at the same time."""

import pytest

from apps.tenants import services
from apps.tenants.models import Membership
from tests import factories
from tests.together import together


@pytest.mark.parametrize(("change", "role"), [("remove", None), ("demote", "member"), ("demote", "admin")])
def test_two_owners_changing_each_other_at_once_leave_one_owner(transactional_db, monkeypatch, change, role):
    """Each change is held just after it counted the other owners until both have counted,
    as two requests arriving together would: one goes through, the other is refused."""
    tenant, alice = factories.make_tenant()
    bob = factories.add_member(tenant, f"bob-{change}-{role}@example.com", role=Membership.Role.OWNER)
    memberships = [Membership.objects.for_tenant(tenant).get(user=user) for user in (alice, bob)]

    def action(membership):
        if change == "remove":
            return lambda: services.member_remove(tenant=tenant, membership_id=membership.pk)
        return lambda: services.member_set_role(tenant=tenant, membership_id=membership.pk, role=role)

    errors = together(monkeypatch, services, "_owners_left", *(action(m) for m in reversed(memberships)))

    assert [type(error) for error in errors] == [services.LastOwner]
    owners = Membership.objects.for_tenant(tenant).filter(role=Membership.Role.OWNER).count()
    assert owners == 1, "both owners went: nobody can change owners any more"
