# Every pinned version in the AMI, in one place.
#
# - Packer and the amazon plugin: the packer block below.
# - Operating-system packages (docker, git, jq, AWS CLI v2, amazon-ssm-agent,
#   amazon-cloudwatch-agent, ec2-instance-connect, aws-cfn-bootstrap, rsyslog): Amazon Linux 2023
#   locks its package repository to the release of the source AMI, so the packages are pinned by
#   the source AMI the build records in the manifest and in the AMI's tags.
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
    buildkite_agent     = "3.111.0"
    docker_buildx       = "0.26.1"
    docker_compose      = "2.38.2"
    git_lfs             = "3.4.0"
    s3secrets_helper    = "2.7.0"
    plugin_secrets      = "v2.7.0"
    plugin_ecr          = "v2.10.0"
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
    plugin_secrets_commit      = ""
    plugin_ecr_commit          = ""
    plugin_docker_login_commit = ""
  }
}
