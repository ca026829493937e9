#!/usr/bin/env bash
# Make sure the real components the relay and its tests talk to are up: RabbitMQ and Redis.
# Starts them when installed and stopped; installs Debian's packages when missing and root.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # $1 port, $2 name, $3 seconds
  for _ in $(seq "$3"); do port_open "$1" && return 0; sleep 1; done
  echo "ensure-services: $2 did not start listening on 127.0.0.1:$1 within $3 s" >&2
  return 1
}

apt_install() {  # $1 package
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-services: $1 is not installed and this is not root: install Debian's '$1' package" \
      "or point the settings at a running server" >&2
    exit 1
  fi
  if [ -z "${_APT_UPDATED:-}" ]; then apt-get update -qq; _APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

ensure_rabbitmq() {
  port_open 5672 && return 0
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  echo "ensure-services: starting RabbitMQ" >&2
  rabbitmq-server -detached >/dev/null 2>&1 || true
  if command -v rabbitmqctl >/dev/null; then
    timeout 120 rabbitmqctl -q await_startup >/dev/null 2>&1 || true
    # A node left with its app stopped (stop_app) listens on nothing: start it.
    port_open 5672 || rabbitmqctl -q start_app >/dev/null 2>&1 || true
  fi
  wait_port 5672 RabbitMQ 120
}

ensure_redis() {
  port_open 6379 && return 0
  command -v redis-server >/dev/null || apt_install redis-server
  echo "ensure-services: starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_port 6379 Redis 30
}

ensure_rabbitmq
ensure_redis
