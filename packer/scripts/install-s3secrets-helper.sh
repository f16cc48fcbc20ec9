#!/usr/bin/env bash
# s3secrets-helper, the binary behind the secrets plugin's hooks, pinned release.
set -Eeuo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=build-lib.sh
. "$BK_BUILD_DIR/build-lib.sh"

fetch_release s3secrets_helper "$S3SECRETS_HELPER_VERSION" "$BK_ARCH" "$S3SECRETS_HELPER_SHA256" \
  /usr/local/bin/s3secrets-helper
chmod 0755 /usr/local/bin/s3secrets-helper
