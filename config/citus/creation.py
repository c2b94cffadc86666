"""Creating and dropping a database on a Citus cluster (the test database, the bench's).

A Citus database is one database per node, each with the extension, and the coordinator's
copy knows its workers. The workers are those of the coordinator's maintenance database
(`postgres`), where the cluster was set up (`citus_add_node`).
"""

import psycopg
from django.db.backends.postgresql import creation


def _node_params(settings_dict: dict, **override) -> dict:
    host, port = coordinator_address(settings_dict)
    params = {
        "host": host,
        "port": port,
        "user": settings_dict.get("USER") or None,
        "password": settings_dict.get("PASSWORD") or None,
        "dbname": "postgres",
        "autocommit": True,
    }
    params.update(override)
    return {key: value for key, value in params.items() if value is not None}


def coordinator_address(settings_dict: dict) -> tuple[str, int]:
    """The coordinator's host and port: the database settings' own."""
    return settings_dict.get("HOST") or "127.0.0.1", int(settings_dict.get("PORT") or 5432)


def workers(settings_dict: dict) -> list[tuple[str, int]]:
    with psycopg.connect(**_node_params(settings_dict)) as coordinator:
        return coordinator.execute(
            "SELECT nodename, nodeport FROM pg_dist_node "
            "WHERE groupid <> 0 AND noderole = 'primary' ORDER BY nodeid"
        ).fetchall()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_database(settings_dict: dict, name: str) -> None:
    """Create database `name` on the coordinator and every worker, with the extension, and
    tell the coordinator's copy where its workers are."""
    nodes = workers(settings_dict)
    if not nodes:
        raise RuntimeError(
            "The coordinator's postgres database lists no workers (pg_dist_node): "
            "is this a Citus cluster?"
        )
    coordinator_host, coordinator_port = coordinator_address(settings_dict)
    for host, port in [(coordinator_host, coordinator_port), *nodes]:
        with psycopg.connect(**_node_params(settings_dict, host=host, port=port)) as node:
            exists = node.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if exists.fetchone() is None:
                _each_node_itself(node)
                node.execute(f"CREATE DATABASE {_quoted(name)}")
    for host, port in nodes:
        params = _node_params(settings_dict, host=host, port=port, dbname=name)
        with psycopg.connect(**params) as worker:
            worker.execute("CREATE EXTENSION IF NOT EXISTS citus")
    with psycopg.connect(**_node_params(settings_dict, dbname=name)) as coordinator:
        coordinator.execute("CREATE EXTENSION IF NOT EXISTS citus")
        coordinator.execute(
            "SELECT citus_set_coordinator_host(%s, %s)", [coordinator_host, coordinator_port]
        )
        known = set(coordinator.execute("SELECT nodename, nodeport FROM pg_dist_node"))
        for host, port in nodes:
            if (host, port) not in known:
                coordinator.execute("SELECT citus_add_node(%s, %s)", [host, port])


def drop_database(settings_dict: dict, name: str) -> None:
    """Drop database `name` everywhere. WITH (FORCE): Citus keeps connections open to it."""
    for host, port in [coordinator_address(settings_dict), *workers(settings_dict)]:
        with psycopg.connect(**_node_params(settings_dict, host=host, port=port)) as node:
            _each_node_itself(node)
            node.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")


def _each_node_itself(node) -> None:
    """This session creates and drops databases on its own node only: Citus may pass them on
    to the workers (`citus.enable_create_database_propagation`), which this module visits
    one by one anyway (a passed-on DROP fails on a worker where a session is still open)."""
    node.execute(
        "SELECT set_config('citus.enable_create_database_propagation', 'off', false) "
        "WHERE EXISTS (SELECT 1 FROM pg_settings "
        "WHERE name = 'citus.enable_create_database_propagation')"
    )


class DatabaseCreation(creation.DatabaseCreation):
    def _execute_create_test_db(self, cursor, parameters, keepdb=False):
        name = parameters["dbname"].strip('"')
        if keepdb and self._database_exists(cursor, name):
            return
        settings_dict = self.connection.settings_dict
        drop_database(settings_dict, name)
        create_database(settings_dict, name)
        # A test database holds a few hundred rows: 4 shards per table instead of Citus's 32
        # make distributing and emptying its tables (transactional tests) several times
        # quicker. Every check of one shard per statement holds for any number.
        with psycopg.connect(**_node_params(settings_dict, dbname=name)) as coordinator:
            coordinator.execute(f"ALTER DATABASE {_quoted(name)} SET citus.shard_count = 4")

    def _destroy_test_db(self, test_database_name, verbosity):
        self.connection.close_pool()
        drop_database(self.connection.settings_dict, test_database_name)

    def _clone_test_db(self, suffix, verbosity, keepdb=False):
        raise NotImplementedError(
            "Citus makes databases from template1 only: run the suite with pytest-xdist "
            "(each worker creates its own test database), not Django's --parallel."
        )
