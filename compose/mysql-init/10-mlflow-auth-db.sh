#!/bin/bash
# Runs once, on the database's first start (the official mysql image runs
# /docker-entrypoint-initdb.d/*.sh then). Creates the database of MLflow's
# basic-auth app beside the tracking database and grants it to MYSQL_USER.
set -eu
auth_db="${MLFLOW_AUTH_DB_NAME:-mlflow_auth}"
MYSQL_PWD="${MYSQL_ROOT_PASSWORD}" mysql --protocol=socket -uroot <<SQL
CREATE DATABASE IF NOT EXISTS \`${auth_db}\`;
GRANT ALL ON \`${auth_db}\`.* TO '${MYSQL_USER}'@'%';
SQL
