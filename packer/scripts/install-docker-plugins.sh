#!/usr/bin/env bash
# Docker CLI plugins: buildx and compose, pinned releases; a docker-compose command for pipelines
# still written for Compose v1 (conf/bin/docker-compose, installed with the instance config); and
# the QEMU binfmt handlers for cross-architecture builds (bk-docker-binfmt.service runs the pinned
# installer image after docker starts).
set -Eeuo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=build-lib.sh
. "$BK_BUILD_DIR/build-lib.sh"

plugins=/usr/local/lib/docker/cli-plugins
install -d -m 0755 "$plugins"
fetch_release docker_buildx "$DOCKER_BUILDX_VERSION" "$BK_ARCH" "$DOCKER_BUILDX_SHA256" \
  "$plugins/docker-buildx"
fetch_release docker_compose "$DOCKER_COMPOSE_VERSION" "$BK_ARCH" "$DOCKER_COMPOSE_SHA256" \
  "$plugins/docker-compose"
chmod 0755 "$plugins/docker-buildx" "$plugins/docker-compose"
docker buildx version
docker compose version

# The binfmt installer image, by digest; bk-docker-binfmt.service reads it from here.
printf 'DOCKER_BINFMT_IMAGE=%s\n' "$DOCKER_BINFMT_IMAGE" >/etc/bk-docker-binfmt.env
chmod 0644 /etc/bk-docker-binfmt.env
