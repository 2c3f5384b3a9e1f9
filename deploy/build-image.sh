#!/usr/bin/env bash
# Builds the Rivulet container image with no registry: stages the binary and what it needs at run
# time (deploy/stage-rootfs.sh), then `docker build`s deploy/Dockerfile, which starts FROM scratch.
#
#   deploy/build-image.sh [--binary PATH] [--tag TAG]
#
# Without --binary it builds the release binary first (cargo build --release -p rivulet).
# The tag defaults to rivulet:latest, the image docker-compose.yml runs.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
tag="rivulet:latest"
while (($#)); do
    case "$1" in
        --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
        --tag) tag="${2:?--tag needs a name}"; shift 2 ;;
        *) echo "usage: $0 [--binary PATH] [--tag TAG]" >&2; exit 2 ;;
    esac
done

if [[ -z "$binary" ]]; then
    echo "== cargo build --release -p rivulet"
    cargo build --release -p rivulet
    binary="${CARGO_TARGET_DIR:-target}/release/rivulet"
fi

context="$(mktemp -d "${TMPDIR:-/tmp}/rivulet-image.XXXXXX")"
trap 'rm -rf "$context"' EXIT
deploy/stage-rootfs.sh "$binary" "$context"

echo "== docker build -t $tag"
docker build --quiet --tag "$tag" "$context" >/dev/null
size="$(docker image inspect --format '{{.Size}}' "$tag")"
echo "built $tag: $((size / 1024 / 1024)) MiB"
