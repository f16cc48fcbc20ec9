#!/usr/bin/env bash
# git-lfs, pinned release, enabled system-wide.
set -Eeuo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=build-lib.sh
. "$BK_BUILD_DIR/build-lib.sh"

work="$(mktemp -d)"
fetch_release git_lfs "$GIT_LFS_VERSION" "$BK_ARCH" "$GIT_LFS_SHA256" "$work/git-lfs.tar.gz"
tar -xzf "$work/git-lfs.tar.gz" -C "$work"
binary="$(find "$work" -type f -name git-lfs -perm -u+x | head -n 1)"
install -m 0755 -o root -g root "$binary" /usr/local/bin/git-lfs
rm -rf "$work"
git lfs install --system
git lfs version
