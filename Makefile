# make demo: install, start every service, seed a demo tenant, run a sample workload.
# make test: install, start the data services, run the whole test suite.
# make stop: stop everything make demo or make test started.
.PHONY: bootstrap migrate demo test stop bench-overhead bench-cache-quality bench-cache-scale

PY := .venv/bin/python

bootstrap:
	@bash scripts/bootstrap.sh

# The benches that go through the gateway need the platform's own database schema.
migrate: bootstrap
	@$(PY) scripts/services.py run -- $(PY) manage.py migrate --noinput -v 0

demo: bootstrap
	@$(PY) scripts/demo.py

test: bootstrap
	@$(PY) scripts/services.py run -- $(PY) -m pytest $(PYTEST_ARGS)

stop:
	@if [ -x $(PY) ]; then $(PY) scripts/services.py stop; fi

bench-overhead: migrate
	@$(PY) scripts/services.py run -- $(PY) bench/overhead.py

bench-cache-quality: migrate
	@$(PY) scripts/services.py run -- $(PY) bench/cache_quality.py

bench-cache-scale: bootstrap
	@$(PY) scripts/services.py run -- $(PY) bench/cache_scale.py
