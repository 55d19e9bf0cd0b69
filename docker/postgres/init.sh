#!/bin/sh
# Run by the postgres image once, on an empty volume: the principals' roles (SCRAM verifiers, not
# passwords), the database owned by the operator, its schema and the workers' grants, all from the
# file `python -m bookstore.provision compose` wrote (mounted as a secret).
set -e
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres -f /run/secrets/init.sql
