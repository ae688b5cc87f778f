"""Moving the test database along the migration graph, for tests of data migrations."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate_to(*targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(list(targets))


def migrate_to_latest() -> None:
    # Going back to an early migration also undid every later one, in any app.
    migrate_to(*MigrationExecutor(connection).loader.graph.leaf_nodes())
