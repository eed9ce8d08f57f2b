#!/bin/sh
# Entrypoint of the compose stack's Mosquitto: the password file first, then the broker.
# A file mounted at /mosquitto/secrets/passwd (mosquitto_passwd format, EDGEINSPECT_MQTT_PASSWD_FILE)
# is used as it is; otherwise one user is made from MQTT_USER and MQTT_PASSWORD. Without either the
# broker does not start: it never falls back to anonymous access.
set -eu
mkdir -p /mosquitto/auth
if [ -s /mosquitto/secrets/passwd ]; then
  cp /mosquitto/secrets/passwd /mosquitto/auth/passwd
elif [ -n "${MQTT_USER:-}" ] && [ -n "${MQTT_PASSWORD:-}" ]; then
  : >/mosquitto/auth/passwd
  mosquitto_passwd -b /mosquitto/auth/passwd "$MQTT_USER" "$MQTT_PASSWORD"
else
  echo "mosquitto: no credentials: set EDGEINSPECT_MQTT_PASSWORD (scripts/compose-secrets.sh) or mount a" \
    "password file with EDGEINSPECT_MQTT_PASSWD_FILE" >&2
  exit 1
fi
# the broker drops to the mosquitto user and reads the file as that user; nobody else may read it
chown -R mosquitto:mosquitto /mosquitto/auth /mosquitto/data 2>/dev/null || true
chmod 0700 /mosquitto/auth
chmod 0600 /mosquitto/auth/passwd
exec mosquitto -c /mosquitto/config/mosquitto.conf
