#!/bin/sh
# The Lambda image's entry point: the metric kernels' compiled cache (made at build time in
# /opt/numba-cache) copied to /tmp, the only writable place, then the base image's own entry
# point with the function's handler (image_config.command).
set -e
if [ ! -d /tmp/numba-cache ]; then
    cp -R /opt/numba-cache /tmp/numba-cache
fi
exec /lambda-entrypoint.sh "$@"
