# shellcheck shell=bash
# Prometheus from Debian on 127.0.0.1:9090, optional (`scripts/services up prometheus`): scrapes a
# bridge on 127.0.0.1:9108 and Flower on 127.0.0.1:5555 every 5 s, as the compose `monitoring`
# profile does on its network. The tests run their own instance of the binary (tests/integration/test_metrics.py).
# shellcheck disable=SC2034  # read as ${!NAME_ADDR} by scripts/services
PROMETHEUS_ADDR="127.0.0.1:9090"

prometheus_install() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && return 0
  log "prometheus: installing the Debian package"
  apt_install --no-install-recommends prometheus
}

prometheus_start() {
  local data="$SERVICES_DATA/prometheus"
  mkdir -p "$data/tsdb"
  cat >"$data/prometheus.yml" <<'YAML'
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: bridge
    static_configs: [{targets: ["127.0.0.1:9108"]}]
  - job_name: flower
    static_configs: [{targets: ["127.0.0.1:5555"]}]
YAML
  nohup prometheus --config.file="$data/prometheus.yml" --storage.tsdb.path="$data/tsdb" \
    --web.listen-address=127.0.0.1:9090 >>"$(logfile prometheus)" 2>&1 &
  echo $! >"$(pidfile prometheus)"
}

prometheus_ready() { curl -fsS http://127.0.0.1:9090/-/ready >/dev/null 2>&1; }

prometheus_version() { prometheus --version 2>&1 | head -n 1; }
