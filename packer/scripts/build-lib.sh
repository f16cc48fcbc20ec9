# shellcheck shell=bash
# build-lib.sh: helpers for the AMI install scripts (sourced by them, and by ../pin-checksums.sh).
#
# Owns the download URL of every pinned release artifact and the rule that nothing downloaded is
# installed unless its SHA-256 matches the pin in versions.pkr.hcl. The quick start (an instance
# installing at first boot what the AMI build would have baked, see packer/quick-start) runs the
# same install steps with BK_ACCEPT_PUBLISHED_CHECKSUMS=true: a release without a pin is then
# checked against the checksum its vendor publishes for that release instead of being refused.

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
      # Buildkite's download site publishes a .sha256 next to every binary.
      printf 'https://download.buildkite.com/agent/stable/%s/buildkite-agent-linux-%s' \
        "$version" "$goarch"
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

# checksum_from_listing FILE ASSET: the SHA-256 a sha256sum-style listing gives for ASSET
# ("<hex>  name" or "<hex> *name"; a bare "<hex>" when the listing is for one file only).
checksum_from_listing() {
  local listing=$1 asset=$2
  awk -v asset="$asset" '
    { name = $2; sub(/^\*/, "", name) }
    length($1) == 64 && $1 ~ /^[0-9a-fA-F]+$/ && (name == asset || NF == 1) { print tolower($1); exit }
  ' "$listing"
}

# published_checksum NAME VERSION ARCH: the SHA-256 the vendor publishes for a release artifact:
# Buildkite's .sha256 file, the checksums.txt of buildx and compose, git-lfs's sha256sums.asc,
# and for s3secrets-helper (which publishes no checksum file) the digest GitHub computed when the
# asset was uploaded (the releases API; immutable). Prints nothing and fails when none is found.
published_checksum() {
  local name=$1 version=$2 arch=$3 url asset listing sum=""
  url="$(artifact_url "$name" "$version" "$arch")" || return 1
  asset="${url##*/}"
  listing="$(mktemp)"
  case "$name" in
    buildkite_agent) _fetch_text "$url.sha256" "$listing" ;;
    docker_buildx | docker_compose) _fetch_text "${url%/*}/checksums.txt" "$listing" ;;
    git_lfs) _fetch_text "${url%/*}/sha256sums.asc" "$listing" ;;
    s3secrets_helper)
      _fetch_text "https://api.github.com/repos/buildkite/elastic-ci-stack-s3-secrets-hooks/releases/tags/v$version" "$listing" &&
        jq -r --arg asset "$asset" \
          '.assets[] | select(.name == $asset) | (.digest // "") | sub("^sha256:"; "") + "  " + $asset' \
          "$listing" >"$listing.digest" && mv -f "$listing.digest" "$listing"
      ;;
    *)
      printf 'no published checksum known for %s\n' "$name" >&2
      rm -f "$listing"
      return 1
      ;;
  esac
  if [[ -s "$listing" ]]; then
    sum="$(checksum_from_listing "$listing" "$asset")"
  fi
  rm -f "$listing" "$listing.digest"
  if ! [[ "$sum" =~ ^[0-9a-f]{64}$ ]]; then
    printf 'no published SHA-256 found for %s\n' "$url" >&2
    return 1
  fi
  printf '%s' "$sum"
}

_fetch_text() {
  curl --silent --show-error --fail --location --proto '=https' --retry 5 --retry-connrefused \
    --max-time 60 --output "$2" "$1"
}

# fetch_release NAME VERSION ARCH PINNED_SHA256 DESTINATION: download a release artifact and keep
# it only if it matches its pin; without a pin, only when BK_ACCEPT_PUBLISHED_CHECKSUMS is true
# (the quick start), against the vendor's published checksum for that release.
fetch_release() {
  local name=$1 version=$2 arch=$3 pinned=$4 destination=$5 url expected
  url="$(artifact_url "$name" "$version" "$arch")" || return 1
  if [[ -n "$pinned" ]]; then
    printf 'verifying %s %s (%s) against its pin in versions.pkr.hcl\n' "$name" "$version" "$arch" >&2
    fetch_verified "$url" "$pinned" "$destination"
    return
  fi
  if [[ "${BK_ACCEPT_PUBLISHED_CHECKSUMS:-false}" != true ]]; then
    fetch_verified "$url" "" "$destination"
    return
  fi
  if ! expected="$(published_checksum "$name" "$version" "$arch")"; then
    printf 'verification failed: %s has no pin and no published checksum could be read\n' "$url" >&2
    return 1
  fi
  printf 'verifying %s %s (%s) against the checksum its vendor published\n' "$name" "$version" "$arch" >&2
  fetch_verified "$url" "$expected" "$destination"
}

# versions_value FILE BLOCK KEY: the quoted value of KEY inside `BLOCK = { ... }` of versions.pkr.hcl.
versions_value() {
  awk -v block="$2" -v key="$3" '
    $1 == block && $2 == "=" && $3 == "{" { inside = 1; next }
    inside && $1 == "}" { inside = 0 }
    inside && $1 == key && $2 == "=" { value = $3; gsub(/"/, "", value); print value; exit }
  ' "$1"
}

# pinned_environment VERSIONS_FILE ARCH: the NAME=value settings the install steps read, from
# versions.pkr.hcl, exactly as buildkite-agent.pkr.hcl passes them at bake time (a test holds
# both lists equal). BK_ARCH and BK_BUILD_DIR are the caller's.
pinned_environment() {
  local file=$1 arch=$2 name
  for name in buildkite_agent docker_buildx docker_compose git_lfs s3secrets_helper; do
    printf '%s_VERSION=%s\n' "${name^^}" "$(versions_value "$file" versions "$name")"
    printf '%s_SHA256=%s\n' "${name^^}" "$(versions_value "$file" checksums "${name}_${arch}")"
  done
  for name in plugin_secrets plugin_ecr plugin_docker_login; do
    printf '%s_REF=%s\n' "${name^^}" "$(versions_value "$file" versions "$name")"
    printf '%s_COMMIT=%s\n' "${name^^}" "$(versions_value "$file" checksums "${name}_commit")"
  done
  printf 'DOCKER_BINFMT_IMAGE=%s\n' "$(versions_value "$file" images docker_binfmt)"
}

