#!/bin/bash
# Runs once, when the postgres image initialises an empty data volume
# (/docker-entrypoint-initdb.d), as the superuser. One role per job, none superuser, none
# BYPASSRLS:
#   temporal     may create databases: the temporal-schema one-shot creates and owns
#                `temporal` and `temporal_visibility` (its schema needs the btree_gin
#                extension, which PostgreSQL 13+ lets a database owner create);
#   app_owner    owns the `app` database and so every table `durable migrate` creates in it:
#                the migrating role, used by the `migrate` one-shot and nothing else;
#   durable_app  NOLOGIN: what the product's tables grant (row-level security binds it);
#   app          the login of the worker and the API: a member of durable_app and nothing
#                else, not the owner of anything. NOINHERIT: it holds no privilege until a
#                transaction takes the durable_app role (store/_org.py does, with the org), so
#                a query outside one reads no table at all.
# Passwords come from TEMPORAL_DB_PASSWORD, APP_OWNER_DB_PASSWORD and APP_DB_PASSWORD.
# Changing them later does not rerun this script: ALTER ROLE ... PASSWORD by hand, or start
# from an empty volume. PGHOST/PGPORT, when set, point it at another server (the tests do).
set -e

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    --set temporal_password="${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD is not set}" \
    --set owner_password="${APP_OWNER_DB_PASSWORD:?APP_OWNER_DB_PASSWORD is not set}" \
    --set app_password="${APP_DB_PASSWORD:?APP_DB_PASSWORD is not set}" <<'SQL'
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
CREATE ROLE app_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS
    PASSWORD :'owner_password';
CREATE ROLE durable_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE app LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS
    IN ROLE durable_app PASSWORD :'app_password';
CREATE DATABASE app OWNER app_owner;
REVOKE ALL ON DATABASE app FROM PUBLIC;
GRANT CONNECT ON DATABASE app TO app;
SQL
# The app role may use the schema, never create in it (PostgreSQL 15+ already withholds CREATE
# from PUBLIC; this says so on older servers too).
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname app <<'SQL'
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO app_owner;
SQL
