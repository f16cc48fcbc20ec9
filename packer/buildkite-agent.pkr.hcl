# The Buildkite agent AMI: Amazon Linux 2023 for x86_64 or arm64.
#
#   cd packer && packer init . && packer build -var arch=arm64 .
#
# Pinned versions live in versions.pkr.hcl. Every build appends its AMI ids (one per region it was
# copied to) to the manifest; fill_ami_mappings.py turns the manifest into the fleet template's
# AgentImages mapping. See README.md, "Building the AMI".

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Region the build runs in; the AMI is created here first."
}

variable "arch" {
  type        = string
  default     = "x86_64"
  description = "CPU architecture of the AMI: x86_64 or arm64."
  validation {
    condition     = contains(["x86_64", "arm64"], var.arch)
    error_message = "The arch variable must be x86_64 or arm64."
  }
}

variable "instance_type" {
  type        = string
  default     = ""
  description = "Build instance type; empty picks c6i.large (x86_64) or c6g.large (arm64)."
}

variable "agent_version" {
  type        = string
  default     = ""
  description = "Buildkite agent release to install instead of the pinned one (needs agent_sha256)."
}

variable "agent_sha256" {
  type        = string
  default     = ""
  description = "SHA-256 of the agent release binary (download.buildkite.com) for agent_version and arch."
}

variable "ami_name_prefix" {
  type        = string
  default     = "buildkite-agent-al2023"
  description = "AMI names are <prefix>-<arch>-<UTC timestamp>."
}

variable "ami_users" {
  type        = list(string)
  default     = []
  description = "Account ids the AMI is shared with (an encrypted AMI needs a customer managed key they can use)."
}

variable "ami_regions" {
  type        = list(string)
  default     = []
  description = "Other regions the AMI is copied to."
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for the AMI's snapshot in the build region; empty uses the account's EBS default key."
}

variable "region_kms_key_ids" {
  type        = map(string)
  default     = {}
  description = "KMS key per copy region (required for copies when kms_key_id is a customer managed key)."
}

variable "root_volume_size_gb" {
  type        = number
  default     = 20
  description = "Root volume size of the AMI; the fleet's launch template may make it larger."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet for the build instance; empty uses the default VPC."
}

variable "manifest_path" {
  type        = string
  default     = ""
  description = "Where the build appends its AMI ids; empty means manifest.json next to this template."
}

locals {
  timestamp     = formatdate("YYYYMMDDhhmmss", timestamp())
  instance_type = var.instance_type != "" ? var.instance_type : (var.arch == "arm64" ? "c6g.large" : "c6i.large")
  manifest_path = var.manifest_path != "" ? var.manifest_path : "${path.root}/manifest.json"
  agent_version = var.agent_version != "" ? var.agent_version : local.versions.buildkite_agent
  agent_sha256  = var.agent_version != "" ? var.agent_sha256 : local.checksums["buildkite_agent_${var.arch}"]
  build_dir     = "/tmp/bk"

  # The pinned checksums of this build's architecture.
  arch_checksums = {
    docker_buildx    = local.checksums["docker_buildx_${var.arch}"]
    docker_compose   = local.checksums["docker_compose_${var.arch}"]
    git_lfs          = local.checksums["git_lfs_${var.arch}"]
    s3secrets_helper = local.checksums["s3secrets_helper_${var.arch}"]
  }
}

source "amazon-ebs" "al2023" {
  region          = var.region
  instance_type   = local.instance_type
  subnet_id       = var.subnet_id
  ami_name        = "${var.ami_name_prefix}-${var.arch}-${local.timestamp}"
  ami_description = "Buildkite agent ${local.agent_version} on Amazon Linux 2023 (${var.arch})"
  ami_users       = var.ami_users
  ami_regions     = var.ami_regions

  encrypt_boot       = true
  kms_key_id         = var.kms_key_id
  region_kms_key_ids = var.region_kms_key_ids
  # Instances launched from the AMI default to IMDSv2 only.
  imds_support = "v2.0"
  ena_support  = true

  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-kernel-*-${var.arch}"
      architecture        = var.arch
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  # IMDSv2 only on the build instance too.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = var.root_volume_size_gb
    volume_type           = "gp3"
    delete_on_termination = true
    encrypted             = true
  }

  ssh_username                              = "ec2-user"
  temporary_security_group_source_public_ip = true

  tags = {
    Name                  = "${var.ami_name_prefix}-${var.arch}"
    Architecture          = var.arch
    BuildkiteAgentVersion = local.agent_version
    SourceAMI             = "{{ .SourceAMI }}"
    SourceAMIName         = "{{ .SourceAMIName }}"
  }
  run_tags = {
    Name = "packer ${var.ami_name_prefix}-${var.arch}"
  }
}

build {
  name    = "buildkite-agent"
  sources = ["source.amazon-ebs.al2023"]

  provisioner "shell" {
    inline = ["mkdir -p ${local.build_dir}/conf"]
  }

  provisioner "file" {
    source      = "${path.root}/conf/"
    destination = "${local.build_dir}/conf"
  }

  provisioner "file" {
    source      = "${path.root}/scripts/build-lib.sh"
    destination = "${local.build_dir}/build-lib.sh"
  }

  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
    environment_vars = [
      "BK_ARCH=${var.arch}",
      "BK_BUILD_DIR=${local.build_dir}",
      # An image is built from pins only; the quick start (packer/quick-start) runs these same
      # steps with published checksums accepted for releases that have no pin.
      "BK_ACCEPT_PUBLISHED_CHECKSUMS=false",
      "BUILDKITE_AGENT_VERSION=${local.agent_version}",
      "BUILDKITE_AGENT_SHA256=${local.agent_sha256}",
      "DOCKER_BUILDX_VERSION=${local.versions.docker_buildx}",
      "DOCKER_BUILDX_SHA256=${local.arch_checksums.docker_buildx}",
      "DOCKER_COMPOSE_VERSION=${local.versions.docker_compose}",
      "DOCKER_COMPOSE_SHA256=${local.arch_checksums.docker_compose}",
      "GIT_LFS_VERSION=${local.versions.git_lfs}",
      "GIT_LFS_SHA256=${local.arch_checksums.git_lfs}",
      "S3SECRETS_HELPER_VERSION=${local.versions.s3secrets_helper}",
      "S3SECRETS_HELPER_SHA256=${local.arch_checksums.s3secrets_helper}",
      "PLUGIN_SECRETS_REF=${local.versions.plugin_secrets}",
      "PLUGIN_SECRETS_COMMIT=${local.checksums.plugin_secrets_commit}",
      "PLUGIN_ECR_REF=${local.versions.plugin_ecr}",
      "PLUGIN_ECR_COMMIT=${local.checksums.plugin_ecr_commit}",
      "PLUGIN_DOCKER_LOGIN_REF=${local.versions.plugin_docker_login}",
      "PLUGIN_DOCKER_LOGIN_COMMIT=${local.checksums.plugin_docker_login_commit}",
      "DOCKER_BINFMT_IMAGE=${local.images.docker_binfmt}",
    ]
    # The install steps, in scripts/install-steps.txt order: the quick start runs the same list
    # at first boot (a test holds the two equal). cleanup.sh runs at bake time only.
    scripts = [
      "${path.root}/scripts/install-packages.sh",
      "${path.root}/scripts/install-buildkite-agent.sh",
      "${path.root}/scripts/install-docker-plugins.sh",
      "${path.root}/scripts/install-git-lfs.sh",
      "${path.root}/scripts/install-s3secrets-helper.sh",
      "${path.root}/scripts/install-plugins.sh",
      "${path.root}/scripts/install-instance-config.sh",
      "${path.root}/scripts/cleanup.sh",
    ]
  }

  post-processor "manifest" {
    output     = local.manifest_path
    strip_path = true
    custom_data = {
      arch          = var.arch
      agent_version = local.agent_version
    }
  }
}
