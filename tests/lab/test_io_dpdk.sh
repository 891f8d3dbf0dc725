#!/usr/bin/env bash
# Monitor mode and mqoff-bridge on --io dpdk: tests/lab/io_suite.sh.
exec bash "$(dirname "$0")/io_suite.sh" dpdk
