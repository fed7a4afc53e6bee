#!/usr/bin/env bash
# Make sure the servers the tests talk to are running on loopback: install them on Debian if
# absent, start them if down. Never stops or flushes a running server.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  if have apt-get; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@"
  else
    echo "services: cannot install $* (no apt-get); install it by hand" >&2
    return 1
  fi
}

redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; }

if ! redis_up; then
  have redis-server || apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
fi
redis_up && echo "services: redis on 127.0.0.1:6379"
# The cluster and sentinel tests start private servers from these binaries.
{ have redis-server && have redis-cli; } || apt_install redis-server redis-tools

# RabbitMQ (the amqp:// broker's tests): Debian's rabbitmq-server, started as the guide says.
amqp_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if ! amqp_up; then
  have rabbitmq-server || apt_install rabbitmq-server
  as_root rabbitmq-server -detached
  as_root timeout 120 rabbitmqctl await_startup >/dev/null
  for _ in $(seq 100); do amqp_up && break; sleep 0.2; done
fi
amqp_up && echo "services: rabbitmq on 127.0.0.1:5672"

# Headless Chromium for the dashboard's browser tests (tests/browser), driven by Playwright.
if ! have chromium; then
  apt_install chromium
fi
have chromium && echo "services: chromium at $(command -v chromium)"
