#!/usr/bin/env bats
# packer/pin-checksums.sh and the build's download check, against fake downloads.

load helpers/common

setup() {
  setup_fakes
  PIN="$REPO_ROOT/packer/pin-checksums.sh"
  VERSIONS="$BATS_TEST_TMPDIR/versions.pkr.hcl"
  cp "$REPO_ROOT/packer/versions.pkr.hcl" "$VERSIONS"
  # shellcheck source=../../packer/scripts/build-lib.sh
  . "$REPO_ROOT/packer/scripts/build-lib.sh"
}

# hcl KEY: a quoted value from the copied versions file.
hcl() {
  sed -nE "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"([^\"]*)\".*/\1/p" "$VERSIONS"
}

# serve NAME ARCH: publish a fake release artifact and print its SHA-256.
serve() {
  local url file
  url="$(artifact_url "$1" "$(hcl "$1")" "$2")"
  file="$FAKE_STATE/web/${url#https://}"
  mkdir -p "$(dirname "$file")"
  printf 'fake %s for %s\n' "$1" "$2" >"$file"
  sha256sum "$file" | cut -d' ' -f1
}

@test "pin-checksums writes each artifact's SHA-256 and each plugin tag's commit" {
  declare -A expected
  for name in buildkite_agent docker_buildx docker_compose git_lfs s3secrets_helper; do
    for arch in x86_64 arm64; do
      expected["${name}_${arch}"]="$(serve "$name" "$arch")"
    done
  done
  annotated=1111111111111111111111111111111111111111
  peeled=2222222222222222222222222222222222222222
  respond git-ls-remote 0 "$annotated	refs/tags/$(hcl plugin_secrets)
$peeled	refs/tags/$(hcl plugin_secrets)^{}"
  respond git-ls-remote 0 "3333333333333333333333333333333333333333	refs/tags/$(hcl plugin_ecr)"
  respond git-ls-remote 0 "4444444444444444444444444444444444444444	refs/tags/$(hcl plugin_docker_login)"

  run env -i PATH="$FAKE_BIN:/usr/bin:/bin" FAKE_STATE="$FAKE_STATE" "$PIN" "$VERSIONS"
  assert_success

  for key in "${!expected[@]}"; do
    [[ "$(hcl "$key")" == "${expected[$key]}" ]] || fail_with "$key is '$(hcl "$key")'"
  done
  [[ "$(hcl plugin_secrets_commit)" == "$peeled" ]] || fail_with "annotated tag not peeled"
  [[ "$(hcl plugin_ecr_commit)" == 3333333333333333333333333333333333333333 ]]
  [[ "$(hcl plugin_docker_login_commit)" == 4444444444444444444444444444444444444444 ]]
  assert_called "git ls-remote --tags https://github.com/buildkite/elastic-ci-stack-s3-secrets-hooks.git"
  # Nothing but the checksums changed.
  diff <(grep -v '_\(x86_64\|arm64\|commit\) *=' "$REPO_ROOT/packer/versions.pkr.hcl") \
    <(grep -v '_\(x86_64\|arm64\|commit\) *=' "$VERSIONS")
}

@test "a missing download fails pin-checksums without touching the pins" {
  serve buildkite_agent x86_64
  serve buildkite_agent arm64
  run env -i PATH="$FAKE_BIN:/usr/bin:/bin" FAKE_STATE="$FAKE_STATE" "$PIN" "$VERSIONS"
  assert_failure
  assert_called "/buildx-v$(hcl docker_buildx).linux-amd64"
  cmp -s "$REPO_ROOT/packer/versions.pkr.hcl" "$VERSIONS" || fail_with "pins changed"
}

@test "the build installs a download only when its SHA-256 matches the pin" {
  mkdir -p "$FAKE_STATE/web/example.com"
  printf 'artifact\n' >"$FAKE_STATE/web/example.com/tool"
  good="$(sha256sum "$FAKE_STATE/web/example.com/tool" | cut -d' ' -f1)"
  bad="$(printf '%064d' 0)"
  PATH="$FAKE_BIN:$PATH"
  export FAKE_STATE

  fetch_verified https://example.com/tool "$good" "$BATS_TEST_TMPDIR/tool"
  [[ "$(<"$BATS_TEST_TMPDIR/tool")" == artifact ]]

  run fetch_verified https://example.com/tool "$bad" "$BATS_TEST_TMPDIR/other"
  assert_failure
  [[ "$output" == *"checksum mismatch"* ]] || fail_with "no mismatch message"
  [[ ! -e "$BATS_TEST_TMPDIR/other" && ! -e "$BATS_TEST_TMPDIR/other.partial" ]] ||
    fail_with "a mismatching download was kept"

  run fetch_verified https://example.com/tool "" "$BATS_TEST_TMPDIR/other"
  assert_failure
  [[ "$output" == *"no pinned SHA-256"* ]] || fail_with "an unpinned download was fetched"
}

@test "artifact URLs follow each project's release naming" {
  [[ "$(artifact_url buildkite_agent 3.137.0 arm64)" == \
    https://download.buildkite.com/agent/stable/3.137.0/buildkite-agent-linux-arm64 ]]
  [[ "$(artifact_url docker_compose 2.38.2 arm64)" == \
    https://github.com/docker/compose/releases/download/v2.38.2/docker-compose-linux-aarch64 ]]
  [[ "$(artifact_url docker_buildx 0.26.1 x86_64)" == \
    https://github.com/docker/buildx/releases/download/v0.26.1/buildx-v0.26.1.linux-amd64 ]]
  run artifact_url buildkite_agent 3.111.0 riscv64
  assert_failure
}
