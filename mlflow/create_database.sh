#!/usr/bin/env bash
# Create (idempotently) the PostgreSQL role and database the MLflow server uses.
#
#   mlflow/create_database.sh [DB_NAME [DB_USER [DB_PASSWORD]]]   (defaults: mlflow mlflow mlflow)
#
# Runs psql as the PostgreSQL superuser: through `su postgres` when called as
# root, else as the current user (PGHOST/PGPORT/PGUSER choose the cluster).
set -euo pipefail

db="${1:-mlflow}"
user="${2:-mlflow}"
password="${3:-mlflow}"

admin_psql() {
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "psql -v ON_ERROR_STOP=1 -qAt -d postgres"
  else
    psql -v ON_ERROR_STOP=1 -qAt -d postgres
  fi
}

admin_psql <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user') THEN
    CREATE ROLE "$user" LOGIN PASSWORD '$password';
  END IF;
END \$\$;
SELECT format('CREATE DATABASE %I OWNER %I', '$db', '$user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\gexec
SQL
echo "database $db owned by $user is ready"
