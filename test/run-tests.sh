#!/usr/bin/env bash
# Runs every test of gmsa-hook on this machine, as root: installs what the
# tests need from Debian's archive and the Go module proxy, brings up the
# local Samba AD test domain, then runs vet, staticcheck, the unit, integration and
# end-to-end tests (real Samba DC, real runc and crun), and short fuzz runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-}"
export PATH="/usr/local/go/bin:$PATH"

echo "== test domain" >&2
bash test/setup-domain.sh >/dev/null

echo "== vet" >&2
go vet ./...

echo "== staticcheck" >&2
# Pinned: a version the module proxy serves that knows this Go.
GOBIN="$PWD/.bin" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
./.bin/staticcheck ./...

echo "== tests" >&2
# Integration tests need the DC and root; they fail (not skip) when CI is set.
# ./test runs on its own, after the rest: its tests count the packets sent
# to the DC with nftables, which other packages' tests would add to.
go test -race -count=1 -timeout 20m $(go list ./... | grep -v '/test$')
go test -race -count=1 -timeout 20m ./test

echo "== demo (README's first command)" >&2
./test/demo.sh >/dev/null 2>&1 || { ./test/demo.sh; exit 1; }
echo "demo: ok" >&2

echo "== fuzz (short)" >&2
# A count, not a duration: when -fuzztime is a duration, go test can report
# "context deadline exceeded" as a failure if a worker is still busy (seen
# here even with minimisation off).
for target in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$target"/*_test.go | sed 's/^func //'); do
		if ! out=$(go test -run='^$' -fuzz="^$f\$" -fuzztime=20000x -fuzzminimizetime=0s "$target" 2>&1); then
			echo "$out" >&2
			echo "fuzz $target $f: FAILED" >&2
			exit 1
		fi
		echo "fuzz $target $f: ok" >&2
	done
done
echo "all tests passed" >&2
