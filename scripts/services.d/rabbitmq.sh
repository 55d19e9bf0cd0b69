# shellcheck shell=bash
# RabbitMQ from Debian on 127.0.0.1:5672 (guest/guest works on loopback), node rabbit@localhost,
# database and logs under $SERVICES_DATA/rabbitmq. Runs as the rabbitmq system user.
# Besides the default vhost `/` (the product's), RABBITMQ_OWN_VHOSTS (common.sh).
# shellcheck disable=SC2034  # read as ${!NAME_ADDR} by scripts/services
if [[ -n ${SECURE:-} ]]; then RABBITMQ_ADDR="127.0.0.1:5671"; else RABBITMQ_ADDR="127.0.0.1:5672"; fi

_rabbitmq_env() {
  local data=$1
  # secure: its configuration file (TLS listener only, users from definitions; rabbitmq_start)
  # and the Erlang distribution (rabbitmqctl's link to the node, and a cluster's every replica)
  # on TLS with peers verified both ways, for the node and the CLI tools alike
  if [[ -n ${SECURE:-} ]]; then
    local dist; dist="$(_rabbitmq_dist_tls "$data") -kernel inet_dist_use_interface {127,0,0,1}"
    printf '%s\n' "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=$dist" "RABBITMQ_CTL_ERL_ARGS=$dist"
  fi
  printf '%s\n' "RABBITMQ_CONFIG_FILE=$data/rabbitmq.conf"
  printf '%s\n' HOME=/var/lib/rabbitmq RABBITMQ_NODENAME=rabbit@localhost \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=5672 \
    RABBITMQ_DIST_PORT=25672 ERL_EPMD_ADDRESS=127.0.0.1 \
    "RABBITMQ_MNESIA_BASE=$data/mnesia" "RABBITMQ_LOG_BASE=$data/log" \
    "RABBITMQ_PID_FILE=$data/rabbitmq.pid" "RABBITMQ_ENABLED_PLUGINS_FILE=$data/enabled_plugins"
}

rabbitmq_install() {
  [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] && return 0
  log "rabbitmq: installing the Debian package"
  apt_install rabbitmq-server
}

rabbitmq_start() {
  local data; data=$(owned_data_dir rabbitmq rabbitmq)
  [[ -e $data/enabled_plugins ]] || { echo '[].' >"$data/enabled_plugins"; chown rabbitmq: "$data/enabled_plugins"; }
  rm -f "$data/rabbitmq.pid"
  rabbitmq_memory_conf >"$data/rabbitmq.conf"
  if [[ -n ${SECURE:-} ]]; then
    _rabbitmq_secure_files "$data" rabbitmq || return 1
    _rabbitmq_secure_conf "$data" rabbitmq 127.0.0.1 >>"$data/rabbitmq.conf"
  fi
  chown rabbitmq: "$data/rabbitmq.conf"
  # exec: the background subshell becomes the server's launcher, holding none of our output pipes
  local envs; mapfile -t envs < <(_rabbitmq_env "$data")
  ( cd /var/lib/rabbitmq && exec setsid nohup runuser -u rabbitmq -- \
      env "${envs[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server \
      >"$(logfile rabbitmq)" 2>&1 </dev/null ) &
  for _ in $(seq 1 60); do [[ -s $data/rabbitmq.pid ]] && break; sleep 0.5; done
  [[ -s $data/rabbitmq.pid ]] || return 1
  cp "$data/rabbitmq.pid" "$(pidfile rabbitmq)"
}

# rabbitmq_memory_conf: rabbitmq.conf lines that bound a node's memory, on every stack (and in
# docker/rabbitmq.conf). Quorum queues keep the entries of their shared write-ahead log in memory
# until the log rolls over, 512 MiB by default: a node grew by ~8 MB a minute for as long as it
# ran. 64 MiB bounds that. Above the high watermark RabbitMQ blocks publishers (the bridge
# waits, Kafka holds the records) instead of growing (docs/configuration.md, Memory and disk).
rabbitmq_memory_conf() {
  printf '%s\n' "raft.wal_max_size_bytes = $RABBITMQ_WAL_MAX_BYTES" \
    "vm_memory_high_watermark.absolute = $RABBITMQ_MEMORY_HIGH_WATERMARK"
}
RABBITMQ_WAL_MAX_BYTES=67108864
RABBITMQ_MEMORY_HIGH_WATERMARK=1GB

# _rabbitmq_secure_files DATA NAME: what a secure node reads, in DATA: NAME's certificate and key
# and the CA (tls/), the Erlang distribution's TLS options (peers verified both ways, the node's
# and the CLI's alike: tls/inter-node.config), the users, vhosts and permissions
# (definitions.json, loaded at boot, so that no `guest` is ever created).
_rabbitmq_secure_files() {
  local data=$1 name=$2 side opts
  secure_copy "$name" rabbitmq "$data/tls" || return 1
  opts="{cacertfile, \"$data/tls/ca.pem\"}, {certfile, \"$data/tls/$name.pem\"}, {keyfile, \"$data/tls/$name.key\"}, {verify, verify_peer}, {secure_renegotiate, true}"
  {
    printf '[\n'
    for side in server client; do
      printf '  {%s, [%s%s]}%s\n' "$side" "$opts" "$([[ $side == server ]] && echo ', {fail_if_no_peer_cert, true}')" \
        "$([[ $side == server ]] && echo ,)"
    done
    printf '].\n'
  } >"$data/tls/inter-node.config"
  chown rabbitmq: "$data/tls/inter-node.config"
  secure_provision rabbitmq-definitions "$data/definitions.json" || return 1
  chown rabbitmq: "$data/definitions.json"
}

# _rabbitmq_secure_conf DATA NAME HOST: rabbitmq.conf lines of a secure node: a TLS listener only
# (HOST:5671; the plaintext one off), clients authenticated by password (their certificates not
# asked for), the definitions loaded at boot.
_rabbitmq_secure_conf() {
  local data=$1 name=$2 host=$3
  cat <<EOF
listeners.tcp = none
listeners.ssl.default = $host:5671
ssl_options.cacertfile = $data/tls/ca.pem
ssl_options.certfile = $data/tls/$name.pem
ssl_options.keyfile = $data/tls/$name.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
load_definitions = $data/definitions.json
EOF
}

# _rabbitmq_dist_tls DATA: the Erlang flags putting the distribution on TLS (node and CLI).
_rabbitmq_dist_tls() { printf '%s' "-proto_dist inet_tls -ssl_dist_optfile $1/tls/inter-node.config"; }

# _rabbitmq_hello [HOST]: a real AMQP 0-9-1 handshake with HOST:5672 (default 127.0.0.1; the secure
# stack's: TLS on 5671, the certificate checked): the server answers the protocol header with
# Connection.Start, whose server properties carry its version.
_rabbitmq_hello() {
  python3 - "${1:-127.0.0.1}" "${SECURE:+$(secure_ca)}" <<'PY'
import re, socket, ssl, sys
host, ca = sys.argv[1], sys.argv[2]
raw = socket.create_connection((host, 5671 if ca else 5672), timeout=2)
s = ssl.create_default_context(cafile=ca).wrap_socket(raw, server_hostname=host) if ca else raw
with s:
    s.sendall(b"AMQP\x00\x00\x09\x01")
    data = b""
    while len(data) < 7 or len(data) < 8 + int.from_bytes(data[3:7], "big"):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit(1)
        data += chunk
m = re.search(rb"\x07versionS(....)", data)
if data[0] != 1 or not m:
    sys.exit(1)
n = int.from_bytes(m.group(1), "big")
print(data[m.end():m.end() + n].decode())
PY
}

_rabbitmqctl() {
  local data envs; data=$(readlink -f "$SERVICES_DATA/rabbitmq")
  mapfile -t envs < <(_rabbitmq_env "$data")
  ( cd /var/lib/rabbitmq && runuser -u rabbitmq -- env "${envs[@]}" \
      /usr/lib/rabbitmq/bin/rabbitmqctl -n rabbit@localhost -q "$@" )
}

# After every `up` (idempotent; a vhost that exists is left as it is).
rabbitmq_provision() {
  local vhost data
  if [[ -n ${SECURE:-} ]]; then
    # the table of principals may have changed since the node booted: import it again
    data=$(readlink -f "$SERVICES_DATA/rabbitmq")
    secure_provision rabbitmq-definitions "$data/definitions.json" && chown rabbitmq: "$data/definitions.json" &&
      _rabbitmqctl import_definitions "$data/definitions.json" >/dev/null && secure_provision rabbitmq-topology
    return
  fi
  for vhost in "${RABBITMQ_OWN_VHOSTS[@]}"; do
    if ! _rabbitmqctl list_vhosts name 2>/dev/null | grep -qx "$vhost"; then
      _rabbitmqctl add_vhost "$vhost" >/dev/null || return 1
      _rabbitmqctl set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null || return 1
    fi
  done
}

rabbitmq_ready() { port_open "$(_rabbitmq_port)" && _rabbitmq_hello >/dev/null; }
_rabbitmq_port() { if [[ -n ${SECURE:-} ]]; then echo 5671; else echo 5672; fi; }
rabbitmq_version() { printf 'RabbitMQ %s\n' "$(_rabbitmq_hello)"; }

rabbitmq_stop() {
  pid_alive rabbitmq || { rm -f "$(pidfile rabbitmq)"; return 0; }
  local data; data=$(readlink -f "$SERVICES_DATA/rabbitmq")
  _rabbitmqctl stop "$data/rabbitmq.pid" >/dev/null 2>&1 || stop_pid rabbitmq
  rm -f "$(pidfile rabbitmq)"
  # epmd is started by the Erlang VM and outlives it; stop it only if no other node uses it.
  if ! epmd -names 2>/dev/null | grep -q '^name '; then epmd -kill >/dev/null 2>&1 || true; fi
}

# reload-tls: the node's certificate copied again; clearing Erlang's PEM cache makes new
# connections read the files (the open ones keep theirs).
rabbitmq_reload_tls() {
  secure_copy rabbitmq rabbitmq "$(readlink -f "$SERVICES_DATA/rabbitmq")/tls" &&
    _rabbitmqctl eval 'ssl:clear_pem_cache().' >/dev/null
}
