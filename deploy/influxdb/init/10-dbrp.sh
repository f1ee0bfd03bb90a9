#!/bin/bash
# Runs once, when the influxdb container initialises an empty volume
# (DOCKER_INFLUXDB_INIT_MODE=setup; the image runs /docker-entrypoint-initdb.d/* after setup
# with the influx CLI already authorised as the admin).
#
# Dashboards and `satoyama export` query with InfluxQL (`/query?db=...`, DESIGN.md §3).
# InfluxDB 2.x answers InfluxQL through a DBRP mapping from a database/retention-policy
# name to a bucket; this maps database "<bucket>", policy "autogen" to the Satoyama bucket
# and makes it the default, so `SELECT ... FROM reading` works with db=<bucket>.
set -euo pipefail

org="${DOCKER_INFLUXDB_INIT_ORG:?}"
bucket="${DOCKER_INFLUXDB_INIT_BUCKET:?}"
bucket_id="${DOCKER_INFLUXDB_INIT_BUCKET_ID:-}"
if [ -z "$bucket_id" ]; then
    bucket_id="$(influx bucket list --org "$org" --name "$bucket" --hide-headers | cut -f1)"
fi

if influx v1 dbrp list --org "$org" --bucket-id "$bucket_id" --hide-headers | grep -q .; then
    echo "10-dbrp: bucket $bucket already has a DBRP mapping"
else
    influx v1 dbrp create --org "$org" --db "$bucket" --rp autogen \
        --bucket-id "$bucket_id" --default
    echo "10-dbrp: InfluxQL database '$bucket' (rp autogen) -> bucket '$bucket'"
fi
