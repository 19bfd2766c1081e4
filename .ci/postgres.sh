#!/usr/bin/env bash
# Starts a Postgres server for the store's tests (tests/store.rs), with
# Debian's postgresql package, and prints its URL. Exits non-zero, saying
# why, when it cannot: the store's tests then run on SQLite only, and CI
# says so.
set -euo pipefail

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >/dev/null
fi
if [ -z "$(pg_lsclusters -h)" ]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    pg_createcluster "$version" main >&2
fi
read -r version cluster port status _ < <(pg_lsclusters -h | head -1)
if [ "$status" != "online" ]; then
    pg_ctlcluster "$version" "$cluster" start >&2
fi
# A role that may create a database per test.
runuser -u postgres -- psql -p "$port" -qc "
DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bulwark') THEN
        CREATE ROLE bulwark LOGIN CREATEDB PASSWORD 'bulwark';
    END IF;
END \$\$;" >&2
echo "postgres://bulwark:bulwark@127.0.0.1:$port/postgres"
