#!/usr/bin/env bash
# A headless browser for the dashboard's tests (Debian's chromium and chromedriver).
#   browser.sh install   install chromium and chromium-driver when either is missing
#   browser.sh status    print the versions found
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

install() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then return 0; fi
  log "installing Debian's chromium and chromium-driver"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
}

status() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    chromium --version
    chromedriver --version
  else
    echo "chromium or chromedriver missing (run: $0 install)"
  fi
}

case "${1:-}" in
  install) install ;;
  status) status ;;
  *) echo "usage: $0 install|status" >&2; exit 2 ;;
esac
