# Sourced by tools/run-example and tools/run-tests: make .venv (first run only) and install
# flowc with the extras in $EXTRAS (editable), again only when pyproject.toml changed.
PY="${PYTHON:-python3}"
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || { echo "flowc needs Python >= 3.10; set PYTHON=/path/to/python3.x" >&2; exit 1; }
    "$PY" -m venv "$VENV" \
        || { echo "could not create $VENV (on Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 1; }
fi
STAMP="$VENV/.flowc-installed-$EXTRAS"
WANT="$(cksum < pyproject.toml)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "installing flowc[$EXTRAS] into $VENV ..." >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[$EXTRAS]"
    echo "$WANT" > "$STAMP"
fi
