#!/bin/bash
# First start: create the data directory, root password, database and user
# from the official mysql image's variables, run /docker-entrypoint-initdb.d.
# Later starts keep the data as it is.
set -euo pipefail

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock
# mysql:8.4's defaults where MariaDB 10.11's differ, so that whatever runs on the
# stand-in meets what users meet on the public image: binary logging on
# (log_bin=ON, basename binlog, server_id=1, ROW format; log_bin_trust_function_creators
# stays OFF in both), and utf8mb4 with a case- and accent-insensitive default collation.
# MariaDB 10.11 has no utf8mb4_0900_ai_ci; utf8mb4_unicode_520_ci is its nearest (UCA-based,
# _ai_ci). Arguments given to the container come after these, so they win, as on mysql:8.4.
MYSQL84_DEFAULTS=(
  --log-bin=binlog --server-id=1 --binlog-format=ROW
  --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_520_ci
)

sql_escape() { local s=${1//\\/\\\\}; printf '%s' "${s//\'/\'\'}"; }

# Used by initdb.d shell scripts, as in the official image.
docker_process_sql() { mysql --protocol=socket --socket="$SOCKET" -uroot "$@"; }

initialise() {
  if [ -z "${MYSQL_ROOT_PASSWORD:-}" ] && [ -z "${MYSQL_ALLOW_EMPTY_PASSWORD:-}" ] && [ -z "${MYSQL_RANDOM_ROOT_PASSWORD:-}" ]; then
    echo "error: database is uninitialized and password option is not specified: set MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD or MYSQL_RANDOM_ROOT_PASSWORD" >&2
    exit 1
  fi
  if [ -n "${MYSQL_RANDOM_ROOT_PASSWORD:-}" ]; then
    MYSQL_ROOT_PASSWORD=$(head -c 18 /dev/urandom | base64)
    echo "GENERATED ROOT PASSWORD: $MYSQL_ROOT_PASSWORD"
  fi
  mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db \
    --auth-root-authentication-method=normal >/dev/null
  # As the official image does, the temporary server gets the container's arguments, so
  # MYSQL_DATABASE is created with the server's default character set and collation.
  mysqld --user=mysql --datadir="$DATADIR" "${MYSQL84_DEFAULTS[@]}" "$@" \
    --skip-networking --socket="$SOCKET" &
  local pid=$!
  for _ in $(seq 60); do mysqladmin --socket="$SOCKET" -uroot ping >/dev/null 2>&1 && break; sleep 0.5; done
  local rootpw; rootpw=$(sql_escape "${MYSQL_ROOT_PASSWORD:-}")
  {
    # Set-up is not replicated, as in the official image.
    echo "SET @@SESSION.SQL_LOG_BIN=0;"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$rootpw';"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY '$rootpw';"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [ -n "${MYSQL_DATABASE:-}" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE}\`;"
    fi
    if [ -n "${MYSQL_USER:-}" ] && [ -n "${MYSQL_PASSWORD:-}" ]; then
      echo "CREATE USER '${MYSQL_USER}'@'%' IDENTIFIED BY '$(sql_escape "$MYSQL_PASSWORD")';"
      if [ -n "${MYSQL_DATABASE:-}" ]; then
        echo "GRANT ALL ON \`${MYSQL_DATABASE}\`.* TO '${MYSQL_USER}'@'%';"
      fi
    fi
    echo "FLUSH PRIVILEGES;"
  } | docker_process_sql
  export MYSQL_PWD="${MYSQL_ROOT_PASSWORD:-}"
  local f
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
      *.sql) echo "running $f"; docker_process_sql ${MYSQL_DATABASE:+"$MYSQL_DATABASE"} <"$f" ;;
      *) ;;
    esac
  done
  unset MYSQL_PWD
  mysqladmin --socket="$SOCKET" -uroot -p"${MYSQL_ROOT_PASSWORD:-}" shutdown
  wait "$pid" || true
  echo "database initialised"
}

# As in the official image, options alone (`docker run IMAGE --flag`) are mysqld's.
first="${1:-}"
if [ "${first:0:1}" = "-" ]; then set -- mysqld "$@"; fi
if [ "${1:-}" = "mysqld" ]; then
  shift
  if [ ! -d "$DATADIR/mysql" ]; then initialise "$@"; fi
  exec mysqld --user=mysql --datadir="$DATADIR" --bind-address=0.0.0.0 --skip-name-resolve \
    "${MYSQL84_DEFAULTS[@]}" "$@"
fi
exec "$@"
