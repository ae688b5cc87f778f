from akaplatform.celery import app

from .rollups import rollups_refresh


@app.task(name="dashboard.refresh_rollups")
def refresh_rollups() -> str:
    """Brings the dashboard's rollups up to the last complete hour; safe to run twice."""
    return rollups_refresh().isoformat()
