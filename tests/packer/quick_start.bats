#!/usr/bin/env bats
# The quick start: an instance without an agent image fetches the install assets layer (user
# data), checks it, and runs the AMI build's install steps (bk-quick-start-install) before the
# usual boot script; every download is verified (build-lib.sh fetch_release).

load helpers/common

setup() {
  setup_fakes
  ln -s "$HELPERS_DIR/fake" "$FAKE_BIN/uname"
  respond_default uname 0 aarch64
  ASSETS="$BATS_TEST_TMPDIR/assets"
  make --silent -f "$REPO_ROOT/packer/Makefile" build-InstallAssetsLayer ARTIFACTS_DIR="$ASSETS"
  LOG="$ROOT/var/log/elastic-stack.log"
}

# stub_steps: replace every install step in the assets by one that records its name and the
# settings it was given (the real steps install packages; their logic is tested on its own).
stub_steps() {
  local step
  for step in "$ASSETS"/scripts/install-*.sh; do
    cat >"$step" <<'STEP'
#!/usr/bin/env bash
printf 'step %s arch=%s accept=%s agent=%s compose=%s ecr=%s/%s dir=%s\n' "${0##*/}" "$BK_ARCH" \
  "$BK_ACCEPT_PUBLISHED_CHECKSUMS" "$BUILDKITE_AGENT_VERSION" "$DOCKER_COMPOSE_VERSION" \
  "$PLUGIN_ECR_REF" "$PLUGIN_ECR_COMMIT" "$BK_BUILD_DIR" >>"$FAKE_STATE/calls.log"
STEP
  done
}

# listed_steps: install-steps.txt without comments and the "&" marks.
listed_steps() {
  sed -e 's/#.*//' -e 's/[[:space:]]*&[[:space:]]*$//' -e 's/[[:space:]]*$//' -e '/^$/d' \
    "$REPO_ROOT/packer/scripts/install-steps.txt"
}

install() {
  run env -i PATH="$FAKE_BIN:/usr/bin:/bin" BK_TEST_ROOT="$ROOT" FAKE_STATE="$FAKE_STATE" \
    bash "$ASSETS/quick-start/bk-quick-start-install"
}

@test "the assets hold the build directory's layout and nothing else of the repository" {
  for path in build-lib.sh versions.pkr.hcl boot-settings.txt scripts/install-steps.txt \
    quick-start/bk-quick-start-install conf/bin/bk-install-elastic-stack.sh \
    conf/buildkite-agent/hooks/environment conf/sudoers/buildkite-agent; do
    [[ -f "$ASSETS/$path" ]] || fail_with "missing $path"
  done
  while read -r step; do
    [[ -f "$ASSETS/scripts/$step" ]] || fail_with "missing step $step"
  done < <(listed_steps)
  [[ ! -e "$ASSETS/fill_ami_mappings.py" && ! -e "$ASSETS/buildkite-agent.pkr.hcl" &&
    ! -e "$ASSETS/scripts/cleanup.sh" ]] || fail_with "the assets carry build-only files"
}

@test "the quick start runs every listed install step once, in the listed order, then starts services" {
  stub_steps
  install
  assert_success
  mapfile -t expected < <(listed_steps)
  mapfile -t ran < <(grep '^step ' "$CALLS" | cut -d' ' -f2)
  [[ "${#expected[@]}" -ge 7 ]] || fail_with "too few steps listed"
  # The "&" group runs at once: the same set, and each group finishes before the next step.
  [[ "$(printf '%s\n' "${ran[@]}" | sort)" == "$(printf '%s\n' "${expected[@]}" | sort)" ]] ||
    fail_with "ran: ${ran[*]}; listed: ${expected[*]}"
  [[ "${ran[0]}" == install-packages.sh && "${ran[-1]}" == install-instance-config.sh ]] ||
    fail_with "order: ${ran[*]}"
  assert_called "step install-buildkite-agent.sh arch=arm64 accept=true agent=3.137.0 compose=5.1.4 ecr=v2.11.0/fdd631f69aec7599afb908ba81f87fb7630848d3 dir=$ASSETS"
  assert_order "step install-instance-config.sh" \
    "systemctl start --no-block rsyslog.service bk-docker-prune.timer bk-docker-binfmt.service"
  grep -q "step install-packages.sh: done in" "$LOG" || fail_with "no step timing in the log"
}

@test "a failing step stops the quick start with its reason in the log" {
  stub_steps
  printf '#!/usr/bin/env bash\necho "verification failed: no published SHA-256 found" >&2\nexit 1\n' \
    >"$ASSETS/scripts/install-git-lfs.sh"
  install
  assert_failure
  grep -q "verification failed: no published SHA-256 found" "$LOG" || fail_with "reason not logged"
  grep -q "step install-git-lfs.sh: failed" "$LOG" || fail_with "failed step not named"
  refute_called "step install-instance-config.sh"
  refute_called "systemctl start"
}

# --- downloads ----------------------------------------------------------------------------------
# serve URL CONTENT: publish a file on the fake web.
serve() {
  mkdir -p "$(dirname "$FAKE_STATE/web/${1#https://}")"
  printf '%s' "$2" >"$FAKE_STATE/web/${1#https://}"
}

sha() {
  printf '%s' "$1" | sha256sum | cut -d' ' -f1
}

fetch() {
  run env -i PATH="$FAKE_BIN:/usr/bin:/bin" FAKE_STATE="$FAKE_STATE" \
    BK_ACCEPT_PUBLISHED_CHECKSUMS="${ACCEPT:-true}" bash -c \
    '. "$0" && fetch_release "$@"' "$REPO_ROOT/packer/scripts/build-lib.sh" "$@"
}

@test "an unpinned release is checked against its vendor's published checksum, per vendor format" {
  agent=https://download.buildkite.com/agent/stable/3.137.0/buildkite-agent-linux-arm64
  serve "$agent" "agent"
  serve "$agent.sha256" "$(sha agent)"
  fetch buildkite_agent 3.137.0 arm64 "" "$BATS_TEST_TMPDIR/agent"
  assert_success
  [[ "$output" == *"against the checksum its vendor published"* ]] || fail_with "$output"

  compose=https://github.com/docker/compose/releases/download/v5.1.4
  serve "$compose/docker-compose-linux-aarch64" "compose"
  serve "$compose/checksums.txt" "$(sha other) *docker-compose-linux-x86_64
$(sha compose) *docker-compose-linux-aarch64"
  fetch docker_compose 5.1.4 arm64 "" "$BATS_TEST_TMPDIR/compose"
  assert_success

  lfs=https://github.com/git-lfs/git-lfs/releases/download/v3.7.1
  serve "$lfs/git-lfs-linux-arm64-v3.7.1.tar.gz" "lfs"
  serve "$lfs/sha256sums.asc" "-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

$(sha lfs)  git-lfs-linux-arm64-v3.7.1.tar.gz
$(sha other)  git-lfs-linux-amd64-v3.7.1.tar.gz
-----BEGIN PGP SIGNATURE-----"
  fetch git_lfs 3.7.1 arm64 "" "$BATS_TEST_TMPDIR/lfs"
  assert_success

  serve https://github.com/buildkite/elastic-ci-stack-s3-secrets-hooks/releases/download/v2.8.0/s3secrets-helper-linux-arm64 "helper"
  serve https://api.github.com/repos/buildkite/elastic-ci-stack-s3-secrets-hooks/releases/tags/v2.8.0 \
    "{\"assets\": [{\"name\": \"s3secrets-helper-linux-arm64\", \"digest\": \"sha256:$(sha helper)\"}]}"
  fetch s3secrets_helper 2.8.0 arm64 "" "$BATS_TEST_TMPDIR/helper"
  assert_success
  [[ "$(<"$BATS_TEST_TMPDIR/helper")" == helper ]] || fail_with "not installed"
}

@test "a download that does not match its published checksum, or has none, is refused" {
  buildx=https://github.com/docker/buildx/releases/download/v0.34.1
  serve "$buildx/buildx-v0.34.1.linux-amd64" "tampered"
  serve "$buildx/checksums.txt" "$(sha original) *buildx-v0.34.1.linux-amd64"
  fetch docker_buildx 0.34.1 x86_64 "" "$BATS_TEST_TMPDIR/buildx"
  assert_failure
  [[ "$output" == *"checksum mismatch"* ]] || fail_with "$output"
  [[ ! -e "$BATS_TEST_TMPDIR/buildx" ]] || fail_with "kept a mismatching download"

  rm "$FAKE_STATE/web/github.com/docker/buildx/releases/download/v0.34.1/checksums.txt"
  fetch docker_buildx 0.34.1 x86_64 "" "$BATS_TEST_TMPDIR/buildx"
  assert_failure
  [[ "$output" == *"verification failed"* ]] || fail_with "$output"
}

@test "a pin wins over the published checksum, and an image build accepts nothing but pins" {
  agent=https://download.buildkite.com/agent/stable/3.137.0/buildkite-agent-linux-amd64
  serve "$agent" "agent"
  serve "$agent.sha256" "$(sha agent)"
  fetch buildkite_agent 3.137.0 x86_64 "$(sha something-else)" "$BATS_TEST_TMPDIR/agent"
  assert_failure
  [[ "$output" == *"against its pin"* && "$output" == *"checksum mismatch"* ]] || fail_with "$output"

  ACCEPT=false fetch buildkite_agent 3.137.0 x86_64 "" "$BATS_TEST_TMPDIR/agent"
  assert_failure
  [[ "$output" == *"no pinned SHA-256"* ]] || fail_with "$output"
}

# --- the user data part -------------------------------------------------------------------------
LAYER=arn:aws:lambda:us-east-1:123456789012:layer:buildkite-InstallAssets:7
ZIP_URL=https://prod-04-2014-layers.s3.us-east-1.amazonaws.com/snapshots/assets.zip

# user_data_part: packer/quick-start/user-data.sh as the template renders it, its absolute paths
# moved under the test root.
user_data_part() {
  sed -e "s#\${InstallAssetsLayerArn}#$LAYER#" -e "s#/var/#$ROOT/var/#g" \
    -e "s#/usr/local/bin/#$ROOT/usr/local/bin/#g" "$REPO_ROOT/packer/quick-start/user-data.sh" \
    >"$BATS_TEST_TMPDIR/user-data.sh"
  printf '%s\n' "$BATS_TEST_TMPDIR/user-data.sh"
}

# layer_zip: the assets (steps stubbed) zipped and served; prints Lambda's CodeSha256 of it.
layer_zip() {
  stub_steps
  (cd "$ASSETS" && python3 -m zipfile -c "$BATS_TEST_TMPDIR/assets.zip" .)
  mkdir -p "$(dirname "$FAKE_STATE/web/${ZIP_URL#https://}")"
  cp "$BATS_TEST_TMPDIR/assets.zip" "$FAKE_STATE/web/${ZIP_URL#https://}"
  openssl dgst -sha256 -binary "$BATS_TEST_TMPDIR/assets.zip" | base64
}

boot_user_data() {
  mkdir -p "$ROOT/var/log"
  run env -i PATH="$FAKE_BIN:/usr/bin:/bin" FAKE_STATE="$FAKE_STATE" AWS_REGION=us-east-1 BK_TEST_ROOT="$ROOT" \
    bash -c 'set -eu; . "$0"' "$(user_data_part)"
}

@test "user data: the layer is fetched, checked against its CodeSha256, unpacked and installed" {
  code_sha="$(layer_zip)"
  respond aws-lambda-get-layer-version-by-arn 0 "$ZIP_URL	$code_sha"
  boot_user_data
  assert_success
  assert_called "aws lambda get-layer-version-by-arn --region us-east-1 --arn $LAYER"
  assert_called "step install-packages.sh arch=arm64 accept=true"
  assert_called "step install-instance-config.sh"
  refute_called "set-instance-health"
}

@test "user data: install assets that fail their check stop the boot and mark the instance unhealthy" {
  layer_zip >/dev/null
  respond aws-lambda-get-layer-version-by-arn 0 "$ZIP_URL	$(printf 'other' | openssl dgst -sha256 -binary | base64)"
  imds instance-id "$INSTANCE_ID"
  boot_user_data
  assert_failure
  [[ "$output" == *"verification failed: the install assets"* ]] || fail_with "no clear reason"
  grep -q "verification failed" "$ROOT/var/log/elastic-stack.log" || fail_with "not in the boot log"
  assert_order "aws autoscaling set-instance-health --region us-east-1 --instance-id $INSTANCE_ID --health-status Unhealthy" \
    "systemctl poweroff --no-block"
  refute_called "step "
}

@test "user data: an image that has the boot script skips the quick start" {
  mkdir -p "$ROOT/usr/local/bin"
  printf '#!/bin/sh\n' >"$ROOT/usr/local/bin/bk-install-elastic-stack.sh"
  chmod +x "$ROOT/usr/local/bin/bk-install-elastic-stack.sh"
  boot_user_data
  assert_success
  refute_called "aws lambda"
}
