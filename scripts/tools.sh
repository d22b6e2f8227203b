#!/usr/bin/env bash
# The external tools some tests run, provisioned on a fresh Debian machine,
# and put on PATH. Sourced by scripts/test.sh; run it directly to install
# them for a plain `cargo test` (it prints the PATH to export).
#
#   promtool                 Debian's `prometheus` package: `promtool check
#                            metrics` lints a scrape of /metrics
#                            (tests/contract/metrics.rs)
#   schemathesis             PyPI, pinned: fuzzes the service against its
#   openapi-spec-validator   OpenAPI document; the validator checks the
#                            document is valid OpenAPI 3.1
#                            (tests/contract/openapi.rs)
#
# The Python tools are used from the system when its versions are the
# pinned ones, else installed into a virtualenv under target/tools/python
# (IDEMPROOF_TOOLS_DIR moves it). Anything that cannot be provisioned fails
# loudly: the tests that need it would fail anyway, with less to go on.

SCHEMATHESIS_VERSION=4.32.5
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0

tools_fail() {
    echo "[tools] $*" >&2
    return 1
}

# Whether python $1 has both pinned packages, and their commands beside it.
tools_python_ok() {
    "$1" - <<EOF 2>/dev/null
import importlib.metadata as m
assert m.version("schemathesis") == "$SCHEMATHESIS_VERSION"
assert m.version("openapi-spec-validator") == "$OPENAPI_SPEC_VALIDATOR_VERSION"
EOF
}

tools_apt() {
    [ "$(id -u)" = 0 ] || tools_fail "$1 is missing and installing it needs root: apt-get install -y $2" || return 1
    echo "[tools] apt-get install -y $2" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >&2 ||
        { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >&2; } ||
        tools_fail "could not install $2"
}

tools_provision() {
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    local dir="${IDEMPROOF_TOOLS_DIR:-$root/target/tools}"

    if ! command -v promtool >/dev/null; then
        tools_apt promtool prometheus || return 1
    fi
    command -v promtool >/dev/null || tools_fail "promtool is still not on PATH" || return 1

    local venv="$dir/python"
    if command -v python3 >/dev/null && tools_python_ok python3 &&
        command -v schemathesis >/dev/null && command -v openapi-spec-validator >/dev/null; then
        :
    elif [ -x "$venv/bin/python" ] && tools_python_ok "$venv/bin/python"; then
        export PATH="$venv/bin:$PATH"
    else
        command -v python3 >/dev/null || tools_apt python3 python3 || return 1
        if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" 2>/dev/null; then
            tools_apt "python3 venv" python3-venv || return 1
        fi
        echo "[tools] pip install schemathesis==$SCHEMATHESIS_VERSION" \
            "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION into $venv" >&2
        rm -rf "$venv"
        python3 -m venv "$venv" >&2 &&
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
                "schemathesis==$SCHEMATHESIS_VERSION" \
                "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION" >&2 ||
            tools_fail "could not install schemathesis and openapi-spec-validator (pip)" || return 1
        tools_python_ok "$venv/bin/python" || tools_fail "the virtualenv lacks the pinned versions" || return 1
        export PATH="$venv/bin:$PATH"
    fi
    echo "[tools] promtool: $(command -v promtool); schemathesis: $(command -v schemathesis);" \
        "openapi-spec-validator: $(command -v openapi-spec-validator)" >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    tools_provision
    echo "export PATH=\"$PATH\""
else
    tools_provision
fi
