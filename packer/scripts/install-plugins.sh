#!/usr/bin/env bash
# The built-in agent plugins the hooks source: secrets, ecr, docker-login. Each is a pinned tag
# that must resolve to its pinned commit. Root-owned, read-only for the agent.
set -Eeuo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=build-lib.sh
. "$BK_BUILD_DIR/build-lib.sh"

PLUGINS_DIR=/usr/local/buildkite-aws-stack/plugins

# install_plugin NAME DIRECTORY TAG COMMIT
install_plugin() {
  local name=$1 directory=$2 tag=$3 commit=$4 actual
  if ! [[ "$commit" =~ ^[0-9a-f]{40}$ ]]; then
    printf 'no pinned commit for %s %s: run packer/pin-checksums.sh\n' "$name" "$tag" >&2
    return 1
  fi
  rm -rf "${PLUGINS_DIR:?}/$directory"
  git -c advice.detachedHead=false clone --quiet --depth 1 --branch "$tag" \
    "$(plugin_repository "$name")" "$PLUGINS_DIR/$directory"
  actual="$(git -C "$PLUGINS_DIR/$directory" rev-parse HEAD)"
  if [[ "$actual" != "$commit" ]]; then
    printf '%s %s is commit %s, expected %s\n' "$name" "$tag" "$actual" "$commit" >&2
    return 1
  fi
  rm -rf "${PLUGINS_DIR:?}/$directory/.git"
}

install -d -m 0755 -o root -g root "$PLUGINS_DIR"
install_plugin plugin_secrets secrets "$PLUGIN_SECRETS_REF" "$PLUGIN_SECRETS_COMMIT"
install_plugin plugin_ecr ecr "$PLUGIN_ECR_REF" "$PLUGIN_ECR_COMMIT"
install_plugin plugin_docker_login docker-login "$PLUGIN_DOCKER_LOGIN_REF" "$PLUGIN_DOCKER_LOGIN_COMMIT"
chown -R root:root "$PLUGINS_DIR"
chmod -R go-w "$PLUGINS_DIR"
