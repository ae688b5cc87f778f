from django.db import connection
from django.http import HttpResponse, JsonResponse

from . import metrics, orm
from .redis import async_client


def _database_ok() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone() == (1,)


async def healthz(request):
    checks = {}
    try:
        checks["database"] = "ok" if await orm.run(_database_ok) else "failing"
    except Exception as exc:  # any failure to reach the database is reported, not raised
        checks["database"] = f"failing: {exc.__class__.__name__}"
    try:
        checks["redis"] = "ok" if await async_client().ping() else "failing"
    except Exception as exc:
        checks["redis"] = f"failing: {exc.__class__.__name__}"
    # Without Redis the gateway still serves (rate limits fail open), so the process stays
    # in rotation, reported as degraded; without the database it cannot.
    if checks["database"] != "ok":
        return JsonResponse({"status": "failing", **checks}, status=503)
    return JsonResponse({"status": "ok" if checks["redis"] == "ok" else "degraded", **checks})


async def metrics_view(request):
    return HttpResponse(metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")
