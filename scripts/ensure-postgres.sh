#!/usr/bin/env bash
# The store tests need the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust auth, database test).
# Start it when it is installed but down; say so plainly when it is missing.
set -u
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then exit 0; fi
if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done
fi
echo "PostgreSQL is not reachable at 127.0.0.1:5432; the PostgreSQL store tests will fail" >&2
exit 0
