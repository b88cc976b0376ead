#!/usr/bin/env bash
# System packages the tests and the demo need: headless Chromium for the report test,
# kubectl for kustomize rendering, tini. Installed only when missing.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# tini: the images' PID 1; the signal fault tests run glave under it as in a pod.
[ -x /usr/bin/tini ] || need+=(tini)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
