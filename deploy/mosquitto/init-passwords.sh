#!/bin/sh
# Entrypoint of the mosquitto service: write the broker's password file from .env, then
# run the command (mosquitto). Replaces the image's /docker-entrypoint.sh, whose recursive
# chown of /mosquitto would try to change the read-only config mount.
#
# Runs at every start, so changing a password in .env and `docker compose up -d` rotates
# it. Users added by hand with mosquitto_passwd (docs/deploy.md) stay in the file.
# The file holds salted hashes (mosquitto_passwd), never the passwords themselves.
set -eu

PASSWORD_FILE="${MOSQUITTO_PASSWORD_FILE:-/mosquitto/data/passwd}"

set_user() {  # set_user NAME PASSWORD
    if [ -z "$1" ] || [ -z "$2" ]; then
        echo "init-passwords: user name or password empty; check MQTT_* in .env" >&2
        exit 1
    fi
    mosquitto_passwd -b "$PASSWORD_FILE" "$1" "$2"
    echo "init-passwords: set password of MQTT user '$1'"
}

mkdir -p "$(dirname "$PASSWORD_FILE")"
[ -f "$PASSWORD_FILE" ] || : > "$PASSWORD_FILE"
chmod 0600 "$PASSWORD_FILE"

set_user "${MQTT_GATEWAY_USER:-}" "${MQTT_GATEWAY_PASSWORD:-}"
set_user "${MQTT_NODES_USER:-}" "${MQTT_NODES_PASSWORD:-}"

# Mosquitto runs as its own user: it must read the password file and write its persistence.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
    chown -R mosquitto:mosquitto "$(dirname "$PASSWORD_FILE")"
fi

exec "$@"
