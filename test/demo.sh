#!/usr/bin/env bash
# The gmsa-hook demo, as root on Debian 12: a local Samba AD domain with
# gMSAs (test/setup-domain.sh), then a real runc container annotated
# credentialspec=<spec> that proves from inside that it holds a valid
# Kerberos ticket of the gMSA webapp01$, and that the ticket is gone after.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

say() { printf '\n== %s\n' "$*" >&2; }

say "test domain (Samba AD DC on 127.0.0.1; first run installs and provisions it)"
env_file=$(bash test/setup-domain.sh)
# shellcheck disable=SC1090
. "$env_file"

demo=$GMSA_TEST_DIR/demo
bin=$demo/bin
mkdir -p "$bin"
say "building gmsa-hook and the in-container probe"
CGO_ENABLED=0 go build -o "$bin/gmsa-hook" ./cmd/gmsa-hook
CGO_ENABLED=0 go build -o "$bin/probe" ./test/probe

bundle=$demo/bundle
rm -rf "$bundle"
mkdir -p "$bundle"
bash test/rootfs.sh "$bundle/rootfs" >/dev/null
cp "$bin/probe" "$bundle/rootfs/bin/probe"

# The hook's configuration: the test DC by name, and its DNS server, so
# nothing is asked of the machine's own resolver.
cat >"$demo/config.json" <<JSON
{"domain_controllers": ["$DC_HOST"], "dns_server": "127.0.0.1:53", "run_dir": "/run/gmsa-hook"}
JSON

# A plain runc bundle: the container runs as uid 1000 (app), shares the
# host's network namespace (the DC listens on the host's loopback), and
# carries the credentialspec annotation, as ECS task definitions write it.
(cd "$bundle" && runc spec)
spec=credentialspecdomainless:file://$CREDSPEC_DIR/webapp01-domainless.json
tmp=$(mktemp "$bundle/config.XXXXXX")
jq --arg spec "$spec" '
	.process.terminal = false
	| .process.user = {"uid": 1000, "gid": 1000}
	| .process.env += ["KRB5CCNAME=FILE:/var/credentials-fetcher/krbdir/krb5cc"]
	| .process.args = ["/bin/sh", "-c", "echo \"inside: $(id)\"; ls -l /var/credentials-fetcher/krbdir; /bin/probe; (echo test >/var/credentials-fetcher/krbdir/krb5cc) 2>/dev/null && echo WRITABLE || echo \"inside: the ticket is read-only\""]
	| .linux.namespaces |= map(select(.type != "network"))
	| .annotations = {"credentialspec": $spec}
' "$bundle/config.json" >"$tmp"
mv "$tmp" "$bundle/config.json"

say "gmsa-hook install --runtime runc --bundle $bundle --config $demo/config.json"
"$bin/gmsa-hook" install --runtime runc --bundle "$bundle" --config "$demo/config.json"
jq '.hooks' "$bundle/config.json"

id=gmsa-demo-$$
say "runc run $id  (annotation credentialspec=$spec)"
(cd "$bundle" && runc run "$id")

say "after the container stopped"
if compgen -G "/run/gmsa-hook/containers/$id-*" >/dev/null; then
	echo "ticket directory /run/gmsa-hook/containers/$id-* is still there" >&2
	exit 1
fi
echo "ticket directory /run/gmsa-hook/containers/$id-* is gone"

say "a container whose gMSA the reader may not read (webapp03$) does not start"
bad=credentialspecdomainless:file://$CREDSPEC_DIR/webapp03-domainless.json
tmp=$(mktemp "$bundle/config.XXXXXX")
jq --arg spec "$bad" '.annotations = {"credentialspec": $spec}' "$bundle/config.json" >"$tmp"
mv "$tmp" "$bundle/config.json"
if (cd "$bundle" && runc run "$id-denied"); then
	echo "the container started without its ticket" >&2
	exit 1
fi
compgen -G "/run/gmsa-hook/containers/$id-denied-*" >/dev/null || echo "nothing left behind for $id-denied"
