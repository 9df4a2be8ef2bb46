# Sourced by scripts/dev and scripts/test: make .venv (Python 3.11) and install the project
# into it, again only when pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${DURABLE_VENV:-$root/.venv}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python="$candidate"; break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "error: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv ..." >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  echo "installing the project and its dev tools into $venv (first run takes a minute) ..." >&2
  # pip and setuptools talk a lot (setuptools' editable-install banner, notes about unused
  # package folders): all of it goes to a log, shown only when the install fails.
  log="$venv/install.log"
  "$venv/bin/python" -m pip install --upgrade pip >"$log" 2>&1 || true  # an old pip works too
  if ! "$venv/bin/python" -m pip install -e "$root[dev]" >>"$log" 2>&1 \
     || ! "$venv/bin/python" -c "import temporalio, durable" >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "error: installing the project into $venv failed (the whole log: $log)" >&2
    exit 1
  fi
  touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$root"
