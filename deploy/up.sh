#!/usr/bin/env bash
# Brings up the 3-node cluster of docker-compose.yml from a fresh clone: builds the release binary
# and the image (deploy/build-image.sh), runs `docker compose up -d`, and waits until every node
# reports healthy (registered, unfenced and serving). `docker compose down -v` takes it away.
#
#   ./deploy/up.sh            # build, start, wait
#   RIVULET_BIN=path ./deploy/up.sh   # use this binary instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."

# Compose v2 (`docker compose`) or v1 (`docker-compose`), whichever this machine has.
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose=(docker-compose)
else
    echo "up.sh: neither 'docker compose' nor 'docker-compose' is installed" >&2
    exit 1
fi

if [[ -n "${RIVULET_BIN:-}" ]]; then
    deploy/build-image.sh --binary "$RIVULET_BIN" --tag "${RIVULET_IMAGE:-rivulet:latest}"
else
    deploy/build-image.sh --tag "${RIVULET_IMAGE:-rivulet:latest}"
fi

echo "== ${compose[*]} up -d"
"${compose[@]}" up -d

echo "== waiting for the nodes to be healthy"
prefix="${RIVULET_PREFIX:-rivulet}"
deadline=$((SECONDS + ${RIVULET_UP_TIMEOUT:-120}))
while :; do
    states=()
    healthy=0
    for n in 1 2 3; do
        state="$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$prefix-$n" 2>/dev/null || echo missing)"
        states+=("$prefix-$n: $state")
        [[ "$state" == healthy ]] && healthy=$((healthy + 1))
    done
    if ((healthy == 3)); then
        break
    fi
    if ((SECONDS >= deadline)); then
        echo "up.sh: not every node became healthy: ${states[*]}" >&2
        echo "see: ${compose[*]} logs" >&2
        exit 1
    fi
    sleep 1
done
echo "cluster up: ${states[*]}"
cat <<MSG
Kafka clients on this machine: localhost:${RIVULET_PORT_1:-19092},localhost:${RIVULET_PORT_2:-29092},localhost:${RIVULET_PORT_3:-39092}
Watch it:   target/release/rivulet cluster watch --bootstrap localhost:${RIVULET_PORT_1:-19092}
Take down:  ${compose[*]} down -v
MSG
