# Sourced by scripts/*: make sure .venv exists and giftsync is installed in it.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GIFTSYNC_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtual environment in $VENV" >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
fi
stamp="$VENV/.giftsync-installed"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
  echo "setup: installing giftsync and its test dependencies" >&2
  "$VENV/bin/python" -m pip install -q -e "$ROOT[test]" >&2
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
