#!/usr/bin/env bash
# smoke.sh ADAPTER [--events N] [--pace-ms MS] [--timeout S] [--drain-ms MS] [--flush-every K] [--end eof|exit]: see smoke.py.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$here/smoke.py" "$@"
