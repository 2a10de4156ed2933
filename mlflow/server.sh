#!/usr/bin/env bash
# Start an MLflow tracking server: PostgreSQL backend store, proxied artifacts.
#
#   mlflow/create_database.sh            # once: role + database in PostgreSQL
#   mlflow/server.sh                     # serves http://127.0.0.1:5000
#   export MLFLOW_TRACKING_URI=http://127.0.0.1:5000   # the only change for training code
#
# Clients never touch the artifact folder: artifacts go through the server
# (--serve-artifacts), which stores them under MLFLOW_ARTIFACTS_DIR. Settings
# (environment, defaults in brackets):
#   MLFLOW_BACKEND_STORE_URI  [postgresql+psycopg2://mlflow:mlflow@127.0.0.1:5432/mlflow]
#   MLFLOW_ARTIFACTS_DIR      [./mlflow-artifacts]
#   MLFLOW_HOST               [127.0.0.1]  (0.0.0.0 only behind a firewall/proxy: there is no auth)
#   MLFLOW_PORT               [5000]
#   MLFLOW_WORKERS            [1]
#   MLFLOW_SERVER_ENABLE_JOB_EXECUTION [false]
# Any extra arguments are passed on to `mlflow server`.
set -euo pipefail

backend="${MLFLOW_BACKEND_STORE_URI:-postgresql+psycopg2://mlflow:mlflow@127.0.0.1:5432/mlflow}"
artifacts="${MLFLOW_ARTIFACTS_DIR:-./mlflow-artifacts}"
mkdir -p "$artifacts"
# MLflow's job execution (GenAI evaluation/scorer jobs) starts a pool of huey
# consumer processes; convforge uses none of it, so it is off unless asked for.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
mlflow_bin="$(command -v mlflow || true)"
[ -n "$mlflow_bin" ] || mlflow_bin="$(dirname "$0")/../.venv/bin/mlflow"

exec "$mlflow_bin" server \
  --backend-store-uri "$backend" \
  --serve-artifacts --artifacts-destination "$(cd "$artifacts" && pwd)" \
  --host "${MLFLOW_HOST:-127.0.0.1}" --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-1}" "$@"
