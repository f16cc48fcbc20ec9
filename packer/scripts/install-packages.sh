#!/usr/bin/env bash
# Operating-system packages from the Amazon Linux 2023 repository (locked to the source AMI's
# release, so the source AMI pins their versions; dnf checks every package's GPG signature
# against Amazon's key). The tools are the ones the reference stack's instance checks expect.
set -Eeuo pipefail

packages=(
  amazon-cloudwatch-agent
  amazon-ecr-credential-helper
  amazon-ssm-agent
  aws-cfn-bootstrap
  awscli-2
  bind-utils
  docker
  ec2-instance-connect
  gcc
  gcc-c++
  git
  jq
  logrotate
  lsof
  make
  mdadm
  nvme-cli
  pigz
  # pgrep: bk-lifecycle-handler tells a busy agent by its job processes.
  procps-ng
  python3
  python3-pip
  rsyslog
  unzip
  wget
  zip
)

dnf install -y "${packages[@]}"
dnf clean all

systemctl enable docker.service rsyslog.service amazon-ssm-agent.service
PATH="$PATH:/opt/aws/bin"
for command in aws cfn-signal docker git jq amazon-cloudwatch-agent-ctl curl dig lsof make wget \
  zip unzip pigz mdadm nvme gcc python3 pip3 docker-credential-ecr-login pgrep; do
  command -v "$command" >/dev/null || {
    printf 'missing %s after installing packages\n' "$command" >&2
    exit 1
  }
done
