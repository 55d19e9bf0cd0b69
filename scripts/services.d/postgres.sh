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
  local tls=""
  if [[ -n ${SECURE:-} ]]; then
    # TLS, and nothing without it: pg_hba is first-match, so its `hostnossl ... reject` lines
    # come before every other; only the superuser, over the local socket, needs no password.
    secure_copy postgres postgres "$data/tls" || return 1
    printf '%s\n' 'local all postgres peer' 'hostnossl all all 0.0.0.0/0 reject' 'hostnossl all all ::/0 reject' \
      'hostssl all all 127.0.0.1/32 scram-sha-256' 'hostssl all all ::1/128 scram-sha-256' >"$data/pg_hba.conf"
    tls=" -c ssl=on -c ssl_cert_file=$data/tls/postgres.pem -c ssl_key_file=$data/tls/postgres.key"
    tls+=" -c ssl_min_protocol_version=TLSv1.2 -c password_encryption=scram-sha-256"
  fi
  as_user postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories='$data'$tls" \
    >>"$(logfile postgres)" 2>&1 || { cat "$data/server.log" >>"$(logfile postgres)"; return 1; }
  head -1 "$data/postmaster.pid" >"$(pidfile postgres)"
  ln -sf "$data/server.log" "$SERVICES_LOGS/postgres-server.log"
  [[ -z ${SECURE:-} ]] || return 0   # its roles and databases: postgres_provision
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

# _pg_superuser_script DATA DATABASE: run the SQL on stdin in DATABASE as the superuser (locally).
_pg_superuser_script() {
  as_user postgres "$(_pg_bin)/psql" -h "$1" -p 5432 -U postgres -d "$2" -tAq -v ON_ERROR_STOP=1 -f -
}

# _pg_sql SQL: SQL over TCP as a client would run it: as `bookstore`; on the secure stack as the
# superuser over the local socket (no password), after a TLS handshake proved the port answers.
_pg_sql() {
  if [[ -n ${SECURE:-} ]]; then
    local answer
    answer=$(PGSSLMODE=verify-full PGSSLROOTCERT=$(secure_ca) PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 \
      -p 5432 -U nobody -d postgres -w -c '' 2>&1) || true
    [[ $answer == *'no password supplied'* ]] || return 1
    _pg_superuser_sql "$(readlink -f "$SERVICES_DATA/postgres")" "$1"
  else
    PGPASSWORD=bookstore PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p 5432 -U bookstore -d bookstore -tAq -c "$1"
  fi
}

postgres_ready() { _pg_sql 'SELECT 1' >/dev/null; }

postgres_version() { _pg_sql 'SHOW server_version' | sed 's/^/PostgreSQL /; s/ (.*//'; }

# After every `up` of the secure stack: each principal's role (its password as a SCRAM verifier),
# each deployment's database owned by its operator, the schema made as that owner, the grants.
postgres_provision() {
  [[ -n ${SECURE:-} ]] || return 0
  local data db; data=$(readlink -f "$SERVICES_DATA/postgres")
  secure_provision postgres-roles | _pg_superuser_script "$data" postgres >/dev/null || return 1
  for db in bookstore bookstore_test; do
    secure_provision postgres-database "$db" | _pg_superuser_script "$data" "$db" >/dev/null || return 1
  done
}

postgres_stop() {
  local data="$SERVICES_DATA/postgres"
  pid_alive postgres || { rm -f "$(pidfile postgres)"; return 0; }
  as_user postgres "$(_pg_bin)/pg_ctl" -D "$(readlink -f "$data")" -m fast -w stop >/dev/null 2>&1 || stop_pid postgres
  rm -f "$(pidfile postgres)"
}

# reload-tls: the certificate copied again; a reload (SIGHUP) makes PostgreSQL read its TLS
# files for new connections.
postgres_reload_tls() {
  local data; data=$(owned_data_dir postgres postgres)
  secure_copy postgres postgres "$data/tls" && as_user postgres "$(_pg_bin)/pg_ctl" -D "$data" reload >/dev/null
}
