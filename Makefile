# make demo: install, start every service, seed a demo tenant, run a sample workload.
# make test: install, start the data services, run the whole test suite.
# make stop: stop everything make demo or make test started.
# make manage ARGS="list_tenants": a manage.py command with the services and their env.
.PHONY: bootstrap migrate demo test stop manage bench-overhead bench-cache-quality bench-cache-scale bench-dashboard \
	bench-billing bench-routing bench-savings bench-startup

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

# manage.py alone lacks the environment (database, Redis, secret) the services provide.
manage: bootstrap
	@$(PY) scripts/services.py run -- $(PY) manage.py $(ARGS)

stop:
	@if [ -x $(PY) ]; then $(PY) scripts/services.py stop; fi

bench-overhead: migrate
	@$(PY) scripts/services.py run -- $(PY) bench/overhead.py

bench-startup: migrate
	@$(PY) scripts/services.py run -- $(PY) bench/startup.py

bench-cache-quality: migrate
	@$(PY) scripts/services.py run -- $(PY) bench/cache_quality.py

bench-cache-scale: bootstrap
	@$(PY) scripts/services.py run -- $(PY) bench/cache_scale.py

# Builds its own database; prints every dashboard page's server time at 1M calls.
bench-dashboard: bootstrap
	@$(PY) scripts/services.py run -- $(PY) bench/dashboard.py
bench-billing: migrate
	@$(PY) scripts/services.py run -- $(PY) bench/billing.py

# ARGS: a data directory and flags (python bench/routing.py --help); default ../shared/data/routellm.
bench-routing: migrate
	@$(PY) scripts/services.py run -- $(PY) bench/routing.py $(ARGS)

bench-savings: migrate
	@$(PY) scripts/services.py run -- $(PY) bench/savings.py $(ARGS)
