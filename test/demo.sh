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

# The hook's configuration: the test DC by name, its DNS server (nothing is
# asked of the machine's own resolver) and its krb5.conf, whose realm makes
# the domain one the host knows. No policy: the defaults hold, so a label
# may name only credential specs in /etc/gmsa-hook/credspecs.
cat >"$demo/config.json" <<JSON
{"domain_controllers": ["$DC_HOST"], "dns_server": "127.0.0.1:53", "krb5_conf": "$KRB5_CONFIG", "run_dir": "/run/gmsa-hook"}
JSON

# The operator installs the credential specs where labels may name them,
# and the reader's secret where those specs may point (root's, mode 0600).
say "installing credential specs in /etc/gmsa-hook/credspecs, the reader secret in /etc/gmsa-hook/secrets"
install -d -m 0755 /etc/gmsa-hook /etc/gmsa-hook/credspecs
install -d -m 0700 /etc/gmsa-hook/secrets
install -m 0600 "$READER_SECRET" /etc/gmsa-hook/secrets/demo-reader.json
for gmsa in webapp01 webapp03; do
	jq '.ActiveDirectoryConfig.HostAccountConfig.PluginInput.CredentialArn = "file:///etc/gmsa-hook/secrets/demo-reader.json"' \
		"$CREDSPEC_DIR/$gmsa-domainless.json" >"/etc/gmsa-hook/credspecs/demo-$gmsa.json"
done
ls -l /etc/gmsa-hook/credspecs/demo-*.json /etc/gmsa-hook/secrets/demo-reader.json

# A plain runc bundle: the container runs as uid 1000 (app), shares the
# host's network namespace (the DC listens on the host's loopback), and
# carries the credentialspec annotation, as ECS task definitions write it.
(cd "$bundle" && runc spec)
spec=credentialspecdomainless:file://demo-webapp01.json
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

say "gmsa-hook install --renewal: the renewal timer's units (here into $demo/units: no systemd runs), and the ticket store's tmpfs"
mkdir -p "$demo/units"
"$bin/gmsa-hook" install --renewal --unit-dir "$demo/units" --config "$demo/config.json"

say "gmsa-hook install --runtime runc --bundle $bundle --config $demo/config.json"
"$bin/gmsa-hook" install --runtime runc --bundle "$bundle" --config "$demo/config.json"
jq '.hooks' "$bundle/config.json"

id=gmsa-demo-$$
say "runc run $id  (annotation credentialspec=$spec)"
(cd "$bundle" && runc run "$id")

say "gmsa-hook status: the node's cache keeps the gMSA's ticket for the next container"
"$bin/gmsa-hook" status --config "$demo/config.json"

say "after the container stopped"
if compgen -G "/run/gmsa-hook/containers/$id-*" >/dev/null; then
	echo "ticket directory /run/gmsa-hook/containers/$id-* is still there" >&2
	exit 1
fi
echo "ticket directory /run/gmsa-hook/containers/$id-* is gone"

say "a container whose gMSA the reader may not read (webapp03$) does not start"
bad=credentialspecdomainless:file://demo-webapp03.json
tmp=$(mktemp "$bundle/config.XXXXXX")
jq --arg spec "$bad" '.annotations = {"credentialspec": $spec}' "$bundle/config.json" >"$tmp"
mv "$tmp" "$bundle/config.json"
if (cd "$bundle" && runc run "$id-denied"); then
	echo "the container started without its ticket" >&2
	exit 1
fi
compgen -G "/run/gmsa-hook/containers/$id-denied-*" >/dev/null || echo "nothing left behind for $id-denied"

say "a label naming a credential spec outside /etc/gmsa-hook/credspecs (here, one in the image) is refused before anything is read"
tmp=$(mktemp "$bundle/config.XXXXXX")
jq '.annotations = {"credentialspec": "rootfs/etc/spec.json"}' "$bundle/config.json" >"$tmp"
mv "$tmp" "$bundle/config.json"
if (cd "$bundle" && runc run "$id-image"); then
	echo "the container started with a spec from its image" >&2
	exit 1
fi
"$bin/gmsa-hook" policy check --config "$demo/config.json" --credspec credentialspecdomainless:file://demo-webapp01.json
