"""The client's first verdict on a cheap answer served without a judge reaches the
quality budget, against the prediction the ledger kept for it; other verdicts do not."""

import pytest

from apps.routing import services
from apps.routing.services import QualityBudget, feedback_record

pytestmark = pytest.mark.django_db


def test_only_first_verdicts_on_unjudged_cheap_answers_reach_the_budget(party, monkeypatch):
    spent = QualityBudget()
    monkeypatch.setattr(services, "budget", spent)
    tenant = party.tenant.pk

    def verdict(request_id, score, **call):
        feedback_record(tenant_id=tenant, request_id=request_id, score=score, **call)

    for i in range(5):
        verdict(f"req_cheap{i}", -1.0, route="cheap", predicted=0.9)
    verdict("req_cheap0", 1.0, route="cheap", predicted=0.9)                       # a changed mind: counted once
    verdict("req_judged", -1.0, route="cheap", speculation="cascade", predicted=0.9)  # a judge passed it
    verdict("req_strong", -1.0, route="strong", predicted=0.9)
    verdict("req_explored", -1.0, route="explore", predicted=0.9)
    verdict("req_unrouted", -1.0)
    assert spent.misses == {tenant: (pytest.approx(4.5), 5)}
    assert spent.optimism(tenant) == pytest.approx(0.3)  # 0.9 short on average, held to the bound
