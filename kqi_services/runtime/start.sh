#!/bin/sh
# Starts the KQI runtime in any image: finds a Python 3 (installs one with the image's package
# manager when it has none, as the guide's step 6 does for python), then runs kqi_runtime.py.
# Usage: sh /kqi/runtime/start.sh /kqi/tmp/spec.json
here=$(dirname "$0")
find_python() {
  for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}
python=$(find_python)
if [ -z "$python" ]; then
  echo "[kqi] the image has no Python 3: installing it" >&2
  if command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null
  elif command -v apk >/dev/null 2>&1; then apk add --no-cache python3 >/dev/null
  elif command -v dnf >/dev/null 2>&1; then dnf install -y -q python3 >/dev/null
  elif command -v microdnf >/dev/null 2>&1; then microdnf install -y python3 >/dev/null
  elif command -v yum >/dev/null 2>&1; then yum install -y -q python3 >/dev/null
  fi
  python=$(find_python)
fi
if [ -z "$python" ]; then
  echo "[kqi] failed: the image has no Python 3 and no package manager could install one" >&2
  kqi="${KQI_ROOT:-/kqi}"
  mkdir -p "$kqi/tmp"
  printf '{"exitCode": null, "failedStep": true, "message": "the image has no Python 3 and none could be installed"}' > "$kqi/tmp/result.json"
  exit 125
fi
exec "$python" -S "$here/kqi_runtime.py" "$@"
