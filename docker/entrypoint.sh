#!/bin/sh
# Container entry point for every livemig service: shape eth0 to $LINK_PROFILE
# (lan | wan | constrained | none; needs cap_add NET_ADMIN), then run the service's command.
# docker-compose.yml names this script as the services' entrypoint; the compose test runs it
# in a network namespace per service, with the repo root in place of /app.
set -eu
cd "$(dirname "$0")/.."

profile="${LINK_PROFILE:-none}"
if [ "$profile" != none ]; then
  if ! node bin/livemig.mjs lab shape --dev eth0 --profile "$profile" >&2; then
    echo "entrypoint: could not shape eth0 to LINK_PROFILE=$profile (does the container have cap_add: [NET_ADMIN]?)" >&2
    exit 1
  fi
fi

exec "$@"
