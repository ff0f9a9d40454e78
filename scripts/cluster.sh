#!/usr/bin/env bash
# A local "cluster" on loopback, from Debian's packages, no containers:
#   Redis (broker) + PostgreSQL (database) + genstudio server + N workers sharing one data dir.
# Usage: scripts/cluster.sh [WORKERS=2]     (Ctrl-C stops everything)
# Needs: apt-get install redis-server postgresql
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${1:-2}
ROOT=${GENSTUDIO_CLUSTER_DIR:-$PWD/var/cluster}
BIN=.venv/bin
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
REDIS_PORT=${REDIS_PORT:-6390}
PG_PORT=${PG_PORT:-5440}
HTTP_PORT=${PORT:-8000}
command -v redis-server >/dev/null || { echo "redis-server missing: apt-get install redis-server" >&2; exit 1; }
[ -n "$PG_BIN" ] || { echo "PostgreSQL missing: apt-get install postgresql" >&2; exit 1; }
mkdir -p "$ROOT"/{pg,data,logs}
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres "$ROOT/pg"; as_pg=(runuser -u postgres --); fi

pids=()
cleanup() {
  echo "stopping..."
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$ROOT/pg/data" -m fast stop >/dev/null 2>&1 || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$ROOT/logs/redis.log" 2>&1 &
pids+=($!)
if [ ! -f "$ROOT/pg/data/PG_VERSION" ]; then
  "${as_pg[@]}" "$PG_BIN/initdb" -D "$ROOT/pg/data" -A trust -U genstudio >"$ROOT/logs/initdb.log"
fi
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$ROOT/pg/data" -l "$ROOT/pg/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $ROOT/pg" start >/dev/null

export GENSTUDIO_BROKER_URL="redis://127.0.0.1:$REDIS_PORT/0"
export GENSTUDIO_DATABASE_URL="postgresql://genstudio@127.0.0.1:$PG_PORT/postgres"
export GENSTUDIO_DATA_DIR="$ROOT/data"   # the shared storage path: assets, keys, models.json
$BIN/genstudio db upgrade
$BIN/genstudio serve --port "$HTTP_PORT" >"$ROOT/logs/server.log" 2>&1 &
pids+=($!)
for i in $(seq 1 "$WORKERS"); do
  $BIN/genstudio worker --queues image,music,faceswap >"$ROOT/logs/worker$i.log" 2>&1 &
  pids+=($!)
done
echo "genstudio cluster: http://127.0.0.1:$HTTP_PORT  ($WORKERS workers; logs in $ROOT/logs)"
wait
