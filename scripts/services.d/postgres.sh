# shellcheck shell=bash
# PostgreSQL from Debian on 127.0.0.1:5432, own cluster under $SERVICES_DATA/postgres,
# role and database `bookstore` (password `bookstore`), as in the default POSTGRES_DSN; the role may
# create databases so that the tests keep their data apart (bookstore_test).
# shellcheck disable=SC2034  # read as ${!NAME_ADDR} by scripts/services
POSTGRES_ADDR="127.0.0.1:5432"
_pg_bin() {
  local v; v=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
  [[ -n $v ]] && printf '/usr/lib/postgresql/%s/bin' "$v"
}

postgres_install() {
  if [[ -z $(_pg_bin) ]]; then
    log "postgres: installing the Debian package"
    apt_install postgresql
  fi
}

postgres_start() {
  local bin data; bin=$(_pg_bin); data=$(owned_data_dir postgres postgres)
  # After a crash (kill -9) the lock files name a dead postmaster, possibly a zombie that
  # PostgreSQL's own liveness check takes for a running server: remove the stale ones.
  local lock
  for lock in "$data/postmaster.pid" "$data/.s.PGSQL.5432.lock"; do
    if [[ -s $lock ]] && ! pid_running "$(head -1 "$lock")"; then rm -f "$lock"; fi
  done
  if [[ ! -s $data/PG_VERSION ]]; then
    as_user postgres "$bin/initdb" -D "$data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
      >"$(logfile postgres)" 2>&1 || return 1
  fi
  as_user postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories='$data'" \
    >>"$(logfile postgres)" 2>&1 || { cat "$data/server.log" >>"$(logfile postgres)"; return 1; }
  head -1 "$data/postmaster.pid" >"$(pidfile postgres)"
  ln -sf "$data/server.log" "$SERVICES_LOGS/postgres-server.log"
  _pg_superuser_sql "$data" "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bookstore') THEN
        CREATE ROLE bookstore LOGIN CREATEDB PASSWORD 'bookstore';
      END IF; END \$\$; ALTER ROLE bookstore CREATEDB;" >>"$(logfile postgres)" 2>&1 || return 1
  if [[ -z $(_pg_superuser_sql "$data" "SELECT 1 FROM pg_database WHERE datname = 'bookstore'") ]]; then
    _pg_superuser_sql "$data" "CREATE DATABASE bookstore OWNER bookstore" >>"$(logfile postgres)" 2>&1
  fi
}

_pg_superuser_sql() {
  as_user postgres "$(_pg_bin)/psql" -h "$1" -p 5432 -U postgres -d postgres -tAq -v ON_ERROR_STOP=1 -c "$2"
}

postgres_ready() {
  PGPASSWORD=bookstore PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p 5432 -U bookstore -d bookstore -tAq -c 'SELECT 1' >/dev/null
}

postgres_version() {
  PGPASSWORD=bookstore psql -h 127.0.0.1 -p 5432 -U bookstore -d bookstore -tAq -c 'SHOW server_version' \
    | sed 's/^/PostgreSQL /; s/ (.*//'
}

postgres_stop() {
  local data="$SERVICES_DATA/postgres"
  pid_alive postgres || { rm -f "$(pidfile postgres)"; return 0; }
  as_user postgres "$(_pg_bin)/pg_ctl" -D "$(readlink -f "$data")" -m fast -w stop >/dev/null 2>&1 || stop_pid postgres
  rm -f "$(pidfile postgres)"
}
