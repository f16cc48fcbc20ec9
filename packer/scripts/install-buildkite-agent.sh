#!/usr/bin/env bash
# The buildkite-agent user (uid/gid 2000, in the docker group, home /var/lib/buildkite-agent)
# and the pinned agent release as buildkite-agent-stable. /usr/bin/buildkite-agent points at it
# until the boot script (bk-select-agent-release) chooses the stack's BuildkiteAgentRelease.
set -Eeuo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=build-lib.sh
. "$BK_BUILD_DIR/build-lib.sh"

AGENT_HOME=/var/lib/buildkite-agent

getent group buildkite-agent >/dev/null || groupadd --gid 2000 buildkite-agent
id buildkite-agent >/dev/null 2>&1 ||
  useradd --uid 2000 --gid 2000 --groups docker --home-dir "$AGENT_HOME" --create-home \
    --shell /bin/bash buildkite-agent
if [[ "$(id -u buildkite-agent):$(id -g buildkite-agent)" != 2000:2000 ]]; then
  echo "the buildkite-agent user must be uid/gid 2000" >&2
  exit 1
fi

work="$(mktemp -d)"
fetch_release buildkite_agent "$BUILDKITE_AGENT_VERSION" "$BK_ARCH" "$BUILDKITE_AGENT_SHA256" \
  "$work/buildkite-agent"
install -m 0755 -o root -g root "$work/buildkite-agent" /usr/bin/buildkite-agent-stable
rm -rf "$work"
ln -sfn buildkite-agent-stable /usr/bin/buildkite-agent
/usr/bin/buildkite-agent --version

# Root owns the configuration and the hooks; the agent owns only its working directories.
install -d -m 0755 -o root -g root /etc/buildkite-agent /etc/buildkite-agent/hooks
install -d -m 0750 -o buildkite-agent -g buildkite-agent \
  "$AGENT_HOME" "$AGENT_HOME/builds" "$AGENT_HOME/plugins" "$AGENT_HOME/git-mirrors"
