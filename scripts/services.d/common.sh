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
#
# The cluster nodes kafka-N and rabbitmq-N (scripts/services.d/cluster.sh) have the same
# operations as functions of their number: kafka_node_start N, rabbitmq_node_ready N, ...;
# `svc OP NAME` calls the right one for any name.

: "${SERVICES_DIR:=$REPO_ROOT/.services}"
: "${SERVICES_CACHE:=$SERVICES_DIR/cache}"
SERVICES_RUN="$SERVICES_DIR/run"
SERVICES_LOGS="$SERVICES_DIR/logs"
SERVICES_DATA="$SERVICES_DIR/data"
mkdir -p "$SERVICES_CACHE" "$SERVICES_RUN" "$SERVICES_LOGS" "$SERVICES_DATA"

# RabbitMQ vhosts besides the product's `/`: the tests' and the benchmarks'. They purge their
# queues freely there without touching the tasks of a stack that runs alongside.
# shellcheck disable=SC2034  # read by rabbitmq.sh and cluster.sh
RABBITMQ_OWN_VHOSTS=(bookstore_test bookstore_bench)

log() { printf '%s\n' "$*" >&2; }
die() { printf 'services: %s\n' "$*" >&2; exit 1; }

pidfile() { printf '%s/%s.pid' "$SERVICES_RUN" "$1"; }
logfile() { printf '%s/%s.log' "$SERVICES_LOGS" "$1"; }

# port_open PORT [HOST]: something accepts TCP connections on HOST:PORT (default 127.0.0.1).
port_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# svc OP NAME: run NAME's operation OP: NAME_OP for a single server, PREFIX_node_OP N for the
# cluster node PREFIX-N (kafka-2 -> kafka_node_ready 2).
svc() {
  local op=$1 name=$2
  case $name in
    kafka-[0-9]|rabbitmq-[0-9]) "${name%-*}_node_$op" "${name##*-}" ;;
    *) "${name}_$op" ;;
  esac
}

# svc_has OP NAME: NAME's module defines the (optional) operation OP.
svc_has() {
  case $2 in
    kafka-[0-9]|rabbitmq-[0-9]) declare -F "${2%-*}_node_$1" >/dev/null ;;
    *) declare -F "${2}_$1" >/dev/null ;;
  esac
}

# svc_addr NAME: the address `status` shows for NAME.
svc_addr() {
  local var
  case $1 in
    kafka-[0-9]|rabbitmq-[0-9]) "${1%-*}_node_addr" "${1##*-}" ;;
    *) var="${1^^}_ADDR"; printf '%s\n' "${!var}" ;;
  esac
}

# cgroup_for NAME: with SERVICES_CGROUP set (a directory in a writable cgroup2 hierarchy, as
# scripts/in-netns sets it), create $SERVICES_CGROUP/NAME and print it; otherwise print nothing.
# A launcher writes its own PID to CGROUP/cgroup.procs before it execs the server, so every
# process of that server (and only those) is in the cgroup nftables can match (`services cut`).
cgroup_for() {
  [[ -n ${SERVICES_CGROUP:-} ]] || return 0
  [[ -f $SERVICES_CGROUP/cgroup.procs || -f $(dirname "$SERVICES_CGROUP")/cgroup.procs ]] ||
    { log "SERVICES_CGROUP=$SERVICES_CGROUP is not in a cgroup2 hierarchy"; return 1; }
  mkdir -p "$SERVICES_CGROUP/$1" || return 1
  printf '%s\n' "$SERVICES_CGROUP/$1"
}

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
  until svc ready "$name" >/dev/null 2>&1; do
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
