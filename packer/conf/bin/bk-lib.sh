# shellcheck shell=bash disable=SC2034 # the variables are used by the scripts that source this
# bk-lib.sh: helpers shared by the bk-* instance scripts. Sourced, never run.
#
# Owns: where instance state lives, logging, the IMDSv2 client, the AWS CLI retry wrapper and
# the settings file the boot script writes for the other scripts and the agent hooks.
#
# Paths. Every path below lives under BK_ROOT, which is empty on an instance. The bats tests set
# BK_TEST_ROOT to a temporary directory so the scripts run without root; BK_TEST_* names are test
# hooks, not settings, and nothing on an instance sets them.
BK_ROOT="${BK_TEST_ROOT:-}"
BK_CONFIG_DIR="$BK_ROOT/etc/buildkite-agent"
BK_AGENT_CFG="$BK_CONFIG_DIR/buildkite-agent.cfg"
BK_AGENT_ENV_FILE="$BK_CONFIG_DIR/env"
# Non-secret settings for the hooks and the instance scripts. It lives in a root-owned directory
# (not the agent's home) because root-run scripts source it.
BK_SETTINGS_FILE="$BK_CONFIG_DIR/cfn-env"
BK_STATE_DIR="$BK_ROOT/var/lib/bk-elastic-stack"
BK_STATUS_FILE="$BK_STATE_DIR/boot-status"
# Written before this instance stops its agent on purpose (lifecycle drain, spot notice), so the
# agent's ExecStopPost (bk-terminate-instance) leaves the instance alone.
BK_LEAVING_MARKER="$BK_STATE_DIR/leaving"
# Written when the boot left the agent for later (a warm pool, or a target lifecycle state that
# is not yet InService): bk-lifecycle-handler starts the agent when the instance enters service.
BK_WARM_MARKER="$BK_STATE_DIR/warm-pool"
BK_LOG_DIR="$BK_ROOT/var/log"
# Written by bk-mount-instance-storage when NVMe instance storage is mounted (holds its path).
BK_INSTANCE_STORAGE_MARKER="$BK_STATE_DIR/instance-storage"
# Agent settings the instance features add (git mirrors path); the agent unit loads it.
BK_AGENT_FEATURES_ENV="$BK_CONFIG_DIR/features.env"

BK_AGENT_UNIT=buildkite-agent.service
BK_IMDS_URL=http://169.254.169.254/latest
# The AWS CLI's own retries come first (adaptive mode honours throttling); bk_aws adds a
# slower outer loop that outlasts them, for throttling and for Auto Scaling being busy with the
# group (a scaling activity in progress, a pending update of the same resource).
export AWS_RETRY_MODE=adaptive
export AWS_MAX_ATTEMPTS=5
export AWS_PAGER=""
PATH="$PATH:/opt/aws/bin"

BK_SCRIPT_NAME="${0##*/}"

# bk_log MESSAGE...: one timestamped line on stderr (each script sends stderr to its log file).
bk_log() {
  printf '%s %s[%d]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$BK_SCRIPT_NAME" "$$" "$*" >&2
}

# bk_now: seconds since the epoch (tests put a fake `date` on PATH to drive the clock).
bk_now() {
  date +%s
}

# bk_is_true VALUE: true for true/yes/on/1 (any case).
bk_is_true() {
  case "${1,,}" in
    true | yes | on | 1) return 0 ;;
    *) return 1 ;;
  esac
}

# bk_load_settings: source the settings the boot script wrote (no-op before the first boot).
bk_load_settings() {
  if [[ -r "$BK_SETTINGS_FILE" ]]; then
    # shellcheck source=/dev/null
    . "$BK_SETTINGS_FILE"
  fi
}

BK_IMDS_TOKEN=""
BK_IMDS_TOKEN_AT=0

# _bk_imds_new_token: print a fresh IMDSv2 session token (curl retries transient errors).
_bk_imds_new_token() {
  curl --silent --show-error --fail --max-time 5 --connect-timeout 2 \
    --retry 5 --retry-connrefused --retry-delay 1 --retry-max-time 60 \
    -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 21600" "$BK_IMDS_URL/api/token"
}

# bk_imds_refresh_token: cache a session token in this shell for ten minutes. Long-running
# scripts call it (outside a command substitution) before polling; bk_imds works without it.
bk_imds_refresh_token() {
  local now
  now="$(bk_now)"
  if [[ -z "$BK_IMDS_TOKEN" ]] || ((now - BK_IMDS_TOKEN_AT > 600)); then
    BK_IMDS_TOKEN="$(_bk_imds_new_token)" || {
      BK_IMDS_TOKEN=""
      return 1
    }
    BK_IMDS_TOKEN_AT="$now"
  fi
}

# bk_imds PATH: print a meta-data value; fails on 404 (e.g. no spot notice) or when IMDS is down.
bk_imds() {
  local token="$BK_IMDS_TOKEN"
  if [[ -z "$token" ]]; then
    token="$(_bk_imds_new_token)" || return 1
  fi
  curl --silent --fail --max-time 5 --connect-timeout 2 \
    --retry 3 --retry-connrefused --retry-delay 1 \
    -H "X-aws-ec2-metadata-token: $token" "$BK_IMDS_URL/meta-data/$1"
}

# Errors that mean "the same call may work in a moment".
BK_AWS_TRANSIENT_ERRORS='throttl|rate exceeded|requestlimitexceeded|too many requests|ScalingActivityInProgress|ResourceContention'
BK_AWS_MAX_BACKOFF_SECONDS=30

# bk_aws ARGS...: run the AWS CLI; after a transient error back off (2, 4, 8, 16 s) and try
# again, five attempts in all. Prints the CLI's stdout; passes its stderr through on failure.
bk_aws() {
  bk_aws_patiently 5 "$@"
}

# bk_aws_patiently ATTEMPTS ARGS...: bk_aws with ATTEMPTS attempts; the backoff doubles from
# 2 s up to BK_AWS_MAX_BACKOFF_SECONDS.
bk_aws_patiently() {
  local attempts=$1 attempt=1 delay=2 output errors rc
  shift
  errors="$(mktemp)"
  while :; do
    rc=0
    output="$(aws "$@" 2>"$errors")" || rc=$?
    if ((rc == 0)); then
      rm -f "$errors"
      printf '%s\n' "$output"
      return 0
    fi
    if ((attempt < attempts)) && grep -qiE "$BK_AWS_TRANSIENT_ERRORS" "$errors"; then
      bk_log "aws $1 $2 failed with a transient error (attempt $attempt of $attempts): $(grep -oiE "$BK_AWS_TRANSIENT_ERRORS" "$errors" | head -n 1); retrying in ${delay}s"
      sleep "$delay"
      attempt=$((attempt + 1))
      delay=$((delay * 2 > BK_AWS_MAX_BACKOFF_SECONDS ? BK_AWS_MAX_BACKOFF_SECONDS : delay * 2))
      continue
    fi
    cat "$errors" >&2
    rm -f "$errors"
    return "$rc"
  done
}

# An ssm:/path URL: bk-fetch writes the parameters under /path as an environment file (only
# the agent env file may be one).
# shellcheck disable=SC2034 # used by the scripts that source this library
BK_SSM_PATH_URL='^ssm:/[a-zA-Z0-9_./-]+$'

# bk_fetchable_url URL: true for the URLs bk-fetch downloads: s3://bucket/key, https://...
# and file:///absolute/path. Anything else, plain http:// included, is refused.
bk_fetchable_url() {
  case "$1" in
    s3://?* | https://?* | file:///?*) return 0 ;;
    *) return 1 ;;
  esac
}

# bk_agent_state: systemd's ActiveState of the agent unit (active, deactivating, inactive, ...).
bk_agent_state() {
  local state
  state="$(systemctl is-active "$BK_AGENT_UNIT" 2>/dev/null)" || true
  printf '%s' "${state:-unknown}"
}

# bk_autoscaling_group INSTANCE_ID: print the Auto Scaling group the instance belongs to; fails
# when the group does not know the instance.
bk_autoscaling_group() {
  local group
  group="$(bk_aws autoscaling describe-auto-scaling-instances --instance-ids "$1" \
    --query 'AutoScalingInstances[0].AutoScalingGroupName' --output text)" || return 1
  [[ -n "$group" && "$group" != None ]] || return 1
  printf '%s' "$group"
}

# bk_complete_lifecycle_action HOOK GROUP INSTANCE_ID RESULT: complete the lifecycle action the
# hook holds for the instance. Succeeds, with a log line, when the group holds none (completed
# already, timed out, or the hook never applied to this transition): there is nothing left to do.
bk_complete_lifecycle_action() {
  local hook=$1 group=$2 instance=$3 result=$4 errors rc=0
  errors="$(mktemp)"
  bk_aws autoscaling complete-lifecycle-action --lifecycle-hook-name "$hook" \
    --auto-scaling-group-name "$group" --instance-id "$instance" \
    --lifecycle-action-result "$result" >/dev/null 2>"$errors" || rc=$?
  if ((rc == 0)); then
    rm -f "$errors"
    bk_log "completed the $hook lifecycle action ($result)"
    return 0
  fi
  cat "$errors" >&2
  if grep -qi 'No active Lifecycle Action' "$errors"; then
    rm -f "$errors"
    bk_log "the $hook hook holds no lifecycle action for $instance: nothing to complete"
    return 0
  fi
  rm -f "$errors"
  return "$rc"
}
