#!/usr/bin/env bash
# Runs a command and checks its exit status and that its output (stdout + stderr) matches a
# regular expression: expect.sh <status|nonzero> <regex> <command> [args...]
want_status=$1
pattern=$2
shift 2
output=$("$@" 2>&1)
status=$?
echo "$output"
if [[ $want_status == nonzero ]]; then
  if [[ $status -eq 0 ]]; then
    echo "expect.sh: exit status 0, expected a failure" >&2
    exit 1
  fi
elif [[ $status -ne $want_status ]]; then
  echo "expect.sh: exit status $status, expected $want_status" >&2
  exit 1
fi
if ! grep -Eq -- "$pattern" <<<"$output"; then
  echo "expect.sh: output does not match /$pattern/" >&2
  exit 1
fi
