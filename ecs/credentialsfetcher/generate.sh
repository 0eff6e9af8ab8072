#!/bin/sh
# Regenerates the Go code of credentialsfetcher.proto (and of the test
# client's own copy in test/ecsagent). Needs protoc (Debian:
# protobuf-compiler) and, on PATH:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.8
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
set -eu
cd "$(dirname "$0")/../.."
for d in ecs/credentialsfetcher test/ecsagent; do
	protoc -I "$d" --go_out="$d" --go_opt=paths=source_relative \
		--go-grpc_out="$d" --go-grpc_opt=paths=source_relative \
		"$d"/credentialsfetcher.proto
done
