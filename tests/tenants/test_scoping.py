import pytest

from apps.tenants.models import ApiKey, Membership
from apps.tenants.scoping import TenantScopeRequired
from tests import factories


@pytest.mark.parametrize("model", [ApiKey, Membership])
def test_query_without_tenant_raises(db, model):
    with pytest.raises(TenantScopeRequired):
        list(model.objects.all())
    with pytest.raises(TenantScopeRequired):
        model.objects.filter(pk=1).exists()
    with pytest.raises(TenantScopeRequired):
        model.objects.count()


def test_for_tenant_returns_only_that_tenants_rows(party):
    mine, _ = factories.make_key(party.tenant, "mine")
    theirs, _ = factories.make_key(party.other_tenant, "theirs")
    assert list(ApiKey.objects.for_tenant(party.tenant)) == [mine]
    assert list(ApiKey.objects.for_tenant(party.other_tenant.pk)) == [theirs]
    assert not ApiKey.objects.for_tenant(party.tenant).filter(pk=theirs.pk).exists()


def test_for_tenant_refuses_unsaved_tenant(db):
    from apps.tenants.models import Tenant

    with pytest.raises(TenantScopeRequired):
        ApiKey.objects.for_tenant(Tenant(name="x"))
