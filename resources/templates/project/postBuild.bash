#!/bin/bash
# Runs in the container build after apt.txt and requirements.txt are installed.
# Use it for the last steps: downloads, extensions, anything that needs the packages.
set -e
