# make demo: install, start every service, seed a demo tenant, run a sample workload.
# make test: install, start the data services, run the whole test suite.
# make stop: stop everything make demo or make test started.
# make manage ARGS="list_tenants": a manage.py command with the services and their env.
.PHONY: bootstrap migrate demo test stop manage bench-overhead bench-cache-quality bench-cache-scale bench-dashboard \
	bench-billing bench-ledger bench-routing bench-savings bench-faults routing-models bench-startup \
	bench-embed-batch

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

bench-embed-batch: bootstrap
	@$(PY) scripts/services.py run -- $(PY) bench/embed_batch.py

bench-cache-quality: migrate
	@$(PY) scripts/services.py run -- $(PY) bench/cache_quality.py

# Semantic hits through the gateway at 1 to 100,000 entries per context (the contexts stay for the next run).
bench-cache-scale: migrate
	@$(PY) scripts/services.py run -- $(PY) bench/cache_scale.py --profile

# Builds its own database; prints every dashboard page's server time at 1M calls.
bench-dashboard: bootstrap
	@$(PY) scripts/services.py run -- $(PY) bench/dashboard.py
bench-billing: migrate
	@$(PY) scripts/services.py run -- $(PY) bench/billing.py

# Builds its own database: 10M ledger rows over 1,000 tenants (about 12 minutes at load 10 to 17 on 2 cores);
# the insert rate on the empty and the full ledger, and PASS/FAIL per page query (200 ms at p95).
# ARGS: flags (python bench/ledger.py --help), for example --rows 1000000 or --database bench_mine.
bench-ledger: bootstrap
	@$(PY) scripts/services.py run -- $(PY) bench/ledger.py $(ARGS)

# ARGS: a data directory and flags (python bench/routing.py --help); default ../shared/data/routellm.
bench-routing: migrate
	@$(PY) scripts/services.py run -- $(PY) bench/routing.py $(ARGS)

bench-savings: migrate
	@$(PY) scripts/services.py run -- $(PY) bench/savings.py $(ARGS)

# Starts its own PostgreSQL, Redis, simulator, server, worker and beat (it kills and restarts
# them); loopback only, about six minutes; exits non-zero if the accounting is not exact.
bench-faults: bootstrap
	@$(PY) bench/faults.py $(ARGS)

# Refits the router's shipped models on the training half of ../shared/data/routellm: the
# learned math judge (and its held-out figures) and the per-subject priors.
routing-models: migrate
	@$(PY) bench/judge_gsm8k.py --train
	@$(PY) scripts/services.py run -- $(PY) bench/routing_priors.py
