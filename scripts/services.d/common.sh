# shellcheck shell=bash
# Shared helpers for scripts/services and its per-server modules (sourced, not run).
#
# A module scripts/services.d/NAME.sh defines, for its server NAME:
#   NAME_ADDR               "127.0.0.1:PORT" shown by status
#   NAME_install            idempotent; downloads/builds into $SERVICES_CACHE (kept across `down`)
#   NAME_start              starts the server in the background, writes its PID to "$(pidfile NAME)",
#                           logs to "$(logfile NAME)"; returns immediately
#   NAME_ready              exit 0 when the server really answers (a query, not just the port)
#   NAME_version            prints the server's version (called only when it is ready)
#   NAME_stop (optional)    graceful stop; the default sends SIGTERM to the PID file's process
#   NAME_provision (opt.)   idempotent set-up once the server answers (users, vhosts), after every `up`

: "${SERVICES_DIR:=$REPO_ROOT/.services}"
: "${SERVICES_CACHE:=$SERVICES_DIR/cache}"
SERVICES_RUN="$SERVICES_DIR/run"
SERVICES_LOGS="$SERVICES_DIR/logs"
SERVICES_DATA="$SERVICES_DIR/data"
mkdir -p "$SERVICES_CACHE" "$SERVICES_RUN" "$SERVICES_LOGS" "$SERVICES_DATA"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'services: %s\n' "$*" >&2; exit 1; }

pidfile() { printf '%s/%s.pid' "$SERVICES_RUN" "$1"; }
logfile() { printf '%s/%s.log' "$SERVICES_LOGS" "$1"; }

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_running PID: PID is a live process. A killed server whose parent does not reap it (here PID 1
# may not) stays a zombie that `kill -0` still finds, so the state in /proc decides.
pid_running() {
  local state
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

# pid_alive NAME: the process recorded by `up` for NAME is still running.
pid_alive() {
  local f; f=$(pidfile "$1")
  [[ -s $f ]] && pid_running "$(cat "$f")"
}

# wait_ready NAME SECONDS: poll NAME_ready until it succeeds; fail naming the server and its log.
wait_ready() {
  local name=$1 timeout=$2 waited=0
  until "${name}_ready" >/dev/null 2>&1; do
    if (( waited >= timeout * 2 )); then
      log "services: $name did not answer within ${timeout}s; last lines of $(logfile "$name"):"
      tail -n 20 "$(logfile "$name")" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.5; waited=$((waited + 1))
  done
}

# stop_pid NAME: SIGTERM the recorded process, wait up to 30 s, then SIGKILL.
stop_pid() {
  local f pid; f=$(pidfile "$1")
  [[ -s $f ]] || return 0
  pid=$(cat "$f")
  if pid_running "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do pid_running "$pid" || break; sleep 0.5; done
    if pid_running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

# kill_pid NAME: SIGKILL the recorded process, as a crash would, and wait until it is gone. Nothing
# is cleaned up (data, lock files): the next `up` must cope, as it would after a real crash.
kill_pid() {
  local f pid; f=$(pidfile "$1")
  [[ -s $f ]] || { log "$1: no PID recorded (not started by this script)"; return 0; }
  pid=$(cat "$f")
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do pid_running "$pid" || break; sleep 0.1; done
  rm -f "$f"
}

# as_user USER CMD...: run CMD as USER (servers such as PostgreSQL refuse to run as root).
as_user() {
  local user=$1; shift
  if [[ $(id -un) == "$user" ]]; then "$@"; else runuser -u "$user" -- "$@"; fi
}

# owned_data_dir NAME USER: a data directory for NAME owned by USER (servers such as PostgreSQL and
# RabbitMQ run as their own system user). It lives under $SERVICES_DATA; when USER cannot reach that
# path (a checkout under a private home), the data goes to /var/lib/livros-dados/<hash> and
# $SERVICES_DATA/NAME becomes a link to it.
owned_data_dir() {
  local name=$1 user=$2 dir="$SERVICES_DATA/$1" alt
  if [[ ! -e $dir ]]; then
    mkdir -p "$dir"
    if ! runuser -u "$user" -- test -x "$dir" 2>/dev/null; then
      rmdir "$dir"
      alt="/var/lib/livros-dados/$(printf '%s' "$SERVICES_DIR" | sha1sum | cut -c1-12)/$name"
      mkdir -p "$alt" && ln -s "$alt" "$dir"
    fi
  fi
  chown -R "$user:" "$(readlink -f "$dir")"
  readlink -f "$dir"
}

# apt_install PACKAGE...: install Debian packages without starting their services.
apt_install() {
  local policy=/usr/sbin/policy-rc.d created=""
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created=1; fi
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >&2
  local rc=$?
  [[ -n $created ]] && rm -f "$policy"
  return $rc
}
