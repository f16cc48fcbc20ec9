# shellcheck shell=bash disable=SC2016 # part of the fleet's user data: the template fills in the layer ARN
# BEGIN quick start (packer/quick-start/user-data.sh). No agent image for this region and
# architecture: this plain Amazon Linux 2023 instance installs what an image holds, from this
# stack's install assets layer (verified against the CodeSha256 Lambda reports), then boots.
bk_quick_start_fail() {
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) quick start: $1" | tee -a /var/log/elastic-stack.log >&2 || true
  bk_token=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) &&
    bk_id=$(curl -sf -H "X-aws-ec2-metadata-token: $bk_token" http://169.254.169.254/latest/meta-data/instance-id) &&
    aws autoscaling set-instance-health --region "$AWS_REGION" --instance-id "$bk_id" --health-status Unhealthy ||
    echo "quick start: could not mark this instance unhealthy" >&2
  systemctl poweroff --no-block
  exit 1
}
if [ ! -x /usr/local/bin/bk-install-elastic-stack.sh ]; then
  bk_assets=/var/lib/bk-elastic-stack/install-assets
  mkdir -p "$bk_assets"
  bk_layer=$(aws lambda get-layer-version-by-arn --region "$AWS_REGION" --arn '${InstallAssetsLayerArn}' --query '[Content.Location, Content.CodeSha256]' --output text) ||
    bk_quick_start_fail "cannot read the install assets layer"
  read -r bk_url bk_sha <<<"$bk_layer"
  curl -sSf --retry 5 --retry-connrefused --proto '=https' -o "$bk_assets.zip" "$bk_url" ||
    bk_quick_start_fail "cannot download the install assets"
  bk_actual=$(python3 -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.sha256(open(sys.argv[1],"rb").read()).digest()).decode())' "$bk_assets.zip")
  [ "$bk_actual" = "$bk_sha" ] ||
    bk_quick_start_fail "verification failed: the install assets' SHA-256 $bk_actual is not the layer's CodeSha256 $bk_sha"
  python3 -m zipfile -e "$bk_assets.zip" "$bk_assets" ||
    bk_quick_start_fail "cannot unpack the install assets"
  rm -f "$bk_assets.zip"
  bash "$bk_assets/quick-start/bk-quick-start-install" ||
    bk_quick_start_fail "installing failed; the reason is in /var/log/elastic-stack.log"
fi
# END quick start
