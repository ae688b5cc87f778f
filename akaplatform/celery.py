"""The Celery app. `celery -A akaplatform` finds it here, and the apps' tasks modules are
bound to it; nothing else imports it until a task is sent. A web worker that sends none
never holds Celery and kombu (7 MB RSS each, bench/startup), so akaplatform/__init__.py
does not import this module as Celery's Django guide suggests."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")

app = Celery("akaplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
