import hashlib
import re

from django.db import connection

from apps.tenants import keys
from apps.tenants.models import ApiKey
from tests import factories


def test_issued_key_has_the_documented_shape(db):
    tenant, _ = factories.make_tenant()
    key, raw = factories.make_key(tenant)
    assert re.fullmatch(r"aka_[A-Za-z0-9_-]{43}", raw)
    assert key.prefix == raw[:12]
    assert key.secret_hash == hashlib.sha256(raw.encode()).hexdigest()


def test_secret_is_never_stored_in_clear(db):
    tenant, _ = factories.make_tenant()
    _, raw = factories.make_key(tenant)
    secret_part = raw[len(keys.KEY_PREFIX):]
    with connection.cursor() as cur:
        cur.execute("SELECT row_to_json(k)::text FROM tenants_apikey k")
        dumped = " ".join(r[0] for r in cur.fetchall())
    assert secret_part not in dumped
    assert ApiKey.objects.for_tenant(tenant).get().secret_hash in dumped


def test_two_keys_never_collide(db):
    tenant, _ = factories.make_tenant()
    raws = {factories.make_key(tenant)[1] for _ in range(20)}
    assert len(raws) == 20
