#!/usr/bin/env bash
# The test command: vet, then every test with the race detector, including
# the fuzz targets' seed corpora and the end-to-end tests (which make their
# own network namespace; they need unshare and ip).
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
go test -race -timeout 40m "$@" ./...
