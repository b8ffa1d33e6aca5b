#!/usr/bin/env bash
# Installs everything KQI Hub needs on a fresh Debian machine, from the project's own files:
#   - Debian packages (apt): git, podman and runc (jobs and notebooks run as containers),
#     nodejs/npm when node is missing, python3-venv; with --test also mmdebstrap (the tests
#     build their container images from Debian's packages), chromium (browser tests) and
#     postgresql (tests on PostgreSQL)
#   - a Python virtual environment .venv with this project (pip), with --test its test extras
#   - configurable-http-proxy (npm) into .venv, where kqi-hub and the tests find it
#   - xterm.js and its fit add-on (npm, the web shell's terminal) into .venv/node
#   - cytoscape.js and cytoscape-dagre (npm, the lineage graph) into .venv/node
#   - the user guide (MkDocs, docs/) built into build/docs/, which the kqi service serves
# Safe to run again: each step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")"

mode=run
case "${1:-}" in
  --test) mode=test ;;
  "") ;;
  *) echo "usage: bash setup.sh [--test]" >&2; exit 2 ;;
esac

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

need=()
command -v git >/dev/null || need+=(git)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ "$mode" = test ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  # a real OpenLDAP server for the directory sign-in tests (tests/ldapserver.py starts its own
  # slapd with its own configuration): the package is told to make no configuration of its own,
  # so the Debian slapd has nothing to serve; stopped below in case the package started it
  if ! command -v slapd >/dev/null || ! command -v ldapadd >/dev/null; then
    need+=(slapd ldap-utils)
    printf 'slapd slapd/no_configuration boolean true\n' | $SUDO debconf-set-selections
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  case " ${need[*]} " in *" slapd "*) $SUDO service slapd stop >/dev/null 2>&1 || true ;; esac
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
if [ "$mode" = test ]; then
  .venv/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
else
  .venv/bin/python -m pip install -q -e . 2>&1 | grep -v '^WARNING: Location' || true
fi
.venv/bin/python -c 'import kqi_services, jupyterhub' || { echo "setup: pip install failed" >&2; exit 1; }

# the lab extension's Python package (labextension/, its server extension), editable: the local
# notebook spawner binds these very files into every notebook; enabled for a jupyter server run
# from .venv, its front-end (built below into labextension/kqi_labextension/labextension) linked
.venv/bin/python -m pip install -q -e ./labextension 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c 'import kqi_labextension' || { echo "setup: pip install of labextension/ failed" >&2; exit 1; }
mkdir -p .venv/etc/jupyter/jupyter_server_config.d .venv/share/jupyter/labextensions
cp labextension/jupyter-config/jupyter_server_config.d/kqi_labextension.json .venv/etc/jupyter/jupyter_server_config.d/
ln -sfn "$PWD/labextension/kqi_labextension/labextension" .venv/share/jupyter/labextensions/kqi-labextension

# the user guide (docs/en, docs/ja; MkDocs) into build/docs/<language>/, which the kqi service serves
# at /services/kqi/docs/; skipped while no file under docs/ is newer than the last build
if [ ! -f build/docs/.built ] || [ ! -f build/docs/en/index.html ] || [ ! -f build/docs/ja/index.html ] \
    || [ -n "$(find docs -newer build/docs/.built -print -quit)" ]; then
  for lang in en ja; do
    .venv/bin/mkdocs build --quiet --clean -f "docs/mkdocs.${lang}.yml"
  done
  touch build/docs/.built
fi

CHP_VERSION=5.3.0
if [ ! -x .venv/node/node_modules/.bin/configurable-http-proxy ]; then
  mkdir -p .venv/node
  npm install --silent --no-audit --no-fund --prefix .venv/node "configurable-http-proxy@${CHP_VERSION}" >/dev/null 2>&1 \
    || npm install --no-audit --no-fund --prefix .venv/node "configurable-http-proxy@${CHP_VERSION}"
fi
ln -sf ../node/node_modules/.bin/configurable-http-proxy .venv/bin/configurable-http-proxy

# xterm.js and its fit add-on (the web shell's terminal), served by the kqi service from
# .venv/node/node_modules (KqiService.xterm_dir)
XTERM_VERSION=5.5.0
XTERM_FIT_VERSION=0.10.0
if [ ! -f .venv/node/node_modules/@xterm/xterm/lib/xterm.js ] || [ ! -f .venv/node/node_modules/@xterm/addon-fit/lib/addon-fit.js ]; then
  mkdir -p .venv/node
  npm install --silent --no-audit --no-fund --prefix .venv/node "@xterm/xterm@${XTERM_VERSION}" "@xterm/addon-fit@${XTERM_FIT_VERSION}" >/dev/null 2>&1 \
    || npm install --no-audit --no-fund --prefix .venv/node "@xterm/xterm@${XTERM_VERSION}" "@xterm/addon-fit@${XTERM_FIT_VERSION}"
fi

# cytoscape.js and its dagre (layered) layout, which draw the lineage graph, served by the kqi
# service from .venv/node/node_modules (KqiService.cytoscape_dir)
CYTOSCAPE_VERSION=3.33.1
CYTOSCAPE_DAGRE_VERSION=4.0.1
if [ ! -f .venv/node/node_modules/cytoscape/dist/cytoscape.min.js ] || [ ! -f .venv/node/node_modules/cytoscape-dagre/dist/cytoscape-dagre.min.js ]; then
  mkdir -p .venv/node
  npm install --silent --no-audit --no-fund --prefix .venv/node "cytoscape@${CYTOSCAPE_VERSION}" "cytoscape-dagre@${CYTOSCAPE_DAGRE_VERSION}" >/dev/null 2>&1 \
    || npm install --no-audit --no-fund --prefix .venv/node "cytoscape@${CYTOSCAPE_VERSION}" "cytoscape-dagre@${CYTOSCAPE_DAGRE_VERSION}"
fi

# The JupyterLab extension (labextension/): its prebuilt front-end is built from the npm registry
# with jlpm (the yarn of jupyter_builder, in .venv) when it is missing or older than its sources, or
# when its node_modules (also what its jest tests run with) are missing
LABEXT_OUT=labextension/kqi_labextension/labextension/package.json
if [ ! -f "$LABEXT_OUT" ] || [ ! -d labextension/node_modules/jest ] || [ -n "$(find labextension/src labextension/style labextension/package.json \
    labextension/yarn.lock labextension/tsconfig.json -newer "$LABEXT_OUT" 2>/dev/null | head -1)" ]; then
  labext_start=$(date +%s)
  if ! labext_log=$(cd labextension && export PATH="$PWD/../.venv/bin:$PATH" && jlpm install 2>&1 && jlpm build 2>&1); then
    echo "$labext_log" | tail -40 >&2
    echo "setup: building the lab extension failed (cd labextension && jlpm install && jlpm build)" >&2
    exit 1
  fi
  echo "setup: lab extension built in $(( $(date +%s) - labext_start )) s"
fi

# chart.js, which draws the usage report's chart, served by the kqi service from
# .venv/node/node_modules (KqiService.chart_dir)
CHARTJS_VERSION=4.5.1
if [ ! -f .venv/node/node_modules/chart.js/dist/chart.umd.js ]; then
  mkdir -p .venv/node
  npm install --silent --no-audit --no-fund --prefix .venv/node "chart.js@${CHARTJS_VERSION}" >/dev/null 2>&1 \
    || npm install --no-audit --no-fund --prefix .venv/node "chart.js@${CHARTJS_VERSION}"
fi
echo "setup: ready ($mode)"
