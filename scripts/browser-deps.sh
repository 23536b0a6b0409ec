#!/usr/bin/env bash
# What the console's browser tests (scripts/e2e/console*_test.go) need:
# Debian's Chromium and the CJK fonts its pages are drawn with. `make test`,
# `make screenshots` and so .ci/run go through this script: it installs what
# is missing with apt-get when run as root, and otherwise says which command
# to run. CHROMIUM=<path> names another Chromium (then only the fonts are
# checked).
set -euo pipefail

missing=()
chromium="${CHROMIUM:-}"
if [ -n "$chromium" ]; then
  command -v "$chromium" >/dev/null 2>&1 || { echo "browser-deps: CHROMIUM=$chromium is not an executable" >&2; exit 1; }
elif ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  missing+=(chromium)
fi
# The fonts: without them Chinese pages show boxes in the screenshots.
if ! { dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q "ok installed"; } &&
   ! { command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh 2>/dev/null | head -1)" ]; }; then
  missing+=(fonts-noto-cjk)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "browser-deps: installing ${missing[*]} for the console's browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  $cmd
  exit 0
fi
echo "browser-deps: the console's browser tests need ${missing[*]} (Debian packages); install them:" >&2
echo "  sudo apt-get update && sudo $cmd" >&2
exit 1
