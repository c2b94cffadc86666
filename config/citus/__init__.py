"""The `citus://` database backend: PostgreSQL's, plus databases made on every node of the
cluster (the test database, the bench's). Table roles and keys: common/citus. README, "From
one PostgreSQL to Citus", says how to move an installation."""
