#!/usr/bin/env bash
# Leave nothing from the build in the AMI: build files, package caches, logs, host keys, the
# builder's SSH key, and cloud-init's record of this instance (so user data runs on every new one).
set -Eeuo pipefail

rm -rf "${BK_BUILD_DIR:?}"
dnf clean all
rm -rf /var/cache/dnf/* /var/lib/bk-elastic-stack/*
rm -f /etc/ssh/ssh_host_* /home/ec2-user/.ssh/authorized_keys /root/.ssh/authorized_keys
find /var/log -type f \( -name '*.log' -o -name messages -o -name secure \) -exec truncate -s 0 {} +
cloud-init clean --logs
