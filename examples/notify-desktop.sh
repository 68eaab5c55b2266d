#!/bin/sh
# Show a desktop notification for each keyword kwsd detects.
#
#   kwsd listen --exec examples/notify-desktop.sh
#
# or, per keyword, in kwsd.toml:
#
#   [commands]
#   computer = "/path/to/notify-desktop.sh"
#
# kwsd listen runs this without a shell in between and passes the event in the environment:
# KWSD_KEYWORD, KWSD_CONFIDENCE, KWSD_START_S, KWSD_END_S, KWSD_SOURCE, KWSD_SEQUENCE,
# KWSD_MODEL (and KWSD_THRESHOLD, KWSD_START_SAMPLE, KWSD_END_SAMPLE, KWSD_WALL_TIME).
# Needs notify-send (Debian: libnotify-bin) and a desktop session (DISPLAY/WAYLAND_DISPLAY and
# DBUS_SESSION_BUS_ADDRESS, as a user service has them).
set -eu

if ! command -v notify-send >/dev/null 2>&1; then
    echo "notify-desktop.sh: notify-send not found (apt install libnotify-bin)" >&2
    exit 1
fi

exec notify-send --app-name=kwsd --urgency=low --expire-time=3000 \
    "Heard \"${KWSD_KEYWORD:?no KWSD_KEYWORD: run me from kwsd listen}\"" \
    "confidence ${KWSD_CONFIDENCE:-?} at ${KWSD_START_S:-?} s on ${KWSD_SOURCE:-?} (#${KWSD_SEQUENCE:-?})"
