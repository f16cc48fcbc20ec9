#!/usr/bin/env bash
# pin-checksums.sh [VERSIONS_FILE]: pin what the AMI build downloads.
#
# For every release in local.versions of versions.pkr.hcl (default: the one next to this script)
# it downloads the x86_64 and arm64 artifacts, writes their SHA-256 into local.checksums, and
# writes the commit each plugin tag resolves to; the file changes only when every pin was found.
# Run it after changing a version, on a machine
# with network access, and review the diff like any other change: the build installs only what
# matches these pins.
set -Eeuo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR
# shellcheck source=scripts/build-lib.sh
. "$here/scripts/build-lib.sh"

versions_file="${1:-$here/versions.pkr.hcl}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pinned="$work/versions.pkr.hcl"

# hcl_value KEY: the quoted value of `KEY = "..."` in the versions being pinned.
hcl_value() {
  sed -nE "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"([^\"]*)\".*/\1/p" "$pinned" | head -n 1
}

# set_hcl_value KEY VALUE: replace the quoted value of `KEY = "..."` in the versions being pinned.
set_hcl_value() {
  if ! grep -qE "^[[:space:]]*$1[[:space:]]*=" "$pinned"; then
    printf '%s is missing from %s\n' "$1" "$versions_file" >&2
    return 1
  fi
  sed -i -E "s/^([[:space:]]*$1[[:space:]]*=[[:space:]]*)\"[^\"]*\"/\1\"$2\"/" "$pinned"
}

main() {
  local name version arch url sum tag repository refs commit
  cp "$versions_file" "$pinned"

  for name in buildkite_agent docker_buildx docker_compose git_lfs s3secrets_helper; do
    version="$(hcl_value "$name")"
    if [[ -z "$version" ]]; then
      printf 'no version for %s in %s\n' "$name" "$versions_file" >&2
      return 1
    fi
    for arch in x86_64 arm64; do
      url="$(artifact_url "$name" "$version" "$arch")"
      curl --silent --show-error --fail --location --proto '=https' --retry 3 \
        --output "$work/artifact" "$url"
      sum="$(sha256sum "$work/artifact" | cut -d' ' -f1)"
      set_hcl_value "${name}_${arch}" "$sum"
      printf '%s %s %s: %s\n' "$name" "$version" "$arch" "$sum"
    done
  done

  for name in plugin_secrets plugin_ecr plugin_docker_login; do
    tag="$(hcl_value "$name")"
    repository="$(plugin_repository "$name")"
    refs="$(git ls-remote --tags "$repository" "$tag")"
    # An annotated tag's commit is on its peeled (^{}) line.
    commit="$(awk -v ref="refs/tags/$tag^{}" '$2 == ref { print $1 }' <<<"$refs")"
    if [[ -z "$commit" ]]; then
      commit="$(awk -v ref="refs/tags/$tag" '$2 == ref { print $1 }' <<<"$refs")"
    fi
    if ! [[ "$commit" =~ ^[0-9a-f]{40}$ ]]; then
      printf 'tag %s not found in %s\n' "$tag" "$repository" >&2
      return 1
    fi
    set_hcl_value "${name}_commit" "$commit"
    printf '%s %s: %s\n' "$name" "$tag" "$commit"
  done
  cp "$pinned" "$versions_file"
}

main "$@"
