"""Sharding by tenant, for one PostgreSQL and for a Citus cluster alike.

- `tables`: each table's role on Citus (distributed by tenant_id, reference, local), and
  `distribute()`, which applies them to a database with the citus extension (migration
  references/0012; on plain PostgreSQL and SQLite it does nothing).
- `keys`: PRIMARY KEY (tenant_id, id) and composite foreign keys for the distributed tables
  (migration references/0011), on any PostgreSQL.

The database backend for a cluster (`DATABASE_URL=citus://…`) is config/citus.
"""
