"""A web process loads the ONNX export and never imports torch or transformers (they
cost about 20 s and 300 MB per worker); the export is made once, by
`manage.py export_embedder` (bootstrap and the image build run it)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from apps.cache import embedder as embedder_module

ROOT = Path(__file__).resolve().parent.parent.parent

PROBE = """
import asyncio, sys
import django
from django.core.asgi import get_asgi_application
get_asgi_application()
import akaplatform.asgi
from apps.core.lifecycle import run_startup
asyncio.run(run_startup())
from apps.cache.embedder import embedder
assert embedder().embed(["hello"]).shape == (1, 384)
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
print("HEAVY", heavy)
"""


def test_a_web_process_starts_without_torch(db, test_database_url):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "akaplatform.settings", "PYTHONPATH": str(ROOT),
           "DATABASE_URL": test_database_url}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr[-3000:]


def test_a_missing_export_is_a_clear_error_not_an_export(settings, tmp_path):
    settings.AKA_MODEL_DIR = tmp_path
    with pytest.raises(ImproperlyConfigured, match="export_embedder"):
        embedder_module.OnnxEmbedder()


def test_export_embedder_is_idempotent(settings, tmp_path, capsys):
    settings.AKA_MODEL_DIR = tmp_path
    target = embedder_module.export_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"already exported")
    call_command("export_embedder")
    assert target.read_bytes() == b"already exported"
    assert "already" in capsys.readouterr().out
