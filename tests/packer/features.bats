#!/usr/bin/env bats
# The instance features (parameters of the fleet stack) on the instance, against fakes on PATH:
# instance storage and /tmp, docker's daemon settings, the agent release channel, git mirrors,
# the build-directory ownership fixer, the docker-compose v1 command.

load helpers/common

# More commands these scripts run, answered by the same fake.
EXTRA_FAKES=(nvme mdadm mkfs.ext4 mount umount blockdev findmnt id getent sudo uname)

setup() {
  setup_fakes
  local command
  for command in "${EXTRA_FAKES[@]}"; do
    ln -s "$HELPERS_DIR/fake" "$FAKE_BIN/$command"
  done
  respond_default id 0 2000
  respond_default getent 0 "docker:x:992:buildkite-agent"
  respond_default uname 0 x86_64
  DAEMON_JSON="$ROOT/etc/docker/daemon.json"
  mkdir -p "$(dirname "$DAEMON_JSON")"
  printf '{"log-driver": "json-file"}\n' >"$DAEMON_JSON"
}

# nvme_disks DEVICE...: `nvme list` shows these instance-store disks (and the EBS root volume).
nvme_disks() {
  local listing device
  listing="$(printf 'Node          SN         Model\n/dev/nvme0n1  vol0123    Amazon Elastic Block Store')"
  for device in "$@"; do
    listing+=$'\n'"$device  AWS1234    Amazon EC2 NVMe Instance Storage"
  done
  respond nvme 0 "$listing"
}

daemon() {
  jq -c "$1" "$DAEMON_JSON"
}

# --- instance storage and /tmp ------------------------------------------------------------------
@test "instance storage off: no disk is touched and docker stays on the root volume" {
  run_script "$BIN_DIR/bk-mount-instance-storage"
  assert_success
  refute_called "nvme"
  refute_called "mkfs"
  run_script "$BIN_DIR/bk-configure-docker"
  assert_success
  [[ "$(daemon '."data-root"')" == null ]] || fail_with "data root moved: $(cat "$DAEMON_JSON")"
}

@test "instance storage on, no instance-store disk: says so and carries on" {
  set_setting BUILDKITE_ENABLE_INSTANCE_STORAGE=true
  nvme_disks
  run_script "$BIN_DIR/bk-mount-instance-storage"
  assert_success
  [[ "$output" == *"has no NVMe instance storage"* ]] || fail_with "no explanation"
  refute_called "mkfs.ext4"
  refute_called "mount"
  run_script "$BIN_DIR/bk-configure-docker"
  [[ "$(daemon '."data-root"')" == null ]] || fail_with "data root moved without a disk"
}

@test "instance storage on, one disk: formatted and mounted for docker and builds, no RAID" {
  set_setting BUILDKITE_ENABLE_INSTANCE_STORAGE=true
  nvme_disks /dev/nvme1n1
  run_script "$BIN_DIR/bk-mount-instance-storage"
  assert_success
  refute_called "mdadm"
  assert_order "mkfs.ext4 -F -q -E nodiscard /dev/nvme1n1" \
    "mount -t ext4 -o defaults,noatime /dev/nvme1n1 $ROOT/mnt/ephemeral" \
    "mount --bind $ROOT/mnt/ephemeral/builds $ROOT/var/lib/buildkite-agent/builds"
  grep -qF "/dev/nvme1n1 /mnt/ephemeral ext4" "$ROOT/etc/fstab" || fail_with "not in fstab"
  run_script "$BIN_DIR/bk-configure-docker"
  assert_success
  [[ "$(daemon '."data-root"')" == '"/mnt/ephemeral/docker"' ]] ||
    fail_with "data root: $(cat "$DAEMON_JSON")"
  [[ -d "$ROOT/mnt/ephemeral/docker" ]] || fail_with "no docker directory on the disk"
}

@test "instance storage on, two disks: one RAID 0 array for docker and builds" {
  set_setting BUILDKITE_ENABLE_INSTANCE_STORAGE=true
  nvme_disks /dev/nvme1n1 /dev/nvme2n1
  run_script "$BIN_DIR/bk-mount-instance-storage"
  assert_success
  assert_order \
    "mdadm --create /dev/md0 --level=0 --chunk=256 --raid-devices=2 --run /dev/nvme1n1 /dev/nvme2n1" \
    "mkfs.ext4 -F -q -E nodiscard /dev/md0" \
    "mount -t ext4 -o defaults,noatime /dev/md0 $ROOT/mnt/ephemeral" \
    "mount --bind $ROOT/mnt/ephemeral/builds $ROOT/var/lib/buildkite-agent/builds"
  refute_called "/dev/nvme0n1"
  run_script "$BIN_DIR/bk-configure-docker"
  [[ "$(daemon '."data-root"')" == '"/mnt/ephemeral/docker"' ]] || fail_with "data root not moved"
}

@test "MountTmpfsAtTmp false moves /tmp to the root volume; true leaves it" {
  run_script "$BIN_DIR/bk-mount-instance-storage"
  refute_called "tmp.mount"
  refute_called "umount"

  set_setting BUILDKITE_MOUNT_TMPFS_AT_TMP=false
  run_script "$BIN_DIR/bk-mount-instance-storage"
  assert_success
  assert_order "findmnt --noheadings --types tmpfs /tmp" "umount --lazy /tmp" "systemctl mask --now tmp.mount"
}

# --- docker daemon ------------------------------------------------------------------------------
@test "user namespace remapping on: docker maps container root to buildkite-agent" {
  set_setting BUILDKITE_DOCKER_USERNS_REMAP=true
  run_script "$BIN_DIR/bk-configure-docker"
  assert_success
  [[ "$(daemon '."userns-remap"')" == '"buildkite-agent"' ]] || fail_with "$(cat "$DAEMON_JSON")"
  [[ "$(<"$ROOT/etc/subuid")" == $'buildkite-agent:2000:1\nbuildkite-agent:100000:65536' ]] ||
    fail_with "subuid: $(<"$ROOT/etc/subuid")"
  [[ "$(<"$ROOT/etc/subgid")" == $'buildkite-agent:992:1\nbuildkite-agent:100000:65536' ]] ||
    fail_with "subgid: $(<"$ROOT/etc/subgid")"
  [[ "$(daemon '."log-driver"')" == '"json-file"' ]] || fail_with "existing settings were lost"
  assert_called "systemctl restart docker.service"
}

@test "user namespace remapping off: no remap, no subordinate ids" {
  run_script "$BIN_DIR/bk-configure-docker"
  assert_success
  [[ "$(daemon '."userns-remap"')" == null ]] || fail_with "remapped"
  [[ ! -e "$ROOT/etc/subuid" ]] || fail_with "subuid written"
}

@test "docker networking: IPv4 pools and fixed CIDR from the stack" {
  set_setting BUILDKITE_DOCKER_IPV4_ADDRESS_POOL_1=10.200.0.0/16
  set_setting BUILDKITE_DOCKER_IPV4_ADDRESS_POOL_2=10.201.0.0/16
  set_setting BUILDKITE_DOCKER_FIXED_CIDR_V4=10.200.1.0/24
  run_script "$BIN_DIR/bk-configure-docker"
  assert_success
  [[ "$(daemon '."default-address-pools"')" == \
    '[{"base":"10.200.0.0/16","size":20},{"base":"10.201.0.0/16","size":24}]' ]] ||
    fail_with "pools: $(cat "$DAEMON_JSON")"
  [[ "$(daemon '."fixed-cidr"')" == '"10.200.1.0/24"' ]] || fail_with "fixed cidr"
  [[ "$(daemon '.ipv6')" == null ]] || fail_with "IPv6 on in ipv4 mode"
}

@test "docker networking: dual stack adds the IPv6 pool and fixed-cidr-v6" {
  set_setting BUILDKITE_DOCKER_NETWORKING_PROTOCOL=dualstack
  set_setting BUILDKITE_DOCKER_IPV6_ADDRESS_POOL=fd00:1::/104
  set_setting BUILDKITE_DOCKER_FIXED_CIDR_V6=fd00:2::/64
  run_script "$BIN_DIR/bk-configure-docker"
  assert_success
  [[ "$(daemon '[.ipv6, .ip6tables, ."fixed-cidr-v6"]')" == '[true,true,"fd00:2::/64"]' ]] ||
    fail_with "$(cat "$DAEMON_JSON")"
  [[ "$(daemon '."default-address-pools"[2]')" == '{"base":"fd00:1::/104","size":112}' ]] ||
    fail_with "no IPv6 pool"
}

@test "docker networking: a bad protocol or CIDR stops the boot step" {
  set_setting BUILDKITE_DOCKER_NETWORKING_PROTOCOL=ipv6only
  run_script "$BIN_DIR/bk-configure-docker"
  assert_failure
  [[ "$output" == *"must be ipv4 or dualstack"* ]] || fail_with "no reason"
  set_setting BUILDKITE_DOCKER_NETWORKING_PROTOCOL=ipv4
  set_setting "BUILDKITE_DOCKER_FIXED_CIDR_V4=10.0.0.0/8'; rm -rf /"
  run_script "$BIN_DIR/bk-configure-docker"
  assert_failure
  refute_called "systemctl restart"
}

# --- agent release channel ----------------------------------------------------------------------
@test "agent release stable: the pinned binary the image holds" {
  mkdir -p "$ROOT/usr/bin"
  printf '#!/bin/sh\necho stable\n' >"$ROOT/usr/bin/buildkite-agent-stable"
  chmod +x "$ROOT/usr/bin/buildkite-agent-stable"
  run_script "$BIN_DIR/bk-select-agent-release"
  assert_success
  [[ "$(readlink "$ROOT/usr/bin/buildkite-agent")" == buildkite-agent-stable ]] || fail_with "not linked"
  refute_called "curl"
}

# serve_channel PATH CONTENT [PUBLISHED_SUM]: a channel build on Buildkite's download site.
serve_channel() {
  local file="$FAKE_STATE/web/download.buildkite.com/agent/$1/buildkite-agent-linux-amd64"
  mkdir -p "$(dirname "$file")"
  printf '#!/bin/sh\necho %s\n' "$2" >"$file"
  printf '%s  buildkite-agent-linux-amd64\n' "${3:-$(sha256sum "$file" | cut -d' ' -f1)}" >"$file.sha256"
}

@test "agent release beta: downloaded at boot, verified against Buildkite's published SHA-256" {
  set_setting BUILDKITE_AGENT_RELEASE=beta
  mkdir -p "$ROOT/usr/bin"
  serve_channel unstable/latest "beta 3.140.0-beta.1"
  run_script "$BIN_DIR/bk-select-agent-release"
  assert_success
  [[ "$(readlink "$ROOT/usr/bin/buildkite-agent")" == buildkite-agent-beta ]] || fail_with "not linked"
  [[ "$output" == *"beta 3.140.0-beta.1"* ]] || fail_with "version not logged"
}

@test "agent release edge with a wrong published checksum: refused, the boot stops" {
  set_setting BUILDKITE_AGENT_RELEASE=edge
  mkdir -p "$ROOT/usr/bin"
  serve_channel experimental/latest "edge" "$(printf '%064d' 0)"
  run_script "$BIN_DIR/bk-select-agent-release"
  assert_failure
  [[ "$output" == *"verification failed"* ]] || fail_with "no verification message"
  [[ ! -e "$ROOT/usr/bin/buildkite-agent-edge" && ! -e "$ROOT/usr/bin/buildkite-agent" ]] ||
    fail_with "an unverified agent was installed"
}

# --- git mirrors --------------------------------------------------------------------------------
FEATURES_ENV=etc/buildkite-agent/features.env

@test "git mirrors off: the agent gets no mirrors path" {
  run_script "$BIN_DIR/bk-git-mirrors"
  assert_success
  [[ ! -e "$ROOT/$FEATURES_ENV" ]] || fail_with "mirrors path set"
  refute_called "aws"
}

@test "git mirrors on without a seed bucket: empty mirrors, the agent is told the path" {
  set_setting BUILDKITE_AGENT_ENABLE_GIT_MIRRORS=true
  run_script "$BIN_DIR/bk-git-mirrors"
  assert_success
  [[ "$(<"$ROOT/$FEATURES_ENV")" == BUILDKITE_GIT_MIRRORS_PATH=/var/lib/buildkite-agent/git-mirrors ]] ||
    fail_with "features env: $(cat "$ROOT/$FEATURES_ENV")"
  refute_called "aws s3"
  assert_called "chown -R buildkite-agent:buildkite-agent $ROOT/var/lib/buildkite-agent/git-mirrors"
}

# seed NAME LAYOUT...: a seed archive in the fake seed bucket; LAYOUT are directories inside it.
seed() {
  local name=$1 work="$BATS_TEST_TMPDIR/seed-$1" directory
  shift
  mkdir -p "$work" "$FAKE_STATE/s3/seeds/git-mirror-seeds"
  for directory in "$@"; do
    mkdir -p "$work/$directory/objects"
    printf 'ref: refs/heads/main\n' >"$work/$directory/HEAD"
  done
  tar -czf "$FAKE_STATE/s3/seeds/git-mirror-seeds/$name.tar.gz" -C "$work" "$@"
}

@test "git mirrors with a seed bucket: each good archive becomes its mirror, bad ones are skipped" {
  set_setting BUILDKITE_AGENT_ENABLE_GIT_MIRRORS=true
  set_setting BUILDKITE_GIT_MIRROR_SEED_BUCKET=seeds
  seed repo-a repo-a
  seed repo-b repo-b other-dir
  respond aws-s3api-list-objects-v2 0 \
    "$(printf 'git-mirror-seeds/repo-a.tar.gz\tgit-mirror-seeds/repo-b.tar.gz\tgit-mirror-seeds/notes.txt')"
  run_script "$BIN_DIR/bk-git-mirrors"
  assert_success
  mirrors="$ROOT/var/lib/buildkite-agent/git-mirrors"
  [[ -f "$mirrors/repo-a/HEAD" ]] || fail_with "repo-a not seeded"
  [[ ! -e "$mirrors/repo-b" && ! -e "$mirrors/other-dir" ]] || fail_with "a bad archive was used"
  [[ "$output" == *"does not hold exactly one bare repository named repo-b"* ]] || fail_with "no warning"
  assert_called "aws s3api list-objects-v2 --bucket seeds --prefix git-mirror-seeds/"
  refute_called "notes.txt"
  [[ -z "$(find "$mirrors" -maxdepth 1 -name '.seed-*')" ]] || fail_with "staging left behind"
}

@test "git mirrors: a seed bucket that cannot be listed does not stop the boot" {
  set_setting BUILDKITE_AGENT_ENABLE_GIT_MIRRORS=true
  set_setting BUILDKITE_GIT_MIRROR_SEED_BUCKET=seeds
  respond aws-s3api-list-objects-v2 254 "" "An error occurred (AccessDenied)"
  run_script "$BIN_DIR/bk-git-mirrors"
  assert_success
  [[ -s "$ROOT/$FEATURES_ENV" ]] || fail_with "mirrors not configured"
}

# --- build-directory ownership fixer -------------------------------------------------------------
BUILDS=var/lib/buildkite-agent/builds

fix() {
  run_systemd_script "$BIN_DIR/bk-fix-builds-permissions" "$@"
}

@test "fixer: hands one checkout back to the agent, from inside it" {
  mkdir -p "$ROOT/$BUILDS/agent-1/acme/web"
  fix agent-1 acme web
  assert_success
  assert_called "chown -R buildkite-agent:buildkite-agent ."
  [[ "$output" == *"giving /$BUILDS/agent-1/acme/web back"* ]] || fail_with "no log line"
}

@test "fixer: refuses path tricks in its arguments" {
  mkdir -p "$ROOT/$BUILDS/agent-1/acme/web"
  local hostile
  for hostile in ".." "." "" "acme/../../.." "-R" "/etc"; do
    fix agent-1 "$hostile" web
    assert_failure
    fix "$hostile" acme web
    assert_failure
  done
  fix agent-1 acme
  assert_failure
  refute_called "chown"
}

@test "fixer: refuses a symlink at any level, the builds directory included" {
  outside="$BATS_TEST_TMPDIR/outside"
  mkdir -p "$outside/acme/web" "$ROOT/$BUILDS/agent-1/acme" "$ROOT/$BUILDS/agent-2"
  ln -s "$outside" "$ROOT/$BUILDS/agent-3"
  ln -s "$outside/acme" "$ROOT/$BUILDS/agent-2/acme"
  ln -s "$outside/acme/web" "$ROOT/$BUILDS/agent-1/acme/web"
  fix agent-3 acme web
  assert_failure
  fix agent-2 acme web
  assert_failure
  fix agent-1 acme web
  assert_failure
  [[ "$output" == *"symlink"* ]] || fail_with "no reason"

  mv "$ROOT/$BUILDS" "$BATS_TEST_TMPDIR/real-builds"
  mkdir -p "$BATS_TEST_TMPDIR/real-builds/agent-9/acme/web"
  ln -s "$BATS_TEST_TMPDIR/real-builds" "$ROOT/$BUILDS"
  fix agent-9 acme web
  assert_failure
  [[ "$output" == *"is not"* ]] || fail_with "a symlinked builds directory was accepted"
  refute_called "chown"
}

@test "fixer: the agent may run it through sudo, and nothing else" {
  sudoers="$REPO_ROOT/packer/conf/sudoers/buildkite-agent"
  rules="$(grep -v '^#' "$sudoers" | grep -v '^Defaults' | grep -v '^$')"
  [[ "$rules" == "buildkite-agent ALL=(root) NOPASSWD: /usr/local/bin/bk-fix-builds-permissions" ]] ||
    fail_with "sudoers rules: $rules"
  grep -qx 'Defaults!/usr/local/bin/bk-fix-builds-permissions env_reset' "$sudoers" ||
    fail_with "the environment is not reset"
}

# --- docker-compose v1 command --------------------------------------------------------------------
@test "docker-compose runs the Compose v2 plugin in compatibility mode" {
  plugin="$BATS_TEST_TMPDIR/compose-plugin"
  printf '#!/bin/sh\necho "compose $*"\n' >"$plugin"
  chmod +x "$plugin"
  run env -i PATH=/usr/bin:/bin BK_TEST_COMPOSE_PLUGIN="$plugin" "$BIN_DIR/docker-compose" up -d
  [[ "$output" == "compose --compatibility up -d" ]] || fail_with "ran: $output"
  run env -i PATH=/usr/bin:/bin BK_TEST_COMPOSE_PLUGIN="$plugin" "$BIN_DIR/docker-compose" --compatibility ps
  [[ "$output" == "compose --compatibility ps" ]] || fail_with "ran: $output"
}

# --- the boot script runs them ------------------------------------------------------------------
@test "boot: the instance features are set up before the agent starts" {
  set_setting BUILDKITE_ENABLE_INSTANCE_STORAGE=true
  set_setting BUILDKITE_AGENT_ENABLE_GIT_MIRRORS=true
  set_setting BUILDKITE_DOCKER_USERNS_REMAP=true
  nvme_disks /dev/nvme1n1
  respond aws-ssm-get-parameter 0 "bkua_token"
  run_script "$BIN_DIR/bk-install-elastic-stack.sh"
  assert_success
  assert_order "mkfs.ext4 -F -q -E nodiscard /dev/nvme1n1" \
    "systemctl restart docker.service" \
    "mount --bind $ROOT/mnt/ephemeral/git-mirrors $ROOT/var/lib/buildkite-agent/git-mirrors" \
    "systemctl enable --now buildkite-agent.service"
  [[ "$(daemon '[."userns-remap", ."data-root"]')" == '["buildkite-agent","/mnt/ephemeral/docker"]' ]] ||
    fail_with "daemon.json: $(cat "$DAEMON_JSON")"
  [[ -s "$ROOT/$FEATURES_ENV" ]] || fail_with "the agent was not told its mirrors path"
  grep -qx "export BUILDKITE_DOCKER_USERNS_REMAP=true" "$ROOT/etc/buildkite-agent/cfn-env" ||
    fail_with "the hooks do not see the remap setting"
}

@test "boot: a feature that fails stops the boot and marks the instance unhealthy" {
  set_setting BUILDKITE_DOCKER_NETWORKING_PROTOCOL=ipv6only
  respond aws-ssm-get-parameter 0 "bkua_token"
  run_script "$BIN_DIR/bk-install-elastic-stack.sh"
  assert_failure
  assert_called "aws autoscaling set-instance-health --instance-id $INSTANCE_ID --health-status Unhealthy"
  refute_called "buildkite-agent.service"
}
