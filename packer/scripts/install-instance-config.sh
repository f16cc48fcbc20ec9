#!/usr/bin/env bash
# The instance scripts, agent hooks, systemd units and log shipping configuration from
# packer/conf (uploaded to $BK_BUILD_DIR/conf). The agent and the lifecycle handler are enabled
# by the boot script, not here: an instance only runs them once it has its settings.
set -Eeuo pipefail

conf="$BK_BUILD_DIR/conf"

install -d -m 0755 /usr/local/bin
for script in "$conf"/bin/*; do
  install -m 0755 -o root -g root "$script" "/usr/local/bin/${script##*/}"
done
# Sourced by the scripts next to it, never run.
chmod 0644 /usr/local/bin/bk-lib.sh

for hook in "$conf"/buildkite-agent/hooks/*; do
  install -m 0755 -o root -g root "$hook" "/etc/buildkite-agent/hooks/${hook##*/}"
done

for unit in "$conf"/systemd/*; do
  install -m 0644 -o root -g root "$unit" "/etc/systemd/system/${unit##*/}"
done

install -d -m 0755 /opt/aws/amazon-cloudwatch-agent/etc
install -m 0644 "$conf/cloudwatch-agent/buildkite-agent.json" \
  /opt/aws/amazon-cloudwatch-agent/etc/buildkite-agent.json
install -m 0644 "$conf/rsyslog/30-docker-daemon.conf" /etc/rsyslog.d/30-docker-daemon.conf
install -m 0644 "$conf/logrotate/buildkite" /etc/logrotate.d/buildkite
install -d -m 0755 /etc/docker
install -m 0644 "$conf/docker/daemon.json" /etc/docker/daemon.json

install -d -m 0755 -o root -g root /var/lib/bk-elastic-stack

# The one root command the agent may run (bk-fix-builds-permissions), checked before it is live.
install -m 0440 -o root -g root "$conf/sudoers/buildkite-agent" /etc/sudoers.d/buildkite-agent
visudo -cf /etc/sudoers.d/buildkite-agent

systemctl daemon-reload
systemctl enable bk-docker-prune.timer bk-docker-binfmt.service
