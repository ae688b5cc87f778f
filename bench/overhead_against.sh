#!/usr/bin/env bash
# bench/overhead for an earlier commit and for this checkout, alternating, in one run on one
# machine (the machines are shared and noisy: compare the two within a run, not across runs).
#   bash bench/overhead_against.sh REV [ROUNDS]      (after `make migrate`)
set -euo pipefail
cd "$(dirname "$0")/.."
rev=$1 rounds=${2:-2}
py=$PWD/.venv/bin/python
old=$(mktemp -d)
trap 'git worktree remove --force "$old"' EXIT
git worktree add -q --detach "$old" "$rev"
ln -s "$PWD/.venv" "$old/.venv"
# The earlier commit gets a database of its own, migrated to its own schema.
db_url=$($py scripts/services.py env | sed -n "s/^export DATABASE_URL=//p" | tr -d "'")
old_db=${db_url%/*}/aka_bench_before
$py scripts/services.py run -- $py -c "
import psycopg
with psycopg.connect('${db_url%/*}/postgres', autocommit=True) as c:
    if not c.execute(\"SELECT 1 FROM pg_database WHERE datname = 'aka_bench_before'\").fetchone():
        c.execute('CREATE DATABASE aka_bench_before')"
in_old() { (cd "$old" && $py "$OLDPWD/scripts/services.py" run -- env DATABASE_URL="$old_db" AKA_MODEL_DIR="$OLDPWD/.local/models" "$@"); }
in_old $py manage.py migrate --noinput -v 0
for round in $(seq "$rounds"); do
  echo "=== $rev, round $round"; in_old $py bench/overhead.py
  echo "=== this checkout, round $round"; $py scripts/services.py run -- $py bench/overhead.py
done
