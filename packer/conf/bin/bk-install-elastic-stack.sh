#!/usr/bin/env bash
# bk-install-elastic-stack.sh: configure and start the Buildkite agent on first boot.
#
# Run as root by the launch template's user data, which exports the settings listed in
# packer/boot-settings.txt (the only environment this script reads). In order: error trap (mark
# the instance unhealthy, signal failure to CloudFormation, power off); log to
# /var/log/elastic-stack.log; run once per instance (the status file makes a reboot a no-op);
# ship logs; IMDSv2; write the non-secret settings file for hooks and instance scripts; agent
# tags; the agent token from SSM (decrypted, never echoed, never on a command line, in a file only
# root and the agent can read); the agent config; the optional env file; the user's bootstrap
# script; the lifecycle handler; wait for docker; start the agent; signal success.
#
# Warm pool (BUILDKITE_LAUNCHING_HOOK_NAME set): the group holds every launch, into the pool
# (Warmed:Pending:Wait) or straight into service (Pending:Wait), on the launching lifecycle hook.
# All of the slow work above happens in either case, with a heartbeat on the hook after each slow
# step; then the boot completes the hook with CONTINUE: before the agent starts on the way to
# InService, as the very last step on the way into the pool (the group stops or hibernates the
# instance right after, so nothing may be left running). A failed boot completes it with ABANDON:
# the group terminates the instance. Later exits from and returns to the pool are the lifecycle
# handler's: user data runs only on the first boot.
set -Eeuo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=bk-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bk-lib.sh"

LOG_FILE="$BK_LOG_DIR/elastic-stack.log"
# The AMI's log shipping template, and this stack's configuration rendered from it at boot.
CLOUDWATCH_TEMPLATE="$BK_ROOT/opt/aws/amazon-cloudwatch-agent/etc/buildkite-agent.json"
CLOUDWATCH_CONFIG="$BK_STATE_DIR/cloudwatch-agent.json"
DOCKER_WAIT_ATTEMPTS=60
DOCKER_WAIT_SECONDS=2
BK_SIGNING_JWKS="$BK_CONFIG_DIR/signing-key.json"
BK_VERIFICATION_JWKS="$BK_CONFIG_DIR/verification-key.json"
BK_SUDOERS_DIR="$BK_ROOT/etc/sudoers.d"
instance_id=""
# The Auto Scaling group, looked up when there is a launching lifecycle hook to heartbeat and
# complete.
group_name=""
# Settings of the instance features the hooks and timers read after boot (see prepare_instance).
INSTANCE_FEATURE_SETTINGS=(BUILDKITE_DOCKER_USERNS_REMAP BUILDKITE_DOCKER_PRUNE_UNTIL
  BUILDKITE_DOCKER_BUILDER_PRUNE_ENABLED BUILDKITE_ENABLE_PRE_EXIT_DISK_CLEANUP
  BUILDKITE_TERMINATE_INSTANCE_ON_DISK_FULL BUILDKITE_PURGE_BUILDS_ON_DISK_FULL
  BUILDKITE_ECR_CREDENTIAL_HELPER_ENABLED)

# signal_cloudformation EXIT_CODE: tell CloudFormation how the boot went. Instances launched after
# the stack finished (scale-out, replacement) have nobody waiting, so a refused signal is logged
# and ignored.
signal_cloudformation() {
  if [[ -z "${BUILDKITE_CFN_RESOURCE:-}" || -z "${BUILDKITE_CFN_STACK:-}" ]]; then
    bk_log "no stack resource to signal"
    return 0
  fi
  cfn-signal --region "${AWS_REGION:-}" --stack "$BUILDKITE_CFN_STACK" \
    --resource "$BUILDKITE_CFN_RESOURCE" --exit-code "$1" ||
    bk_log "cfn-signal --exit-code $1 was not accepted (nobody waiting for it); carrying on"
}

on_error() {
  local exit_code=$1 line=$2
  trap - ERR
  set +e
  bk_log "boot failed at line $line with exit code $exit_code"
  printf 'Failed\n' >"$BK_STATUS_FILE"
  bk-telemetry boot-failed || true
  if [[ -z "$instance_id" ]]; then
    instance_id="$(bk_imds instance-id)"
  fi
  if [[ -n "$instance_id" && -n "$group_name" ]]; then
    # The group terminates the instance at once, instead of at the hook's timeout.
    bk_complete_lifecycle_action "$BUILDKITE_LAUNCHING_HOOK_NAME" "$group_name" "$instance_id" \
      ABANDON || bk_log "could not abandon the launching lifecycle action"
  fi
  if [[ -n "$instance_id" ]]; then
    bk_aws autoscaling set-instance-health --instance-id "$instance_id" \
      --health-status Unhealthy >/dev/null ||
      bk_log "could not mark $instance_id unhealthy"
  else
    bk_log "instance id unknown (IMDS unavailable); cannot mark the instance unhealthy"
  fi
  signal_cloudformation 1
  bk_log "powering off"
  systemctl poweroff --no-block
  exit "$exit_code"
}

# require NAME...: fail unless every named setting is non-empty.
require() {
  local name
  for name in "$@"; do
    if [[ -z "${!name:-}" ]]; then
      bk_log "required setting $name is empty"
      return 1
    fi
  done
}

# require_count NAME MINIMUM: fail unless the setting is a whole number >= MINIMUM.
require_count() {
  local name=$1 minimum=$2
  if ! [[ "${!name:-}" =~ ^[0-9]+$ ]] || ((${!name} < minimum)); then
    bk_log "setting $name must be a whole number >= $minimum"
    return 1
  fi
}

# config_value NAME VALUE: refuse values that could break out of a quoted agent config line.
config_value() {
  if [[ "$2" == *[\"\\[:cntrl:]]* ]]; then
    bk_log "setting $1 contains a quote, backslash or control character (newline, tab, ...)"
    return 1
  fi
}

# fetchable_url NAME [ssm]: fail unless the setting is empty or a URL bk-fetch accepts (with
# ssm, also an ssm:/path of parameters for an environment file).
fetchable_url() {
  local value="${!1:-}"
  if [[ -z "$value" ]] || bk_fetchable_url "$value"; then
    return 0
  fi
  if [[ "${2:-}" == ssm ]]; then
    [[ "$value" =~ $BK_SSM_PATH_URL ]] && return 0
    bk_log "setting $1 must be an s3://, https:// or file:/// URL, or ssm:/path"
  else
    bk_log "setting $1 must be an s3://, https:// or file:/// URL"
  fi
  return 1
}

# check_settings: every rule the boot settings must follow, checked before anything is done.
# The root template's parameters refuse every value these rules refuse
# (tests/templates/test_boot_setting_rules.py runs this function against the patterns).
check_settings() {
  require AWS_REGION BUILDKITE_STACK_NAME BUILDKITE_QUEUE BUILDKITE_AGENT_TOKEN_PATH
  if ! [[ "$AWS_REGION" =~ ^[a-z0-9-]+$ ]]; then
    bk_log "AWS_REGION '$AWS_REGION' is not a region name"
    return 1
  fi
  require_count BUILDKITE_AGENTS_PER_INSTANCE 1
  # 0 would be the agent's "never": the instance would never leave.
  require_count BUILDKITE_SCALE_IN_IDLE_PERIOD 1
  # The lifecycle hook's smallest heartbeat timeout.
  require_count BUILDKITE_TERMINATION_GRACE_PERIOD 30
  local name
  for name in BUILDKITE_STACK_NAME BUILDKITE_QUEUE BUILDKITE_AGENT_TAGS BUILDKITE_AGENT_ENDPOINT \
    BUILDKITE_STACK_VERSION BUILDKITE_PIPELINE_SIGNING_KMS_KEY; do
    config_value "$name" "${!name:-}"
  done
  fetchable_url BUILDKITE_BOOTSTRAP_SCRIPT_URL
  fetchable_url BUILDKITE_ENV_FILE_URL ssm
  check_agent_settings
  if [[ -n "${BUILDKITE_PIPELINE_SIGNING_KMS_KEY:-}" ]]; then
    # The access level is granted by the instance role; the agent is configured the same way.
    case "${BUILDKITE_PIPELINE_SIGNING_KMS_ACCESS:-}" in
      sign-and-verify | verify) ;;
      *)
        bk_log "BUILDKITE_PIPELINE_SIGNING_KMS_ACCESS must be sign-and-verify or verify"
        return 1
        ;;
    esac
  fi
}

check_status() {
  if [[ -f "$BK_STATUS_FILE" ]]; then
    if [[ "$(<"$BK_STATUS_FILE")" == Completed ]]; then
      bk_log "boot already completed on this instance; nothing to do"
      exit 0
    fi
    bk_log "an earlier boot did not complete ($(<"$BK_STATUS_FILE")); not continuing from an unknown state"
    return 1
  fi
  printf 'Started\n' >"$BK_STATUS_FILE"
}

start_log_shipping() {
  if ! bk-cloudwatch-config "$CLOUDWATCH_TEMPLATE" "$CLOUDWATCH_CONFIG" \
    "${BUILDKITE_LOG_GROUP_PREFIX:-}" "${BUILDKITE_LOG_RETENTION_DAYS:-}"; then
    bk_log "warning: no log shipping configuration; logs stay on the instance"
    return 0
  fi
  amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c "file:$CLOUDWATCH_CONFIG" >/dev/null ||
    bk_log "warning: the CloudWatch agent did not start; logs stay on the instance"
}

# write_settings: the non-secret settings hooks and root-run instance scripts source. Values are
# shell-quoted; the region only fills in for jobs that did not choose one.
write_settings() {
  local name partial
  partial="$(mktemp "$BK_SETTINGS_FILE.XXXXXX")"
  {
    printf '# Written by bk-install-elastic-stack.sh at boot. Not secret.\n'
    # shellcheck disable=SC2016 # the ${...:-} defaults are expanded when the file is sourced
    printf 'export AWS_REGION="${AWS_REGION:-%s}"\nexport AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-%s}"\n' \
      "$AWS_REGION" "$AWS_REGION"
    for name in BUILDKITE_STACK_NAME BUILDKITE_STACK_VERSION BUILDKITE_QUEUE \
      BUILDKITE_AGENTS_PER_INSTANCE BUILDKITE_TERMINATE_INSTANCE_AFTER_JOB \
      BUILDKITE_LIFECYCLE_HOOK_NAME BUILDKITE_LAUNCHING_HOOK_NAME \
      BUILDKITE_TERMINATION_GRACE_PERIOD \
      BUILDKITE_SECRETS_BUCKET BUILDKITE_SECRETS_BUCKET_REGION \
      BUILDKITE_ARTIFACTS_BUCKET BUILDKITE_ECR_PLUGIN_ENABLED \
      BUILDKITE_DOCKER_LOGIN_PLUGIN_ENABLED BUILDKITE_SECRETS_PLUGIN_ENABLED \
      BUILDKITE_DISK_MIN_FREE_GB BUILDKITE_DISK_MIN_FREE_INODES \
      BUILDKITE_S3_DEFAULT_REGION BUILDKITE_S3_ACL \
      "${INSTANCE_FEATURE_SETTINGS[@]}"; do
      printf 'export %s=%q\n' "$name" "${!name:-}"
    done
  } >"$partial"
  chmod 0640 "$partial"
  chown root:buildkite-agent "$partial"
  mv -f "$partial" "$BK_SETTINGS_FILE"
}

# agent_tags: queue=, docker=, stack=, buildkite-aws-stack=, then the user's tags.
agent_tags() {
  local docker_version
  docker_version="$(docker version --format '{{.Client.Version}}' 2>/dev/null)" || docker_version=unknown
  local tags="queue=$BUILDKITE_QUEUE,docker=$docker_version,stack=$BUILDKITE_STACK_NAME"
  tags+=",buildkite-aws-stack=${BUILDKITE_STACK_VERSION:-unknown}"
  if [[ -n "${BUILDKITE_AGENT_TAGS:-}" ]]; then
    tags+=",$BUILDKITE_AGENT_TAGS"
  fi
  printf '%s' "$tags"
}

# write_agent_config TAGS: the agent config, the only file holding the token. The token travels
# from the SSM response into a variable and out through printf (a shell builtin): never an
# argument of another process, never logged.
write_agent_config() {
  local tags=$1 token partial
  bk_log "reading the agent token from SSM parameter $BUILDKITE_AGENT_TOKEN_PATH"
  token="$(bk_aws ssm get-parameter --name "$BUILDKITE_AGENT_TOKEN_PATH" --with-decryption \
    --query Parameter.Value --output text)"
  if [[ -z "$token" || "$token" == None ]]; then
    bk_log "the agent token parameter is empty"
    return 1
  fi
  if [[ "$token" == *[\"\\[:space:]]* ]]; then
    bk_log "the agent token contains a quote, backslash or whitespace"
    return 1
  fi

  partial="$(umask 077 && mktemp "$BK_AGENT_CFG.XXXXXX")"
  chown root:buildkite-agent "$partial"
  chmod 0640 "$partial"
  {
    printf 'name="%s-%s-%%spawn"\n' "$BUILDKITE_STACK_NAME" "$instance_id"
    printf 'token="%s"\n' "$token"
    printf 'tags="%s"\n' "$tags"
    printf 'tags-from-ec2-meta-data=true\n'
    printf 'spawn=%s\n' "$BUILDKITE_AGENTS_PER_INSTANCE"
    printf 'disconnect-after-idle-timeout=%s\n' "$BUILDKITE_SCALE_IN_IDLE_PERIOD"
    if bk_is_true "${BUILDKITE_TERMINATE_INSTANCE_AFTER_JOB:-false}"; then
      printf 'disconnect-after-job=true\n'
    fi
    if [[ -n "${BUILDKITE_AGENT_ENDPOINT:-}" ]]; then
      printf 'endpoint="%s"\n' "$BUILDKITE_AGENT_ENDPOINT"
    fi
    printf 'build-path="/var/lib/buildkite-agent/builds"\n'
    printf 'hooks-path="/etc/buildkite-agent/hooks"\n'
    printf 'plugins-path="/var/lib/buildkite-agent/plugins"\n'
    printf 'priority=%%n\n'
    printf 'no-color=true\n'
    if [[ -n "${BUILDKITE_PIPELINE_SIGNING_KMS_KEY:-}" ]]; then
      printf 'signing-aws-kms-key="%s"\n' "$BUILDKITE_PIPELINE_SIGNING_KMS_KEY"
    fi
    agent_settings
  } >"$partial"
  token=""
  mv -f "$partial" "$BK_AGENT_CFG"
  bk_log "wrote $BK_AGENT_CFG (mode 0640, root:buildkite-agent)"
}

# check_agent_settings: the agent behaviour settings hold what the agent config accepts.
check_agent_settings() {
  local name
  for name in BUILDKITE_AGENT_EXPERIMENTS BUILDKITE_AGENT_SIGNING_KEY_ID \
    BUILDKITE_ADDITIONAL_SUDO_PERMISSIONS; do
    config_value "$name" "${!name:-}"
  done
  require_count BUILDKITE_AGENT_CANCEL_GRACE_PERIOD 1
  require_count BUILDKITE_AGENT_DISCONNECT_AFTER_UPTIME 0
  if [[ "${BUILDKITE_AGENT_SIGNAL_GRACE_PERIOD:-}" != -1 ]]; then
    require_count BUILDKITE_AGENT_SIGNAL_GRACE_PERIOD 0
  fi
  if ! [[ "${BUILDKITE_AGENT_TRACING_BACKEND:-}" =~ ^(|datadog|opentelemetry)$ ]]; then
    bk_log "BUILDKITE_AGENT_TRACING_BACKEND must be empty, datadog or opentelemetry"
    return 1
  fi
  if ! [[ "${BUILDKITE_VERIFICATION_FAILURE_BEHAVIOR:-}" =~ ^(block|warn)$ ]]; then
    bk_log "BUILDKITE_VERIFICATION_FAILURE_BEHAVIOR must be block or warn"
    return 1
  fi
}

# agent_settings: the agent config lines for the agent behaviour settings and the JWKS key
# files (install_key_sets wrote them).
agent_settings() {
  printf 'cancel-grace-period=%s\n' "$BUILDKITE_AGENT_CANCEL_GRACE_PERIOD"
  printf 'signal-grace-period-seconds=%s\n' "$BUILDKITE_AGENT_SIGNAL_GRACE_PERIOD"
  if ((BUILDKITE_AGENT_DISCONNECT_AFTER_UPTIME > 0)); then
    printf 'disconnect-after-uptime=%s\n' "$BUILDKITE_AGENT_DISCONNECT_AFTER_UPTIME"
  fi
  if bk_is_true "${BUILDKITE_AGENT_TIMESTAMP_LINES:-false}"; then
    # Timestamped lines replace the ANSI timestamps the agent would otherwise add.
    printf 'timestamp-lines=true\nno-ansi-timestamps=true\n'
  fi
  if [[ -n "${BUILDKITE_AGENT_EXPERIMENTS:-}" ]]; then
    printf 'experiment="%s"\n' "$BUILDKITE_AGENT_EXPERIMENTS"
  fi
  if [[ -n "${BUILDKITE_AGENT_TRACING_BACKEND:-}" ]]; then
    printf 'tracing-backend="%s"\n' "$BUILDKITE_AGENT_TRACING_BACKEND"
  fi
  if [[ -n "${BUILDKITE_AGENT_SIGNING_KEY_PATH:-}" ]]; then
    printf 'signing-jwks-file="%s"\n' "$BK_SIGNING_JWKS"
  fi
  if [[ -n "${BUILDKITE_AGENT_SIGNING_KEY_ID:-}" ]]; then
    printf 'signing-jwks-key-id="%s"\n' "$BUILDKITE_AGENT_SIGNING_KEY_ID"
  fi
  if [[ -n "${BUILDKITE_AGENT_VERIFICATION_KEY_PATH:-}" ]]; then
    printf 'verification-jwks-file="%s"\n' "$BK_VERIFICATION_JWKS"
  fi
  if [[ -n "${BUILDKITE_AGENT_VERIFICATION_KEY_PATH:-}${BUILDKITE_PIPELINE_SIGNING_KMS_KEY:-}" ]]; then
    printf 'verification-failure-behavior=%s\n' "$BUILDKITE_VERIFICATION_FAILURE_BEHAVIOR"
  fi
}

# install_key_set PARAMETER FILE: copy a JWKS key set from an SSM parameter into FILE, readable
# by root and the agent only. The keys go from the AWS CLI straight into the file: never logged.
install_key_set() {
  local parameter=$1 file=$2 partial
  bk_log "reading the key set from SSM parameter $parameter into $file"
  partial="$(umask 077 && mktemp "$file.XXXXXX")"
  bk_aws ssm get-parameter --name "$parameter" --with-decryption \
    --query Parameter.Value --output text >"$partial"
  if ! grep -q '[^[:space:]]' "$partial"; then
    rm -f "$partial"
    bk_log "the key set parameter $parameter is empty"
    return 1
  fi
  chown root:buildkite-agent "$partial"
  chmod 0640 "$partial"
  mv -f "$partial" "$file"
}

install_key_sets() {
  if [[ -n "${BUILDKITE_AGENT_SIGNING_KEY_PATH:-}" ]]; then
    install_key_set "$BUILDKITE_AGENT_SIGNING_KEY_PATH" "$BK_SIGNING_JWKS"
  fi
  if [[ -n "${BUILDKITE_AGENT_VERIFICATION_KEY_PATH:-}" ]]; then
    install_key_set "$BUILDKITE_AGENT_VERIFICATION_KEY_PATH" "$BK_VERIFICATION_JWKS"
  fi
}

# install_sudo_permissions: let the agent user run the listed commands with sudo, checked with
# visudo before it is put in place (a broken sudoers file would break sudo for everyone).
install_sudo_permissions() {
  if [[ -z "${BUILDKITE_ADDITIONAL_SUDO_PERMISSIONS:-}" ]]; then
    return 0
  fi
  local partial
  mkdir -p "$BK_SUDOERS_DIR"
  partial="$(umask 077 && mktemp "$BK_SUDOERS_DIR/.buildkite-agent-additional.XXXXXX")"
  printf 'buildkite-agent ALL=NOPASSWD: %s\n' "$BUILDKITE_ADDITIONAL_SUDO_PERMISSIONS" >"$partial"
  chmod 0440 "$partial"
  if ! visudo -c -q -f "$partial"; then
    rm -f "$partial"
    bk_log "BUILDKITE_ADDITIONAL_SUDO_PERMISSIONS is not valid sudoers syntax"
    return 1
  fi
  mv -f "$partial" "$BK_SUDOERS_DIR/buildkite-agent-additional"
  bk_log "the agent user may sudo: $BUILDKITE_ADDITIONAL_SUDO_PERMISSIONS"
}

install_env_file() {
  if [[ -z "${BUILDKITE_ENV_FILE_URL:-}" ]]; then
    return 0
  fi
  bk_log "fetching the agent environment file from $BUILDKITE_ENV_FILE_URL"
  local partial
  partial="$(umask 077 && mktemp "$BK_AGENT_ENV_FILE.XXXXXX")"
  bk-fetch "$BUILDKITE_ENV_FILE_URL" "$partial"
  chown root:buildkite-agent "$partial"
  chmod 0640 "$partial"
  mv -f "$partial" "$BK_AGENT_ENV_FILE"
}

run_bootstrap_script() {
  if [[ -z "${BUILDKITE_BOOTSTRAP_SCRIPT_URL:-}" ]]; then
    return 0
  fi
  local script="$BK_STATE_DIR/bootstrap-script"
  bk_log "running the bootstrap script from $BUILDKITE_BOOTSTRAP_SCRIPT_URL"
  bk-fetch "$BUILDKITE_BOOTSTRAP_SCRIPT_URL" "$script"
  chmod 0700 "$script"
  bash "$script"
  bk_log "the bootstrap script finished"
}

# prepare_instance: the instance features, each its own script reading its settings from this
# environment: /tmp and instance storage, the docker daemon's settings (restarts docker), the
# agent release channel, git mirrors.
prepare_instance() {
  bk-mount-instance-storage
  bk-configure-docker
  bk-select-agent-release
  bk-git-mirrors
}

wait_for_docker() {
  local attempt
  systemctl start docker.service
  for ((attempt = 1; attempt <= DOCKER_WAIT_ATTEMPTS; attempt++)); do
    if docker info >/dev/null 2>&1; then
      bk_log "docker is ready"
      return 0
    fi
    sleep "$DOCKER_WAIT_SECONDS"
  done
  bk_log "docker did not become ready"
  return 1
}

# find_launching_hook_group: with a launching lifecycle hook, the group that holds this launch on
# it (without one the boot cannot tell the group it is done, so it fails).
find_launching_hook_group() {
  if [[ -z "${BUILDKITE_LAUNCHING_HOOK_NAME:-}" ]]; then
    return 0
  fi
  if ! group_name="$(bk_autoscaling_group "$instance_id")"; then
    group_name=""
    bk_log "cannot find the Auto Scaling group of $instance_id to complete the launching lifecycle hook"
    return 1
  fi
  bk_log "the launching lifecycle hook $BUILDKITE_LAUNCHING_HOOK_NAME of $group_name holds this launch until the boot is done"
}

# launching_heartbeat STEP: after a slow step, restart the launching hook's timeout (the stack's
# grace period, which may be as short as 30 s). A failed heartbeat only costs time: logged.
launching_heartbeat() {
  if [[ -z "$group_name" ]]; then
    return 0
  fi
  bk_aws autoscaling record-lifecycle-action-heartbeat \
    --lifecycle-hook-name "$BUILDKITE_LAUNCHING_HOOK_NAME" --auto-scaling-group-name "$group_name" \
    --instance-id "$instance_id" >/dev/null ||
    bk_log "warning: the launching lifecycle heartbeat after $1 failed"
}

# complete_launching_hook: let the group carry on with this launch: into service, or into the
# warm pool (where it stops or hibernates the instance).
complete_launching_hook() {
  if [[ -z "$group_name" ]]; then
    return 0
  fi
  bk_complete_lifecycle_action "$BUILDKITE_LAUNCHING_HOOK_NAME" "$group_name" "$instance_id" CONTINUE
}

# target_lifecycle_state: where the Auto Scaling group is taking the instance ("unknown" when
# IMDS does not say).
target_lifecycle_state() {
  local state
  state="$(bk_imds autoscaling/target-lifecycle-state)" || state=""
  printf '%s' "${state:-unknown}"
}

# start_agent_if_entering_service: start the agent only when the instance is headed for
# InService, read again now that the boot is done (the group may have changed its mind).
#   - InService: complete the launching hook (if any), then start the agent.
#   - Warmed:*: booted into a warm pool; the agent stays disabled (a resume boot does not start
#     it) and the lifecycle handler starts it when the instance enters service (the warm-pool
#     marker). main completes the launching hook last.
#   - Terminated: drained while booting (scale-in, health replacement, rebalancing); no agent,
#     so no job dies with the instance. The lifecycle handler completes the lifecycle action.
#   - anything else (Standby, Detached, not known yet): like a warm pool, the handler starts
#     the agent if and when the instance enters service; main completes the launching hook last
#     (the group may hold the launch on it, whichever way the instance goes).
start_agent_if_entering_service() {
  local state
  state="$(target_lifecycle_state)"
  case "$state" in
    InService)
      complete_launching_hook
      systemctl enable --now "$BK_AGENT_UNIT"
      bk_log "started the agent"
      bk-telemetry boot-completed || true
      ;;
    Warmed:*)
      bk_log "booted into the warm pool: the agent starts when the instance enters service"
      : >"$BK_WARM_MARKER"
      agent_left_for_later=true
      ;;
    Terminated)
      bk_log "the group is already terminating this instance: not starting the agent (the lifecycle handler completes the lifecycle action)"
      ;;
    *)
      bk_log "target lifecycle state '$state': the agent starts when the instance enters service"
      : >"$BK_WARM_MARKER"
      agent_left_for_later=true
      ;;
  esac
}

main() {
  mkdir -p "$BK_LOG_DIR" "$BK_STATE_DIR" "$BK_CONFIG_DIR"
  printf '%s: logging to %s\n' "${0##*/}" "$LOG_FILE"
  exec >>"$LOG_FILE" 2>&1
  trap 'on_error $? $LINENO' ERR

  bk_log "starting"
  check_status
  start_log_shipping

  check_settings

  if [[ -n "${BUILDKITE_PIPELINE_SIGNING_KMS_KEY:-}" ]]; then
    bk_log "pipeline signing with KMS key $BUILDKITE_PIPELINE_SIGNING_KMS_KEY ($BUILDKITE_PIPELINE_SIGNING_KMS_ACCESS)"
  fi

  bk_imds_refresh_token
  instance_id="$(bk_imds instance-id)"
  bk_log "instance $instance_id, target lifecycle state '$(target_lifecycle_state)'"
  find_launching_hook_group

  prepare_instance
  launching_heartbeat "preparing the instance"
  write_settings
  local tags
  tags="$(agent_tags)"
  bk_log "agent tags: $tags"
  config_value BUILDKITE_AGENT_TAGS "$tags"
  write_agent_config "$tags"
  install_key_sets
  install_sudo_permissions
  install_env_file
  run_bootstrap_script
  launching_heartbeat "the bootstrap script"

  systemctl enable --now bk-lifecycle-handler.service
  wait_for_docker

  local agent_left_for_later=false
  start_agent_if_entering_service

  signal_cloudformation 0
  printf 'Completed\n' >"$BK_STATUS_FILE"
  if "$agent_left_for_later"; then
    # Last: into the warm pool, the group stops or hibernates the instance as soon as this
    # returns; into service, the lifecycle handler starts the agent.
    complete_launching_hook
    bk_log "boot completed; the agent starts when the instance enters service"
  else
    bk_log "boot completed"
  fi
}

# Run when executed; only define the functions when sourced (the template tests call
# check_settings against the parameters' patterns).
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
