# shellcheck shell=bash
# The cluster stack for scripts/services (sourced; `scripts/services up --cluster`): three Kafka
# nodes and three clustered RabbitMQ nodes, next to the single stack's PostgreSQL, FerretDB and
# Redis. Every node listens on a loopback address of its own, so one address identifies one node:
# status shows it, clients name it, and `scripts/services cut NAME` drops what is sent to it.
#
#   kafka-N     N = 1..3; broker 127.0.1.N:9092, controller 127.0.1.N:9093, node.id N; KRaft with
#               broker+controller in one JVM and the static three-voter quorum
#               1@127.0.1.1:9093,2@127.0.1.2:9093,3@127.0.1.3:9093 (scripts/kafka/cluster.properties).
#               All three are formatted with one cluster id, generated once ($SERVICES_DATA/kafka-cluster-id).
#               The same cached jars as the single broker (kafka_install); heap $KAFKA_NODE_HEAP_OPTS.
#   rabbitmq-N  Erlang node rabbit-N@127.0.2.N (long names: the host part is the node's own address);
#               AMQP 127.0.2.N:5672; Erlang distribution 127.0.2.N:2568N. The cluster has an epmd of
#               its own on port 4370 (127.0.0.1, where nodes register, and 127.0.2.1-3, where peers
#               look a node up), started by this script, not by a node (so it is in no node's cgroup)
#               and apart from the single node's (rabbit@localhost, epmd 127.0.0.1:4369, distribution
#               *:25672). The distribution ports differ although the addresses do: RabbitMQ refuses
#               to start on a port another node registered with the same epmd. Same Erlang cookie
#               (HOME=/var/lib/rabbitmq); runs as the rabbitmq user. The CLI for node N (rabbitmqctl
#               via `scripts/services ctl NAME ...`) is itself an Erlang node named after N's host,
#               rabbitmqcli-PID-rabbit-N@127.0.2.N, which other nodes may call back (list_queues
#               does): it listens on 127.0.2.N, ports 35690-35699 (the single node's CLI: *:35672-35682).
#
# Data under $SERVICES_DATA/NAME, log $SERVICES_LOGS/NAME.log, PID file $SERVICES_RUN/NAME.pid
# holding the server process itself (the JVM; beam.smp), so kill/SIGSTOP/`pid` act on the server.
# With SERVICES_CGROUP set (scripts/in-netns sets it), each node runs in the cgroup $SERVICES_CGROUP/NAME.
#
# Overridable: KAFKA_NODE_HEAP_OPTS, KAFKA_JVM_OPTS, RABBITMQ_NET_TICKTIME, RABBITMQ_PARTITION_HANDLING
# (autoheal; see _rabbitmq_node_conf), RABBITMQ_CTL_TIMEOUT (60 s, for `scripts/services ctl`).

KAFKA_NODES=(kafka-1 kafka-2 kafka-3)
RABBITMQ_NODES=(rabbitmq-1 rabbitmq-2 rabbitmq-3)
CLUSTER_NODES=("${KAFKA_NODES[@]}" "${RABBITMQ_NODES[@]}")
# What the cluster stack shares with the single one (read by scripts/services).
# shellcheck disable=SC2034
CLUSTER_SHARED=(postgres redis mongo)

# Heap of each node. Measured with it: ~200 MiB RSS per JVM at idle, 2-3 % of a core; a node starts
# in 2-3 s (a restarted one may wait up to broker.session.timeout.ms to re-register).
: "${KAFKA_NODE_HEAP_OPTS:=-Xms64m -Xmx256m}"
KAFKA_CLUSTER_ID_FILE="$SERVICES_DATA/kafka-cluster-id"

RABBITMQ_CLUSTER_EPMD_PORT=4370
# Node N's Erlang distribution port is RABBITMQ_NODE_DIST_BASE + N (25681-25683).
RABBITMQ_NODE_DIST_BASE=25680
# Erlang's net_ticktime: a peer that sends nothing for ~this long (0.75-1.25x) is down. The default
# (60 s) makes a cut-off node look alive for a minute; 15 s still tolerates any pause this machine
# has, and every CLI run against the cluster uses the same value (a CLI ticking at the default pace
# would be disconnected mid-command).
: "${RABBITMQ_NET_TICKTIME:=15}"

is_cluster_node() { [[ " ${CLUSTER_NODES[*]} " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------------------- Kafka

kafka_node_addr() { printf '127.0.1.%s:9092\n' "$1"; }
kafka_node_install() { kafka_install; }

# _kafka_cluster_id LOG: the cluster's id: the one recorded, else a formatted node's, else a new one.
_kafka_cluster_id() {
  local cid meta
  if ! grep -Eqx '[A-Za-z0-9_-]{22}' "$KAFKA_CLUSTER_ID_FILE" 2>/dev/null; then
    for meta in "$SERVICES_DATA"/kafka-[0-9]/logs/meta.properties; do
      [[ -f $meta ]] && cid=$(sed -n 's/^cluster\.id=//p' "$meta") && [[ -n $cid ]] && break
    done
    if [[ -z ${cid:-} ]]; then
      # StorageTool also logs to stdout: keep only the id line (22 URL-safe base64 characters).
      cid=$(_kafka_run_java "-Xmx128m" kafka.tools.StorageTool random-uuid 2>>"$1" \
              | grep -Ex '[A-Za-z0-9_-]{22}' | tail -n 1) || true
    fi
    [[ -n ${cid:-} ]] || { log "kafka: could not generate a cluster id (see $1)"; return 1; }
    printf '%s\n' "$cid" >"$KAFKA_CLUSTER_ID_FILE"
  fi
  cat "$KAFKA_CLUSTER_ID_FILE"
}

kafka_node_start() {
  local n=$1 name="kafka-$1" host="127.0.1.$1" data="$SERVICES_DATA/kafka-$1" lf pf cid cg p
  local props="$data/server.properties" logdir="$data/logs"
  lf=$(logfile "$name"); pf=$(pidfile "$name")
  [[ -f $KAFKA_LIB/.complete ]] || { log "$name: jars missing in $KAFKA_LIB; run kafka_install first"; return 1; }
  _kafka_check_java || return 1
  for p in 9092 9093 ${SECURE:+9094}; do
    if _reachable "$host" "$p"; then
      log "$name: $host:$p is already taken by another process; free it first"; return 1
    fi
  done
  mkdir -p "$logdir"
  # Keep the previous run's log for post-mortems; readiness greps only the current one.
  [[ -s $lf ]] && mv -f "$lf" "$lf.1"
  : >"$lf"
  sed -e "s|@KAFKA_LOG_DIR@|$logdir|g" -e "s|@NODE_ID@|$n|g" -e "s|@HOST@|$host|g" \
    "$KAFKA_SRC/cluster.properties" >"$props"
  if [[ -n ${SECURE:-} ]]; then kafka_secure_properties "$host" "$name" >>"$props"; fi
  cid=$(_kafka_cluster_id "$lf") || return 1
  if [[ ! -f $logdir/meta.properties ]]; then
    # Static controller.quorum.voters: the same `format` on each node, no --standalone.
    if ! _kafka_run_java "-Xmx128m" kafka.tools.StorageTool format -t "$cid" -c "$props" >>"$lf" 2>&1; then
      log "$name: formatting $logdir failed; last lines of $lf:"; tail -n 20 "$lf" >&2; return 1
    fi
  fi
  cg=$(cgroup_for "$name") || return 1
  rm -f "$pf"
  # The inner shell joins the node's cgroup (if any), records its own PID and execs java, so the
  # PID file holds the JVM itself; setsid detaches it from our session.
  # shellcheck disable=SC2016  # $$, $1, $2 are for the inner shell
  # shellcheck disable=SC2086  # heap/JVM options are deliberately word-split
  setsid nohup bash -c '[[ -z $2 ]] || echo $$ >"$2/cgroup.procs" || exit 1
                        echo $$ >"$1"; shift 2; exec "$@"' "$name-launch" "$pf" "$cg" \
    "$(_kafka_java)" ${KAFKA_NODE_HEAP_OPTS} -XX:-UsePerfData -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
    ${KAFKA_JVM_OPTS:-} \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties" \
    -Dlog4j2.shutdownHookEnabled=false \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$props" \
    >>"$lf" 2>&1 </dev/null &
  for _ in $(seq 1 50); do [[ -s $pf ]] && break; sleep 0.1; done
  [[ -s $pf ]] || { log "$name: the node did not record its PID in $pf (see $lf)"; return 1; }
}

# _reachable HOST PORT: a TCP connection to HOST:PORT opens within 2 s (a node that is cut off
# drops the SYN: /dev/tcp alone would wait for the kernel's ~2 min connect timeout).
# shellcheck disable=SC2016  # $0 and $1 are for the inner shell
_reachable() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

# A node answers ApiVersions; one we started has also finished starting (it needs the quorum:
# a node alone never gets there).
kafka_node_ready() {
  _reachable "127.0.1.$1" 9092 && _kafka_answers "127.0.1.$1" || return 1
  if pid_alive "kafka-$1"; then
    grep -q 'Kafka Server started' "$(logfile "kafka-$1")" 2>/dev/null || return 1
  fi
}

kafka_node_version() {
  local v
  v=$(grep -ohE 'Kafka version: [0-9][^ ]*' "$(logfile "kafka-$1")" 2>/dev/null | tail -n 1 | cut -d' ' -f3)
  printf 'Kafka %s (node.id %s)\n' "${v:-$KAFKA_VERSION}" "$1"
}

kafka_cluster_bootstrap() { printf '127.0.1.1:9092,127.0.1.2:9092,127.0.1.3:9092\n'; }

# After every `up` of the secure cluster, once its last node answers: each principal's SCRAM
# credentials and ACLs, and the topics (cluster-wide: done once, through any node).
kafka_node_provision() {
  [[ -n ${SECURE:-} && $1 == 3 ]] || return 0
  secure_provision kafka
}

# kafka_cluster_quorum: the controller quorum (leader, each voter's lag), asked of the controllers directly.
kafka_cluster_quorum() {
  [[ -f $KAFKA_LIB/.complete ]] || { log "kafka: jars missing in $KAFKA_LIB (scripts/services install --cluster)"; return 1; }
  "$(_kafka_java)" -Xmx128m -XX:-UsePerfData -XX:TieredStopAtLevel=1 -cp "$KAFKA_LIB/*" "$KAFKA_SRC/Quorum.java" \
    127.0.1.1:9093,127.0.1.2:9093,127.0.1.3:9093 ${SECURE:+"$(secure_kafka_client_properties)"}
}

# ------------------------------------------------------------------------------------- RabbitMQ

rabbitmq_node_addr() { printf '127.0.2.%s:%s\n' "$1" "$(_rabbitmq_port)"; }
rabbitmq_node_name() { printf 'rabbit-%s@127.0.2.%s\n' "$1" "$1"; }
# The cluster nodes run RabbitMQ with one module patched (scripts/rabbitmq/patch-node-monitor says
# why: without it a node that was cut off or frozen may never come back), built once per installed
# RabbitMQ into the cache and copied to each node's DATA/code, whence the node loads it at start.
RABBITMQ_RABBIT_EBIN=$(printf '%s\n' /usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbit-[0-9]*/ebin | tail -n 1)

# _rabbitmq_patch_dir: the directory holding the patched module for the installed RabbitMQ.
_rabbitmq_patch_dir() {
  local sum
  sum=$(cat "$RABBITMQ_RABBIT_EBIN/rabbit_node_monitor.beam" "$REPO_ROOT/scripts/rabbitmq/patch-node-monitor" 2>/dev/null |
          sha256sum | cut -c1-16)
  printf '%s/rabbitmq-patched/%s\n' "$SERVICES_CACHE" "$sum"
}

rabbitmq_node_install() {
  local dir
  rabbitmq_install || return 1
  RABBITMQ_RABBIT_EBIN=$(printf '%s\n' /usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbit-[0-9]*/ebin | tail -n 1)
  dir=$(_rabbitmq_patch_dir)
  [[ -f $dir/.complete ]] && return 0
  rm -rf "$dir"; mkdir -p "$dir"
  if ! "$REPO_ROOT/scripts/rabbitmq/patch-node-monitor" "$RABBITMQ_RABBIT_EBIN/rabbit_node_monitor.beam" "$dir" >&2; then
    log "rabbitmq: could not build the patched rabbit_node_monitor (scripts/rabbitmq/patch-node-monitor)"
    rm -rf "$dir"; return 1
  fi
  touch "$dir/.complete"
}

_rabbitmq_cluster_epmd_addresses() { printf '127.0.2.1,127.0.2.2,127.0.2.3'; }

# _rabbitmq_node_env N DATA: the environment of node N's server and of its CLI.
_rabbitmq_node_env() {
  local n=$1 data=$2
  printf '%s\n' HOME=/var/lib/rabbitmq "RABBITMQ_NODENAME=$(rabbitmq_node_name "$n")" \
    RABBITMQ_USE_LONGNAME=true "RABBITMQ_NODE_IP_ADDRESS=127.0.2.$n" RABBITMQ_NODE_PORT=5672 \
    "RABBITMQ_DIST_PORT=$((RABBITMQ_NODE_DIST_BASE + n))" \
    "ERL_EPMD_PORT=$RABBITMQ_CLUSTER_EPMD_PORT" "ERL_EPMD_ADDRESS=$(_rabbitmq_cluster_epmd_addresses)" \
    "RABBITMQ_CONFIG_FILE=$data/rabbitmq.conf" "RABBITMQ_SERVER_CODE_PATH=$data/code" \
    "RABBITMQ_MNESIA_BASE=$data/mnesia" "RABBITMQ_LOG_BASE=$data/log" \
    "RABBITMQ_PID_FILE=$data/rabbitmq.pid" "RABBITMQ_ENABLED_PLUGINS_FILE=$data/enabled_plugins" \
    RABBITMQ_CTL_DIST_PORT_MIN=35690 RABBITMQ_CTL_DIST_PORT_MAX=35699 \
    "RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,2,$n} -kernel net_ticktime $RABBITMQ_NET_TICKTIME${SECURE:+ $(_rabbitmq_dist_tls "$data")}"
  # secure: the distribution on TLS (the node's every replica, the CLI's link)
  if [[ -n ${SECURE:-} ]]; then printf '%s\n' "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=$(_rabbitmq_dist_tls "$data")"; fi
}

# _rabbitmq_node_conf N: node N's rabbitmq.conf.
_rabbitmq_node_conf() {
  local n=$1 i
  cat <<CONF
# Generated by scripts/services.d/cluster.sh for $(rabbitmq_node_name "$n"); edits are overwritten.
# Erlang distribution on this node's own address only (default: every interface).
distribution.listener.interface = 127.0.2.$n
net_ticktime = $RABBITMQ_NET_TICKTIME
cluster_name = livros-dados
$(rabbitmq_memory_conf)

# Cluster formation: a node booting with an empty database joins the first listed peer that runs
# (scripts/services starts rabbitmq-1 alone first when the cluster does not exist yet); a node with
# a database rejoins the cluster it belongs to.
cluster_formation.peer_discovery_backend = classic_config
CONF
  for i in 1 2 3; do
    printf 'cluster_formation.classic_config.nodes.%s = %s\n' "$i" "$(rabbitmq_node_name "$i")"
  done
  cat <<'CONF'

# Partition handling: autoheal. Once the nodes see each other again after a partition, the side
# with fewer nodes (or clients) restarts its `rabbit` application and takes the winners' state:
# the cluster is whole again without anyone's help (3-60 s after healing, measured).
# Not pause_minority, the usual choice for three nodes, although it is right for a cut (the node
# alone pauses and restarts once it reaches the others): a node frozen (SIGSTOP) for longer than
# net_ticktime is seen down by the two others, but on waking it reconnects before it notices that
# it was alone, so it never pauses, and the partition Mnesia then reports stays for good (nothing
# in pause_minority acts on it; measured here, twice in two freezes). Nor ignore: every partition
# would need a manual restart. The price of autoheal: while partitioned the minority node still
# serves the clients that reach it (with a total cut, none), and what it took in on classic queues
# is dropped when it restarts. Quorum queues lose nothing either way (a minority commits nothing).
CONF
  printf 'cluster_partition_handling = %s\n' "${RABBITMQ_PARTITION_HANDLING:-autoheal}"
}

# _rabbitmq_cluster_epmd: the cluster's epmd runs (started here, detached, as the rabbitmq user).
_rabbitmq_cluster_epmd() {
  local pf; pf=$(pidfile epmd-cluster)
  port_open "$RABBITMQ_CLUSTER_EPMD_PORT" && return 0
  setsid nohup setpriv --reuid=rabbitmq --regid=rabbitmq --clear-groups \
    epmd -port "$RABBITMQ_CLUSTER_EPMD_PORT" -address "$(_rabbitmq_cluster_epmd_addresses)" \
    </dev/null >>"$(logfile epmd-cluster)" 2>&1 &
  printf '%s\n' "$!" >"$pf"
  for _ in $(seq 1 50); do port_open "$RABBITMQ_CLUSTER_EPMD_PORT" && return 0; sleep 0.1; done
  log "rabbitmq: the cluster's epmd did not start on port $RABBITMQ_CLUSTER_EPMD_PORT (see $(logfile epmd-cluster))"
  return 1
}

# _rabbitmq_cluster_epmd_stop: stop the cluster's epmd once no cluster node is registered with it.
_rabbitmq_cluster_epmd_stop() {
  pid_alive epmd-cluster || { rm -f "$(pidfile epmd-cluster)"; return 0; }
  if ERL_EPMD_PORT=$RABBITMQ_CLUSTER_EPMD_PORT epmd -names 2>/dev/null | grep -q '^name rabbit-'; then return 0; fi
  stop_pid epmd-cluster
}

rabbitmq_node_start() {
  local n=$1 name="rabbitmq-$1" data envs cg
  data=$(owned_data_dir "$name" rabbitmq)
  [[ -e $data/enabled_plugins ]] || { echo '[].' >"$data/enabled_plugins"; chown rabbitmq: "$data/enabled_plugins"; }
  _rabbitmq_node_conf "$n" >"$data/rabbitmq.conf"
  if [[ -n ${SECURE:-} ]]; then
    _rabbitmq_secure_files "$data" "$name" || return 1
    _rabbitmq_secure_conf "$data" "$name" "127.0.2.$n" >>"$data/rabbitmq.conf"
  fi
  chown rabbitmq: "$data/rabbitmq.conf"
  rm -rf "$data/code"; mkdir -p "$data/code"
  cp "$(_rabbitmq_patch_dir)"/*.beam "$data/code/" 2>/dev/null || true
  chown -R rabbitmq: "$data/code"
  _rabbitmq_cluster_epmd || return 1
  mapfile -t envs < <(_rabbitmq_node_env "$n" "$data")
  # Load the patched module before RabbitMQ boots: its prelaunch puts the plugins' directories
  # ahead of DATA/code in the code path, and a module is loaded from the first directory that has
  # it. ERL_AFLAGS' `-s` runs before rabbitmq-server's own `-s rabbit boot`.
  if [[ -f $data/code/rabbit_node_monitor.beam ]]; then envs+=("ERL_AFLAGS=-s rabbit_node_monitor module_info"); fi
  cg=$(cgroup_for "$name") || return 1
  rm -f "$data/rabbitmq.pid"
  # The inner shell joins the node's cgroup, then becomes runuser -> rabbitmq-server -> beam.smp;
  # the server writes beam.smp's PID to $data/rabbitmq.pid, which becomes the node's PID file.
  # shellcheck disable=SC2016  # $$ and $1 are for the inner shell
  ( cd /var/lib/rabbitmq && exec setsid nohup bash -c '[[ -z $1 ]] || echo $$ >"$1/cgroup.procs" || exit 1
      shift; exec "$@"' "$name-launch" "$cg" runuser -u rabbitmq -- \
      env "${envs[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server \
      >"$(logfile "$name")" 2>&1 </dev/null ) &
  for _ in $(seq 1 60); do [[ -s $data/rabbitmq.pid ]] && break; sleep 0.5; done
  [[ -s $data/rabbitmq.pid ]] || return 1
  cp "$data/rabbitmq.pid" "$(pidfile "$name")"
}

rabbitmq_node_ready() { _rabbitmq_hello "127.0.2.$1" >/dev/null; }
rabbitmq_node_version() { printf 'RabbitMQ %s (%s)\n' "$(_rabbitmq_hello "127.0.2.$1")" "$(rabbitmq_node_name "$1")"; }

# rabbitmq_node_ctl N ARGS...: rabbitmqctl ARGS against node N (as the rabbitmq user, with the
# cluster's epmd, long names and tick time), given up after $RABBITMQ_CTL_TIMEOUT s (default 60).
rabbitmq_node_ctl() {
  local n=$1 data envs; shift
  data=$(readlink -f "$SERVICES_DATA/rabbitmq-$n")
  mapfile -t envs < <(_rabbitmq_node_env "$n" "$data")
  ( cd /var/lib/rabbitmq && timeout "${RABBITMQ_CTL_TIMEOUT:-60}" runuser -u rabbitmq -- env "${envs[@]}" \
      /usr/lib/rabbitmq/bin/rabbitmqctl --longnames -n "$(rabbitmq_node_name "$n")" "$@" )
}

# After every `up`, idempotent: the tests' and the benchmarks' vhosts, as rabbitmq_provision (vhosts are cluster-wide;
# asking each node is cheap and covers a node that was started alone).
rabbitmq_node_provision() {
  local vhost data
  if [[ -n ${SECURE:-} ]]; then
    # the table of principals may have changed since the node booted: import it again; the
    # queues once every node runs (the topology is cluster-wide)
    data=$(readlink -f "$SERVICES_DATA/rabbitmq-$1")
    secure_provision rabbitmq-definitions "$data/definitions.json" && chown rabbitmq: "$data/definitions.json" &&
      rabbitmq_node_ctl "$1" -q import_definitions "$data/definitions.json" >/dev/null || return 1
    if [[ $1 == 3 ]]; then secure_provision rabbitmq-topology; fi
    return
  fi
  for vhost in "${RABBITMQ_OWN_VHOSTS[@]}"; do
    if ! rabbitmq_node_ctl "$1" -q list_vhosts name 2>/dev/null | grep -qx "$vhost"; then
      rabbitmq_node_ctl "$1" -q add_vhost "$vhost" >/dev/null 2>&1 ||
        rabbitmq_node_ctl "$1" -q list_vhosts name 2>/dev/null | grep -qx "$vhost" || return 1
      rabbitmq_node_ctl "$1" -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null || return 1
    fi
  done
}

# A graceful stop: SIGTERM to beam.smp is RabbitMQ's own clean shutdown (as `rabbitmqctl stop`,
# which would hang on a node that is cut off); the cluster's epmd goes with the last node.
rabbitmq_node_stop() {
  stop_pid "rabbitmq-$1"
  _rabbitmq_cluster_epmd_stop
}

# rabbitmq_node_fresh N: node N has no database yet (never started, or its data was removed).
rabbitmq_node_fresh() { [[ ! -d $SERVICES_DATA/rabbitmq-$1/mnesia/$(rabbitmq_node_name "$1") ]]; }

# rabbitmq_cluster_fresh: no RabbitMQ node of the cluster has a database yet.
rabbitmq_cluster_fresh() { rabbitmq_node_fresh 1 && rabbitmq_node_fresh 2 && rabbitmq_node_fresh 3; }

# -------------------------------------------------------------------------------- cut and heal
# A node is cut off by two nftables rules in a table of its own (inet cut_NAME): everything its
# processes send is dropped (matched by their cgroup: on loopback every connection's source is
# 127.0.0.1, so no address identifies the sender), and everything sent to its address is dropped
# (its listeners: Kafka 9092/9093; AMQP, Erlang distribution and the epmd look-ups of its peers,
# which go to 127.0.2.N:4370). Nothing is rejected: peers and clients see silence, as with a
# pulled cable, and notice by their own timeouts. Healing deletes the table.
# `cut --clients` drops only what goes to and from the node's client port (Kafka 9092, AMQP 5672):
# to its clients it is a node that keeps their connections open and answers nothing -- a frozen
# one -- while it still talks to its peers (no partition in the cluster itself).
# Only ever inside scripts/in-netns's network namespace, never the host's firewall.

# _netns_private: succeed only inside the network namespace scripts/in-netns created: the marker
# it exports names the current namespace, which is not the host's, and only `lo` exists in it.
_netns_private() {
  local here ifaces
  if [[ -z ${LIVROS_NETNS:-} || -z ${LIVROS_HOST_NETNS:-} ]]; then
    log "services: cut/heal run only inside scripts/in-netns (they change nftables rules)"; return 1
  fi
  here=$(readlink /proc/self/ns/net) || return 1
  if [[ $here != "$LIVROS_NETNS" || $here == "$LIVROS_HOST_NETNS" ]]; then
    log "services: this is not the network namespace scripts/in-netns created ($here); refusing to touch nftables"
    return 1
  fi
  ifaces=$(sed -n '3,$s/^ *\([^:]*\):.*/\1/p' /proc/self/net/dev | tr '\n' ' ')
  if [[ $ifaces != "lo " ]]; then
    log "services: this network namespace has interfaces besides lo ($ifaces); refusing to touch nftables"
    return 1
  fi
}

_cut_table() { printf 'cut_%s' "${1//-/_}"; }

cluster_cut() {
  local name=$1 only=${2:-} host port pid cg level rules
  is_cluster_node "$name" || { log "services: cut acts on cluster nodes (${CLUSTER_NODES[*]}), not '$name'"; return 1; }
  _netns_private || return 1
  command -v nft >/dev/null || apt_install nftables || return 1
  pid_alive "$name" || { log "services: $name is not running (start it first)"; return 1; }
  pid=$(cat "$(pidfile "$name")")
  cg=$(sed -n 's/^0:://p' "/proc/$pid/cgroup"); cg=${cg#/}
  if [[ $cg != */"$name" || $(stat -f -c %T /sys/fs/cgroup) != cgroup2fs ]]; then
    log "services: $name (pid $pid) is not in a cgroup of its own under /sys/fs/cgroup (it is in '/$cg'):" \
        "start it with SERVICES_CGROUP set, as scripts/in-netns does"
    return 1
  fi
  level=$(awk -F/ '{print NF}' <<<"$cg")
  host=$(svc_addr "$name"); port=${host##*:}; host=${host%:*}
  if [[ $only == clients ]]; then
    rules=("socket cgroupv2 level $level \"$cg\" tcp sport $port drop" "ip daddr $host tcp dport $port drop")
  else
    rules=("socket cgroupv2 level $level \"$cg\" drop" "ip daddr $host drop")
  fi
  # `table` then `delete table` makes the batch idempotent (cutting twice leaves one set of rules).
  nft -f - <<NFT || return 1
table inet $(_cut_table "$name")
delete table inet $(_cut_table "$name")
table inet $(_cut_table "$name") {
  chain output {
    type filter hook output priority -10; policy accept;
    ${rules[0]}
    ${rules[1]}
  }
  chain input {
    type filter hook input priority -10; policy accept;
    ${rules[1]}
  }
}
NFT
  if [[ $only == clients ]]; then
    log "$name: cut off from its clients (port $port of $host, both ways)"
  else
    log "$name: cut off (all it sends, cgroup /$cg; all sent to $host)"
  fi
}

cluster_heal() {
  local name=$1
  is_cluster_node "$name" || { log "services: heal acts on cluster nodes (${CLUSTER_NODES[*]}), not '$name'"; return 1; }
  _netns_private || return 1
  if nft list table inet "$(_cut_table "$name")" >/dev/null 2>&1; then
    nft delete table inet "$(_cut_table "$name")" || return 1
    log "$name: healed"
  else
    log "$name: was not cut off"
  fi
}

kafka_node_reload_tls() { kafka_reload_tls; }

rabbitmq_node_reload_tls() {
  secure_copy "rabbitmq-$1" rabbitmq "$(readlink -f "$SERVICES_DATA/rabbitmq-$1")/tls" &&
    rabbitmq_node_ctl "$1" eval 'ssl:clear_pem_cache().' >/dev/null
}
