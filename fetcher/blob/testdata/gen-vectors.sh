#!/usr/bin/env bash
# Regenerates the gMSA key vectors in this directory with MIT Kerberos:
# for each vector, MIT ktutil derives aes256, aes128 and arcfour-hmac keys
# from the password with an explicit salt and writes them to <name>.keytab;
# OpenSSL's MD4 gives the NT hash of the raw UTF-16LE bytes; vectors.json
# records the inputs. keys_test.go reads both and compares them with Keys.
#
# Needs: MIT krb5-user 1.19 or later (ktutil addent -s), script(1) from
# util-linux (ktutil reads passwords from a terminal), openssl with the
# legacy provider (MD4), xxd, go. Passwords are random: every run makes new
# vectors. Usage: fetcher/blob/testdata/gen-vectors.sh
set -euo pipefail
cd "$(dirname "$0")"

for tool in ktutil klist script openssl xxd go; do
	command -v "$tool" >/dev/null || { echo "gen-vectors: error: $tool not found" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

realm=CORP.EXAMPLE.TEST
domain=corp.example.test

# salt computes the MS-KILE computer-account salt independently of the Go code.
salt() {
	local account=${1%\$}
	printf '%shost%s.%s' "$(tr a-z A-Z <<<"$realm")" "$(tr A-Z a-z <<<"$account")" "$(tr A-Z a-z <<<"$domain")"
}

# vector NAME ACCOUNT KVNO PASSWORD_HEX
vector() {
	local name=$1 account=$2 kvno=$3 pwhex=$4
	local s principal="$2@$realm" kt="$name.keytab"
	s=$(salt "$account")
	go run ./vectorgen utf8 "$pwhex" >"$work/pw.utf8"
	rm -f "$kt"
	{
		for enctype in aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96 arcfour-hmac; do
			printf 'addent -password -p %s -k %s -e %s -s %s\n' "$principal" "$kvno" "$enctype" "$s"
			cat "$work/pw.utf8"
			printf '\n'
		done
		printf 'wkt %s\nquit\n' "$kt"
	} | script -qec ktutil /dev/null >"$work/ktutil.log" 2>&1
	if ! klist -k -e "$kt" >/dev/null 2>&1 || [ "$(klist -k "$kt" | grep -c "$principal")" != 3 ]; then
		echo "gen-vectors: error: ktutil did not write 3 keys for $name" >&2
		cat "$work/ktutil.log" >&2
		exit 1
	fi
	local nthash
	nthash=$(xxd -r -p <<<"$pwhex" | openssl dgst -md4 -provider legacy -provider default -r | cut -d' ' -f1)
	# MIT's arcfour string-to-key re-encodes the UTF-8 text as UTF-16LE.
	local mitrc4
	mitrc4=$(klist -k -K -e "$kt" | sed -n 's/.*arcfour-hmac)  (0x\([0-9a-f]*\)).*/\1/p')
	echo "$name: salt $s, NT hash of raw bytes $nthash, ktutil arcfour $mitrc4" >&2
	entries+=("$(printf '  {"name": "%s", "account": "%s", "realm": "%s", "dns_domain": "%s", "salt": "%s", "kvno": %s, "password_utf16le_hex": "%s", "keytab": "%s", "nt_hash_raw_md4": "%s"}' \
		"$name" "$account" "$realm" "$domain" "$s" "$kvno" "$pwhex" "$kt" "$nthash")")
}

entries=()
# Random like a real gMSA password, with unpaired surrogates: U+FFFD for AES,
# and MIT's RC4 differs from the NT hash AD uses.
vector webapp02-unpaired 'WebApp02$' 2 "$(go run ./vectorgen password unpaired)"
# Random, non-ASCII, a surrogate pair and no unpaired surrogate: all agree.
vector webapp02-wellformed 'WebApp02$' 3 "$(go run ./vectorgen password wellformed)"
# ASCII, lower-case account.
vector webapp01-ascii 'webapp01$' 1 "$(go run ./vectorgen password ascii 'Passw0rd-gMSA-ascii')"

{
	echo "["
	for i in "${!entries[@]}"; do
		if [ "$i" -lt $((${#entries[@]} - 1)) ]; then echo "${entries[$i]},"; else echo "${entries[$i]}"; fi
	done
	echo "]"
} >vectors.json
echo "gen-vectors: wrote vectors.json and ${#entries[@]} keytabs with $(klist -V)" >&2
