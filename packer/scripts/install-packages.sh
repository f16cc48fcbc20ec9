#!/usr/bin/env bash
# Operating-system packages from the Amazon Linux 2023 repository (locked to the source AMI's
# release, so the source AMI pins their versions).
set -Eeuo pipefail

packages=(
  amazon-cloudwatch-agent
  amazon-ssm-agent
  aws-cfn-bootstrap
  awscli-2
  docker
  ec2-instance-connect
  git
  jq
  logrotate
  rsyslog
)

dnf install -y "${packages[@]}"
dnf clean all

systemctl enable docker.service rsyslog.service amazon-ssm-agent.service
PATH="$PATH:/opt/aws/bin"
for command in aws cfn-signal docker git jq amazon-cloudwatch-agent-ctl; do
  command -v "$command" >/dev/null || {
    printf 'missing %s after installing packages\n' "$command" >&2
    exit 1
  }
done
