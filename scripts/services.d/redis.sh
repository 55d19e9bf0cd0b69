# shellcheck shell=bash
# Redis from Debian on 127.0.0.1:6379 with the append-only file on: orders live in Redis,
# so it is a primary store, not a cache. appendfsync always: a write is on disk before Redis
# answers it. With everysec, Redis answers writes it has not yet handed to the kernel while a
# background fsync is slow (for up to 2 s), so a killed Redis lost orders it had acknowledged
# (tests/integration/test_faults.py, kill -9 mid-stream).
# shellcheck disable=SC2034  # read as ${!NAME_ADDR} by scripts/services
REDIS_ADDR="127.0.0.1:6379"

redis_install() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  log "redis: installing the Debian package"
  apt_install redis-server
}

redis_start() {
  local data="$SERVICES_DATA/redis" listen=(--port 6379)
  mkdir -p "$data"
  if [[ -n ${SECURE:-} ]]; then
    # TLS only (port 0: no plaintext listener); clients authenticate as ACL users (their
    # certificates are not asked for); `default` is off, so nobody is anonymous.
    secure_copy redis root "$data/tls" || return 1
    secure_provision redis-acl "$data/users.acl" || return 1
    listen=(--port 0 --tls-port 6379 --tls-cert-file "$data/tls/redis.pem" --tls-key-file "$data/tls/redis.key"
            --tls-ca-cert-file "$data/tls/ca.pem" --tls-auth-clients no --aclfile "$data/users.acl")
  fi
  redis-server --bind 127.0.0.1 "${listen[@]}" --dir "$data" \
    --appendonly yes --appendfsync always --save "" \
    --daemonize yes --pidfile "$(pidfile redis)" --logfile "$(logfile redis)" >/dev/null
}

# _redis_cli ARGS...: redis-cli against the stack; on the secure one over TLS as the operator
# (the password from its secret file, in REDISCLI_AUTH: never on the command line).
_redis_cli() {
  if [[ -n ${SECURE:-} ]]; then
    REDISCLI_AUTH=${_REDIS_AS:+$(cat "$SERVICES_DIR/principals/operator/redis.password")} \
      redis-cli -h 127.0.0.1 -p 6379 --tls --cacert "$(secure_ca)" ${_REDIS_AS:+--user operator} "$@"
  else
    redis-cli -h 127.0.0.1 -p 6379 "$@"
  fi
}

# Ready: PONG, or on the secure stack the refusal of an anonymous client (over verified TLS).
redis_ready() { [[ $(_redis_cli ping 2>/dev/null) == @(PONG|NOAUTH*) ]]; }

redis_version() {
  _REDIS_AS=1 _redis_cli info server | tr -d '\r' | sed -n 's/^redis_version:/Redis /p'
}

# After every `up` of the secure stack: the ACL users again (the table may have changed).
redis_provision() {
  [[ -n ${SECURE:-} ]] || return 0
  secure_provision redis-acl "$SERVICES_DATA/redis/users.acl" && _REDIS_AS=1 _redis_cli acl load >/dev/null
}

# reload-tls: the certificate copied again; setting the TLS files (to the same paths) makes
# Redis build its TLS context anew for new connections.
redis_reload_tls() {
  local tls="$SERVICES_DATA/redis/tls"
  secure_copy redis root "$tls" &&
    _REDIS_AS=1 _redis_cli config set tls-cert-file "$tls/redis.pem" tls-key-file "$tls/redis.key" >/dev/null
}
