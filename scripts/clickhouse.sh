#!/usr/bin/env bash
# Starts a throwaway ClickHouse for Mutant's tests and examples, as our own
# process, on loopback, with its data under .build/clickhouse.
#
#   scripts/clickhouse.sh start   install if missing, start, wait until ready,
#                                 print the URL to export as MUTANT_CLICKHOUSE_URL
#   scripts/clickhouse.sh stop    stop the instance this script started
#
# MUTANT_CLICKHOUSE_HTTP_PORT (default 18123) moves the instance; the native
# and interserver ports follow it (+1 and +2).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
http_port="${MUTANT_CLICKHOUSE_HTTP_PORT:-18123}"
tcp_port=$((http_port + 1))
interserver_port=$((http_port + 2))
dir="$root/.build/clickhouse-$http_port"
url="http://127.0.0.1:$http_port"

log() { echo "clickhouse.sh: $*" >&2; }

install_if_missing() {
    if ! command -v curl >/dev/null 2>&1; then
        log "installing curl, which this script uses to check readiness"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
    fi
    if command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ]; then
        return
    fi
    log "installing clickhouse-server from the distribution's packages (about a minute)"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
}

write_config() {
    mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log}
    sed -e "s#<path>/var/lib/clickhouse/</path>#<path>$dir/data/</path>#" \
        -e "s#<tmp_path>/var/lib/clickhouse/tmp/</tmp_path>#<tmp_path>$dir/tmp/</tmp_path>#" \
        -e "s#<user_files_path>/var/lib/clickhouse/user_files/</user_files_path>#<user_files_path>$dir/user_files/</user_files_path>#" \
        -e "s#<format_schema_path>/var/lib/clickhouse/format_schemas/</format_schema_path>#<format_schema_path>$dir/format_schemas/</format_schema_path>#" \
        -e "s#<log>.*</log>#<log>$dir/log/clickhouse-server.log</log>#" \
        -e "s#<errorlog>.*</errorlog>#<errorlog>$dir/log/clickhouse-server.err.log</errorlog>#" \
        -e "s#<http_port>8123</http_port>#<http_port>$http_port</http_port>#" \
        -e "s#<tcp_port>9000</tcp_port>#<tcp_port>$tcp_port</tcp_port>#" \
        -e "s#<interserver_http_port>9009</interserver_http_port>#<interserver_http_port>$interserver_port</interserver_http_port>#" \
        -e "/<tcp_port_secure>/d" \
        -e "s#<users_config>users.xml</users_config>#<users_config>$dir/users.xml</users_config>#" \
        /etc/clickhouse-server/config.xml >"$dir/config.xml"
    cp /etc/clickhouse-server/users.xml "$dir/users.xml"
}

ready() { curl -sf "$url/?query=SELECT%201" >/dev/null 2>&1; }

start() {
    if ready; then
        log "already running at $url"
        echo "$url"
        return
    fi
    install_if_missing
    write_config
    local binary
    binary="$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)"
    nohup "$binary" --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 1 120); do
        if ready; then
            log "ClickHouse $(curl -sf "$url/?query=SELECT%20version()") ready at $url (data in $dir)"
            echo "$url"
            return
        fi
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            log "clickhouse-server exited during start-up; its log:"
            tail -n 30 "$dir/log/clickhouse-server.err.log" "$dir/log/stdout.log" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    log "clickhouse-server did not answer on $url within 60 s; see $dir/log"
    exit 1
}

stop() {
    if [ -f "$dir/pid" ]; then
        kill "$(cat "$dir/pid")" 2>/dev/null || true
        rm -f "$dir/pid"
        log "stopped the instance on port $http_port"
    fi
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) log "usage: $0 start|stop"; exit 2 ;;
esac
