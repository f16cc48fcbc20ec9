# shellcheck shell=bash
# build-lib.sh: helpers for the AMI install scripts (sourced by them, and by ../pin-checksums.sh).
#
# Owns the download URL of every pinned release artifact and the rule that nothing downloaded is
# installed unless its SHA-256 matches the pin in versions.pkr.hcl.

# go_arch ARCH: the Go-style architecture name release assets use (amd64, arm64).
go_arch() {
  case "$1" in
    x86_64) printf 'amd64' ;;
    arm64) printf 'arm64' ;;
    *)
      printf 'unknown architecture %s\n' "$1" >&2
      return 1
      ;;
  esac
}

# artifact_url NAME VERSION ARCH: where a pinned release artifact is downloaded from.
artifact_url() {
  local name=$1 version=$2 arch=$3 goarch
  goarch="$(go_arch "$arch")" || return 1
  case "$name" in
    buildkite_agent)
      printf 'https://github.com/buildkite/agent/releases/download/v%s/buildkite-agent-linux-%s-%s.tar.gz' \
        "$version" "$goarch" "$version"
      ;;
    docker_buildx)
      printf 'https://github.com/docker/buildx/releases/download/v%s/buildx-v%s.linux-%s' \
        "$version" "$version" "$goarch"
      ;;
    docker_compose)
      # Compose names its assets after uname -m.
      local compose_arch=x86_64
      [[ "$arch" == arm64 ]] && compose_arch=aarch64
      printf 'https://github.com/docker/compose/releases/download/v%s/docker-compose-linux-%s' \
        "$version" "$compose_arch"
      ;;
    git_lfs)
      printf 'https://github.com/git-lfs/git-lfs/releases/download/v%s/git-lfs-linux-%s-v%s.tar.gz' \
        "$version" "$goarch" "$version"
      ;;
    s3secrets_helper)
      printf 'https://github.com/buildkite/elastic-ci-stack-s3-secrets-hooks/releases/download/v%s/s3secrets-helper-linux-%s' \
        "$version" "$goarch"
      ;;
    *)
      printf 'unknown artifact %s\n' "$name" >&2
      return 1
      ;;
  esac
}

# plugin_repository NAME: the git repository of a built-in agent plugin.
plugin_repository() {
  case "$1" in
    plugin_secrets) printf 'https://github.com/buildkite/elastic-ci-stack-s3-secrets-hooks.git' ;;
    plugin_ecr) printf 'https://github.com/buildkite-plugins/ecr-buildkite-plugin.git' ;;
    plugin_docker_login) printf 'https://github.com/buildkite-plugins/docker-login-buildkite-plugin.git' ;;
    *)
      printf 'unknown plugin %s\n' "$1" >&2
      return 1
      ;;
  esac
}

# fetch_verified URL SHA256 DESTINATION: download URL and keep it only if its SHA-256 matches.
fetch_verified() {
  local url=$1 expected=$2 destination=$3 actual
  if ! [[ "$expected" =~ ^[0-9a-f]{64}$ ]]; then
    printf 'no pinned SHA-256 for %s: run packer/pin-checksums.sh and review the diff\n' "$url" >&2
    return 1
  fi
  curl --silent --show-error --fail --location --proto '=https' --retry 5 --retry-connrefused \
    --output "$destination.partial" "$url"
  actual="$(sha256sum "$destination.partial" | cut -d' ' -f1)"
  if [[ "$actual" != "$expected" ]]; then
    rm -f "$destination.partial"
    printf 'checksum mismatch for %s: expected %s, got %s\n' "$url" "$expected" "$actual" >&2
    return 1
  fi
  mv -f "$destination.partial" "$destination"
}
