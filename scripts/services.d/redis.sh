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
  local data="$SERVICES_DATA/redis"
  mkdir -p "$data"
  redis-server --bind 127.0.0.1 --port 6379 --dir "$data" \
    --appendonly yes --appendfsync always --save "" \
    --daemonize yes --pidfile "$(pidfile redis)" --logfile "$(logfile redis)" >/dev/null
}

redis_ready() { [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; }

redis_version() {
  redis-cli -h 127.0.0.1 -p 6379 info server | tr -d '\r' | sed -n 's/^redis_version:/Redis /p'
}
