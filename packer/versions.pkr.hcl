# Every pinned version in the AMI, in one place.
#
# - Packer and the amazon plugin: the packer block below.
# - Operating-system packages (docker, git, jq, AWS CLI v2, amazon-ssm-agent,
#   amazon-cloudwatch-agent, ec2-instance-connect, aws-cfn-bootstrap, rsyslog): Amazon Linux 2023
#   locks its package repository to the release of the source AMI, so the packages are pinned by
#   the source AMI the build records in the manifest and in the AMI's tags.
# - Container images: local.images, by digest (the QEMU binfmt installer for cross-architecture
#   builds, the same image and digest the reference stack uses).
# - Release downloads: local.versions (release tags) and local.checksums (the SHA-256 of each
#   download per architecture, and the commit each plugin tag must resolve to). An install script
#   refuses a download whose checksum is missing or different, so after changing a version run
#   ./pin-checksums.sh (needs network access) and review the diff.

packer {
  required_version = ">= 1.10.0, < 2.0.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "1.3.9"
    }
  }
}

locals {
  versions = {
    buildkite_agent     = "3.137.0"
    docker_buildx       = "0.34.1"
    docker_compose      = "5.1.4"
    git_lfs             = "3.7.1"
    s3secrets_helper    = "2.8.0"
    plugin_secrets      = "v2.8.0"
    plugin_ecr          = "v2.11.0"
    plugin_docker_login = "v3.0.0"
  }

  # Filled by ./pin-checksums.sh from the downloads themselves.
  checksums = {
    buildkite_agent_x86_64     = ""
    buildkite_agent_arm64      = ""
    docker_buildx_x86_64       = ""
    docker_buildx_arm64        = ""
    docker_compose_x86_64      = ""
    docker_compose_arm64       = ""
    git_lfs_x86_64             = ""
    git_lfs_arm64              = ""
    s3secrets_helper_x86_64    = ""
    s3secrets_helper_arm64     = ""
    plugin_secrets_commit      = "cb2704255976d448a825fc67d3b8008d489800a1"
    plugin_ecr_commit          = "fdd631f69aec7599afb908ba81f87fb7630848d3"
    plugin_docker_login_commit = "725a4e25d71d2a3c19867dc46937b19c58149bee"
  }

  images = {
    docker_binfmt = "tonistiigi/binfmt:qemu-v7.0.0-28@sha256:66e11bea77a5ea9d6f0fe79b57cd2b189b5d15b93a2bdb925be22949232e4e55"
  }
}
