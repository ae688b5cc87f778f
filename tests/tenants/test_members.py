"""A tenant keeps at least one owner, even when owners change each other at the same time."""

from apps.tenants import services
from apps.tenants.models import Membership
from tests import factories
from tests.together import together


def _concurrently(monkeypatch, *actions):
    """Each action held just after it counted the other owners until all have counted (one
    refused with LastOwner is the expected outcome)."""
    return together(monkeypatch, services, "_owners_left", *actions)


def test_two_owners_removing_each_other_leave_an_owner(transactional_db, monkeypatch):
    tenant, alice = factories.make_tenant("Two Owners")
    bob = factories.add_member(tenant, "bob-owner@example.com", role=Membership.Role.OWNER)
    m_alice = Membership.objects.for_tenant(tenant).get(user=alice)
    m_bob = Membership.objects.for_tenant(tenant).get(user=bob)

    _concurrently(monkeypatch,
                  lambda: services.member_remove(tenant=tenant, membership_id=m_bob.pk),
                  lambda: services.member_remove(tenant=tenant, membership_id=m_alice.pk))

    owners = Membership.objects.for_tenant(tenant).filter(role=Membership.Role.OWNER).count()
    assert owners >= 1, "both owners were removed: nobody can manage the tenant any more"


def test_two_owners_demoting_each_other_leave_an_owner(transactional_db, monkeypatch):
    tenant, alice = factories.make_tenant("Two Owners Demote")
    bob = factories.add_member(tenant, "bob-owner2@example.com", role=Membership.Role.OWNER)
    m_alice = Membership.objects.for_tenant(tenant).get(user=alice)
    m_bob = Membership.objects.for_tenant(tenant).get(user=bob)

    _concurrently(monkeypatch,
                  lambda: services.member_set_role(tenant=tenant, membership_id=m_bob.pk, role="member"),
                  lambda: services.member_set_role(tenant=tenant, membership_id=m_alice.pk, role="admin"))

    owners = Membership.objects.for_tenant(tenant).filter(role=Membership.Role.OWNER).count()
    assert owners >= 1, "both owners were demoted: nobody can change owners any more"
