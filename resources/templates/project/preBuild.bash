#!/bin/bash
# Runs in the container build before apt.txt and requirements.txt are installed.
# Use it for anything those steps need first: extra apt sources, system configuration.
set -e
