# Shared by scripts/demo, scripts/test and .ci/run: what the project needs
# from Debian 12, installed only when missing.

DATAHUB_PACKAGES=(
  gcc
  gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-tools
  libc6-dev
  libgstreamer-plugins-base1.0-dev
  libjson-glib-dev
  libgstreamer1.0-dev
  libsodium-dev
  libzmq3-dev
  meson
  ninja-build
  pkg-config
  python3
  python3-gi
  gir1.2-gstreamer-1.0
  gir1.2-gst-plugins-base-1.0
)

ensure_packages() {
  local missing=()
  for pkg in "${DATAHUB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
      missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo ">> installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# configure_and_build DIR [meson options...]
configure_and_build() {
  local dir=$1
  shift
  if [ -f "$dir/build.ninja" ]; then
    meson configure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir" >/dev/null
}

# count_results DIR: prints "PASSED FAILED" from meson's JSON test log.
count_results() {
  python3 - "$1/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif r != "SKIP":
        failed += 1
print(passed, failed)
PY
}
