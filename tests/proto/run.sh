#!/bin/sh
# Checks proto/ (JSON Schemas, examples, PROTOCOL.md) with Debian's python3-jsonschema and
# python3-pytest. Extra arguments go to pytest (e.g. -k routed, -x).
set -eu
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 -m pytest -q tests/proto "$@"
