"""A tenant keeps at least one owner, even when owners change each other at the same time."""

import threading

from django.db import connection

from apps.tenants import services
from apps.tenants.models import Membership
from tests import factories


def _concurrently(monkeypatch, *actions):
    """Runs each action in its own thread (own database connection), holding each one
    just after it counted the other owners until all have counted, as two requests
    arriving together would."""
    barrier = threading.Barrier(len(actions), timeout=5)
    real = services._owners_left

    def counted_then_wait(tenant, without):
        n = real(tenant, without)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass  # the other one blocked on a lock: then the rule is enforced
        return n

    monkeypatch.setattr(services, "_owners_left", counted_then_wait)
    errors = []

    def run(action):
        try:
            action()
        except Exception as exc:  # LastOwner is the expected refusal for one of them
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(a,)) for a in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return errors


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
