# shellcheck shell=bash
# The secure stack (`scripts/services up --secure`): every server TLS only, with authentication,
# a user per component holding only its rights (bookstore/principals.py, docs/security.md).
# Sourced before common.sh, because the mode picks the state directory: the secure stack's data,
# logs, certificates and secrets live in $SERVICES_DIR/secure (a plaintext and a secure stack never
# share data; the download cache is shared). A marker there, `up`, tells every later verb
# (status, env, stop, kill, down) which stack they act on, until `down` removes it.
#
# Certificates (a development CA) and secrets are made by bookstore/provision.py into
# $SERVICES_DIR/secure/pki and .../principals (one file per secret, 0600); servers get hashes only,
# and no password is ever on a command line.

_secure_pid_running() {
  local state
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

# _secure_running DIR: a server recorded in DIR/run still runs (its name on stdout).
_secure_running() {
  local f
  for f in "$1"/run/*.pid; do
    [[ -s $f ]] && _secure_pid_running "$(cat "$f")" && { basename "$f" .pid; return 0; }
  done
  return 1
}

# secure_mode CMD REQUESTED: set SERVICES_DIR (and SECURE=1) for the stack CMD acts on.
secure_mode() {
  local cmd=$1 requested=$2 other
  : "${SERVICES_DIR:=$REPO_ROOT/.services}"
  : "${SERVICES_CACHE:=$SERVICES_DIR/cache}"
  export SERVICES_CACHE
  SERVICES_BASE=$SERVICES_DIR
  SECURE=""
  if [[ -n $requested ]]; then
    if other=$(_secure_running "$SERVICES_BASE"); then
      printf 'services: the plaintext stack runs (%s): scripts/services down first\n' "$other" >&2; exit 1
    fi
    SECURE=1
  elif [[ -e $SERVICES_BASE/secure/up ]]; then
    if [[ $cmd == up ]]; then
      if other=$(_secure_running "$SERVICES_BASE/secure"); then
        printf 'services: the secure stack runs (%s): scripts/services up --secure, or down first\n' "$other" >&2; exit 1
      fi
      rm -f "$SERVICES_BASE/secure/up"   # nothing of it runs any more: the plaintext stack may start
    else
      SECURE=1
    fi
  fi
  if [[ -n $SECURE ]]; then SERVICES_DIR=$SERVICES_BASE/secure; fi
  export SERVICES_DIR SECURE
}

_secure_python() { printf '%s/.venv/bin/python' "$REPO_ROOT"; }

# secure_provision COMMAND ARGS...: bookstore/provision.py on this stack's state directory, for the
# single stack or the cluster (the one being started, or the one whose nodes run).
secure_provision() {
  local command=$1 stack=single; shift
  if [[ -n ${cluster:-} ]] || cluster_active; then stack=cluster; fi
  LIVROS_STACK=$stack "$(_secure_python)" -m bookstore.provision "$command" "$SERVICES_DIR" "$@"
}

# secure_kafka_client_properties: a Kafka client's settings as the operator over mutual TLS (the
# controllers' and brokers' own listeners), for the Java tools (scripts/kafka/Quorum.java).
secure_kafka_client_properties() {
  local file="$SERVICES_DIR/pki/operator-kafka.properties"
  printf '%s\n' security.protocol=SSL ssl.truststore.type=PEM "ssl.truststore.location=$(secure_ca)" \
    ssl.keystore.type=PEM "ssl.keystore.location=$SERVICES_DIR/pki/operator.bundle.pem" >"$file"
  printf '%s\n' "$file"
}

# Before the servers start: the virtualenv (the provisioning is Python), certificates, secrets.
secure_prepare() {
  [[ -n $SECURE ]] || return 0
  "$REPO_ROOT/scripts/bootstrap" >&2 || die "could not set up the virtualenv (scripts/bootstrap)"
  secure_provision init || die "could not make the certificates and secrets (bookstore/provision.py)"
}

secure_mark_up() { if [[ -n $SECURE ]]; then : >"$SERVICES_DIR/up"; fi; }
secure_mark_down() { rm -f "$SERVICES_BASE/secure/up"; }

secure_status_line() {
  if [[ -n $SECURE ]]; then
    printf 'mode: secure (TLS only, a user per component: scripts/services env --as PRINCIPAL)\n'
  else
    printf 'mode: plaintext on loopback, no authentication (development; up --secure for TLS and users)\n'
  fi
}

# secure_env [--as PRINCIPAL]
secure_env() {
  local principal=operator
  if [[ ${1:-} == --as ]]; then
    [[ -n ${2:-} ]] || die "env --as needs a principal's name (e.g. bridge, worker-postgres)"
    principal=$2; shift 2
  fi
  (( $# == 0 )) || die "env takes only --as PRINCIPAL (got: $*)"
  secure_provision env "$principal"
}

# secure_ca: the CA file every client of the secure stack trusts.
secure_ca() { printf '%s/pki/ca.pem' "$SERVICES_DIR"; }

# secure_copy NAME USER DIR: NAME's certificate and key (and the CA) copied into DIR for a
# server that runs as USER and reads them as itself (keys 0600, owned by USER).
secure_copy() {
  local name=$1 user=$2 dir=$3
  mkdir -p "$dir"
  install -m 0644 -o "$user" "$SERVICES_DIR/pki/ca.pem" "$dir/ca.pem"
  install -m 0644 -o "$user" "$SERVICES_DIR/pki/$name.pem" "$dir/$name.pem"
  install -m 0600 -o "$user" "$SERVICES_DIR/pki/$name.key" "$dir/$name.key"
}
