#!/usr/bin/env bash
# Starts a throwaway ClickHouse for Mutant's tests and examples, as our own
# processes, on loopback, with data under .build/.
#
#   scripts/clickhouse.sh start          install if missing, start one instance,
#                                        wait until ready, print the URL to export
#                                        as MUTANT_CLICKHOUSE_URL
#   scripts/clickhouse.sh stop           stop the instance this script started
#   scripts/clickhouse.sh start-cluster  install if missing (ClickHouse and
#                                        ZooKeeper), start the cluster `mutant`
#                                        of 2 shards x 2 replicas with one
#                                        ZooKeeper, each its own process (only
#                                        what is not running), wait until ready,
#                                        print node 1's URL as the last line
#   scripts/clickhouse.sh stop-cluster   stop the cluster's processes
#
# MUTANT_CLICKHOUSE_HTTP_PORT (default 18123) moves the single instance; the
# native and interserver ports follow it (+1 and +2).
# MUTANT_CLICKHOUSE_CLUSTER_BASE_PORT (default 18600) moves the cluster:
# ZooKeeper listens on the base port, node N (1..4) on base + 10 N (HTTP),
# +1 (native) and +2 (interserver). Nodes 1 and 2 are shard 1's replicas,
# nodes 3 and 4 shard 2's. Data lives in .build/clickhouse-cluster-<base>/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
http_port="${MUTANT_CLICKHOUSE_HTTP_PORT:-18123}"
tcp_port=$((http_port + 1))
interserver_port=$((http_port + 2))
dir="$root/.build/clickhouse-$http_port"
url="http://127.0.0.1:$http_port"

cluster_base="${MUTANT_CLICKHOUSE_CLUSTER_BASE_PORT:-18600}"
cluster_dir="$root/.build/clickhouse-cluster-$cluster_base"
cluster_name="mutant"
zookeeper_port="$cluster_base"

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
    # A throwaway server on a build machine whose disk may be nearly full:
    # parts replaced by a merge go after 30 s, not 8 minutes (a minute of
    # small writes otherwise keeps hundreds of merged copies of a table),
    # and the log keeps what explains a failure, not every trace.
    mkdir -p "$dir/config.d"
    cat >"$dir/config.d/disk.xml" <<EOF
<yandex>
    <merge_tree>
        <old_parts_lifetime>30</old_parts_lifetime>
    </merge_tree>
    <logger>
        <level>information</level>
        <size>100M</size>
        <count>2</count>
    </logger>
</yandex>
EOF
}

ready() { curl -sf "$url/?query=SELECT%201" >/dev/null 2>&1; }

# Starts clickhouse-server on the config in $dir (see write_config) and
# waits until $url answers.
launch() {
    local binary
    binary="$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)"
    nohup "$binary" --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 1 120); do
        if ready; then
            log "ClickHouse $(curl -sf "$url/?query=SELECT%20version()") ready at $url (data in $dir)"
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

start() {
    if ready; then
        log "already running at $url"
        echo "$url"
        return
    fi
    install_if_missing
    write_config
    launch
    echo "$url"
}

stop() {
    if [ -f "$dir/pid" ]; then
        kill "$(cat "$dir/pid")" 2>/dev/null || true
        rm -f "$dir/pid"
        log "stopped the instance on port $http_port"
    fi
}

install_zookeeper_if_missing() {
    if [ -f /usr/share/java/zookeeper.jar ]; then
        return
    fi
    log "installing zookeeper from the distribution's packages (it pulls in a Java runtime)"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zookeeper >/dev/null
}

# `stat`, not `ruok`: ZooKeeper answers `imok` while it still loads its
# data, and a ClickHouse with replicated tables that starts then fails.
zookeeper_ready() {
    local answer
    answer="$( (exec 3<>"/dev/tcp/127.0.0.1/$zookeeper_port" && printf stat >&3 && cat <&3) 2>/dev/null || true)"
    [[ "$answer" == *"Mode: standalone"* ]]
}

# ZooKeeper as our own Java process, with the package's jars on the
# classpath and our own zoo.cfg; `stat` is its ready check.
start_zookeeper() {
    local zookeeper_dir="$cluster_dir/zookeeper"
    if zookeeper_ready; then
        return
    fi
    mkdir -p "$zookeeper_dir/data"
    cat >"$zookeeper_dir/zoo.cfg" <<EOF
tickTime=500
initLimit=10
syncLimit=5
dataDir=$zookeeper_dir/data
clientPort=$zookeeper_port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,stat
maxClientCnxns=0
autopurge.purgeInterval=1
EOF
    local classpath="" jar
    for jar in zookeeper zookeeper-jute slf4j-api slf4j-nop commons-cli commons-io metrics-core \
        snappy-java netty-handler netty-common netty-buffer netty-transport netty-resolver \
        netty-codec netty-transport-native-epoll netty-transport-native-unix-common; do
        classpath="$classpath:/usr/share/java/$jar.jar"
    done
    nohup java -Xmx256m -cp "${classpath#:}" org.apache.zookeeper.server.quorum.QuorumPeerMain \
        "$zookeeper_dir/zoo.cfg" >"$zookeeper_dir/stdout.log" 2>&1 &
    echo $! >"$zookeeper_dir/pid"
    for _ in $(seq 1 120); do
        if zookeeper_ready; then
            log "ZooKeeper ready on 127.0.0.1:$zookeeper_port (data in $zookeeper_dir)"
            return
        fi
        if ! kill -0 "$(cat "$zookeeper_dir/pid")" 2>/dev/null; then
            log "ZooKeeper exited during start-up; its output:"
            tail -n 30 "$zookeeper_dir/stdout.log" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    log "ZooKeeper did not answer ruok on port $zookeeper_port within 60 s; see $zookeeper_dir/stdout.log"
    exit 1
}

# The HTTP port of cluster node $1 (1..4).
node_http_port() { echo $((cluster_base + 10 * $1)); }

# Node $1's part of the topology, merged by ClickHouse from config.d/:
# ZooKeeper, its macros (shard $2, replica name), and the cluster (each
# shard's replicas by their native ports, replication left to the
# replicated tables).
write_cluster_config() {
    local node="$1" shard="$2"
    mkdir -p "$dir/config.d"
    local shards="" shard_index replica_index replica_node
    for shard_index in 1 2; do
        shards="$shards            <shard>
                <internal_replication>true</internal_replication>
"
        for replica_index in 1 2; do
            replica_node=$(((shard_index - 1) * 2 + replica_index))
            shards="$shards                <replica><host>127.0.0.1</host><port>$(($(node_http_port "$replica_node") + 1))</port></replica>
"
        done
        shards="$shards            </shard>
"
    done
    cat >"$dir/config.d/cluster.xml" <<EOF
<yandex>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$zookeeper_port</port></node>
    </zookeeper>
    <macros>
        <shard>$shard</shard>
        <replica>node$node</replica>
    </macros>
    <remote_servers>
        <$cluster_name>
$shards        </$cluster_name>
    </remote_servers>
</yandex>
EOF
}

start_cluster() {
    install_if_missing
    install_zookeeper_if_missing
    start_zookeeper
    local node
    for node in 1 2 3 4; do
        http_port="$(node_http_port "$node")"
        tcp_port=$((http_port + 1))
        interserver_port=$((http_port + 2))
        dir="$cluster_dir/node$node"
        url="http://127.0.0.1:$http_port"
        if ready; then
            continue
        fi
        write_config
        write_cluster_config "$node" $(((node + 1) / 2))
        launch
    done
    url="http://127.0.0.1:$(node_http_port 1)"
    local n_replicas
    n_replicas="$(curl -sf "$url/?query=SELECT%20count()%20FROM%20system.clusters%20WHERE%20cluster%20%3D%20%27$cluster_name%27")"
    if [ "$n_replicas" != "4" ]; then
        log "node 1 lists $n_replicas replicas in cluster $cluster_name, not 4; see $cluster_dir/node1/config.d"
        exit 1
    fi
    log "cluster $cluster_name (2 shards x 2 replicas, ZooKeeper on port $zookeeper_port) ready"
    echo "$url"
}

# Stops the process whose pid is in file $1 (SIGTERM, SIGKILL after 15 s).
stop_pid_file() {
    local pid_file="$1" pid
    [ -f "$pid_file" ] || return 0
    pid="$(cat "$pid_file")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pid_file"
}

stop_cluster() {
    local node
    for node in 1 2 3 4; do
        stop_pid_file "$cluster_dir/node$node/pid"
    done
    stop_pid_file "$cluster_dir/zookeeper/pid"
    log "stopped the cluster on ports $cluster_base.."
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    start-cluster) start_cluster ;;
    stop-cluster) stop_cluster ;;
    *) log "usage: $0 start|stop|start-cluster|stop-cluster"; exit 2 ;;
esac
