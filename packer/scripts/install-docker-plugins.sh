#!/usr/bin/env bash
# Docker CLI plugins: buildx and compose, pinned releases.
set -Eeuo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=build-lib.sh
. "$BK_BUILD_DIR/build-lib.sh"

plugins=/usr/local/lib/docker/cli-plugins
install -d -m 0755 "$plugins"
fetch_verified "$(artifact_url docker_buildx "$DOCKER_BUILDX_VERSION" "$BK_ARCH")" \
  "$DOCKER_BUILDX_SHA256" "$plugins/docker-buildx"
fetch_verified "$(artifact_url docker_compose "$DOCKER_COMPOSE_VERSION" "$BK_ARCH")" \
  "$DOCKER_COMPOSE_SHA256" "$plugins/docker-compose"
chmod 0755 "$plugins/docker-buildx" "$plugins/docker-compose"
docker buildx version
docker compose version
