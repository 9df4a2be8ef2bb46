#!/bin/bash
# Runs once, when the postgres image initialises an empty data volume
# (/docker-entrypoint-initdb.d), as the superuser. It creates one role per tenant of this
# server, so neither can touch the other's data:
#   temporal  may create databases: the temporal-schema one-shot creates and owns
#             `temporal` and `temporal_visibility` (its schema needs the btree_gin extension,
#             which PostgreSQL 13+ lets a database owner create);
#   app       owns the `app` database, where `durable migrate` creates the product's tables.
# Passwords come from TEMPORAL_DB_PASSWORD and APP_DB_PASSWORD. Changing them later does not
# rerun this script: ALTER ROLE ... PASSWORD by hand, or start from an empty volume.
set -e

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set temporal_password="${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD is not set}" \
    --set app_password="${APP_DB_PASSWORD:?APP_DB_PASSWORD is not set}" <<'SQL'
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
CREATE ROLE app LOGIN PASSWORD :'app_password';
CREATE DATABASE app OWNER app;
REVOKE ALL ON DATABASE app FROM PUBLIC;
SQL
