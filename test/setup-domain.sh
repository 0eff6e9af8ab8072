#!/usr/bin/env bash
# setup-domain.sh - make a real Samba AD domain controller on 127.0.0.1 ready for
# the gmsa-hook integration tests (realm CORP.EXAMPLE.TEST, gMSAs webapp01..04).
#
# Idempotent: every step checks the current state first and only changes what is
# missing or wrong, so a re-run after a partial failure converges, and a run
# against a DC that is already up and correct takes well under a second (no
# samba-tool call at all then: samba-tool is Python and costs ~0.5 s per call).
#
# Progress goes to stderr; the only line on stdout is the path of domain.env.
# Usage: test/setup-domain.sh            (state in ${GMSA_TEST_DIR:-/var/lib/gmsa-hook-test})
#
# Speed note: a fork+exec costs 5-100 ms on our (busy) test machines and a warm
# run makes about a hundred small checks, so those use bash builtins (no $(...),
# grep, sed, base64 in loops); only the real probes (ldapsearch, kinit, host)
# are separate processes.
set -euo pipefail
umask 022

STATE=${GMSA_TEST_DIR:-/var/lib/gmsa-hook-test}
[[ $STATE == /* ]] || STATE=$PWD/$STATE # absolute: it ends up in file:// URLs
STATE=${STATE%/}
SAMBA_DIR=$STATE/samba
SMB_CONF=$SAMBA_DIR/etc/smb.conf
PROVISIONED_MARK=$SAMBA_DIR/.provisioned
PID_FILE=$STATE/samba.pid
LOG_FILE=$STATE/samba.log

REALM=CORP.EXAMPLE.TEST
DOMAIN_DNS=corp.example.test
NETBIOS=CORP
BASE_DN=DC=corp,DC=example,DC=test
DC_NAME=dc1
DC_HOST=dc1.corp.example.test
DC_ADDR=127.0.0.1
ADMIN_PASSWORD='Adm1n-Test-Passw0rd!'
READER_USER=gmsa-reader
READER_PASSWORD=Reader-Test-Passw0rd1
OUTSIDER_USER=gmsa-outsider
OUTSIDER_PASSWORD=Outsider-Test-Passw0rd1
WRONG_PASSWORD=Wrong-Test-Passw0rd1
GROUP=WebAppGmsaPrincipals
GROUP_DN=CN=$GROUP,CN=Users,$BASE_DN
HOST_ACCOUNT=gmsahost
HOST_PRINCIPAL="gmsahost\$@$REALM"
HOST_KEYTAB=$STATE/host.keytab
KRB5_CONF=$STATE/krb5.conf
READER_CCACHE=$STATE/.reader.ccache
CREDSPEC_DIR=$STATE/credspecs

# gMSAs: sAMAccountName (without $) | enabled | readable by $GROUP
GMSAS=(
	"webapp01|yes|yes"
	"WebApp02|yes|yes"
	"webapp03|yes|no"
	"webapp04|no|yes"
)

# userAccountControl bits
UF_ACCOUNTDISABLE=0x2
UF_DONT_EXPIRE_PASSWD=0x10000

log() { printf 'setup-domain: %s\n' "$*" >&2; }
die() { printf 'setup-domain: ERROR: %s\n' "$*" >&2; exit 1; }

# The caller's Kerberos/LDAP environment must not leak into our checks.
unset KRB5CCNAME KRB5_KTNAME LDAPCONF LDAPRC
export KRB5_CONFIG=$KRB5_CONF
# OpenLDAP tools canonicalise the SASL host name by REVERSE DNS of the peer
# address: 127.0.0.1 -> "localhost" -> service ldap/localhost, which does not
# exist. Use the host name from the URI as is (same as ldapsearch -N).
export LDAPSASL_NOCANON=on
# Samba's LDAPS certificate is self-signed and generated at first start.
export LDAPTLS_REQCERT=never

# ---------------------------------------------------------------- packages

BACKPORTS_SOURCE=/etc/apt/sources.list.d/backports.sources
APT_PACKAGES_BPO=(samba samba-ad-dc winbind krb5-user ldap-utils libsasl2-modules-gssapi-mit)
APT_PACKAGES=(runc crun busybox-static jq openssl containerd docker.io podman iproute2 nftables systemd)

ensure_backports_source() {
	[[ -e $BACKPORTS_SOURCE ]] && return 0
	# A second definition of the same suite with another Signed-By is a hard apt
	# error, so only add ours when no other source already names the suite.
	if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		return 0
	fi
	log "adding apt source $BACKPORTS_SOURCE"
	cat >"$BACKPORTS_SOURCE" <<-'EOF'
		Types: deb
		URIs: http://deb.debian.org/debian
		Suites: bookworm-backports
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
}

packages_missing() {
	# Bookworm's own Samba (4.17) has no gMSA support: we need 4.2x from backports.
	local version pkg lists
	version=$(samba --version 2>/dev/null) || return 0
	[[ $version =~ ^Version\ 4\.2[0-9]\. ]] || return 0
	# dpkg keeps /var/lib/dpkg/info/<package>[:<arch>].list exactly while the
	# package is installed (a file test instead of a dpkg-query process)
	for pkg in "${APT_PACKAGES_BPO[@]}" "${APT_PACKAGES[@]}"; do
		lists=(/var/lib/dpkg/info/"$pkg".list /var/lib/dpkg/info/"$pkg":*.list)
		[[ -e ${lists[0]} || -e ${lists[1]} ]] || return 0
	done
	return 1
}

ensure_packages() {
	ensure_backports_source
	packages_missing || return 0
	log "installing packages (samba from bookworm-backports, runc, crun, containerd, docker.io, podman, busybox-static)"
	# Without systemd, the package scripts would start the stock smbd/nmbd/
	# samba-ad-dc from /etc/init.d, which grab ports 445/139/53 that our DC needs.
	# A policy-rc.d that says "101 = action forbidden" stops that.
	local policy=/usr/sbin/policy-rc.d ours=
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		ours=1
	fi
	local rc=0
	{
		apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports "${APT_PACKAGES_BPO[@]}" &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${APT_PACKAGES[@]}"
	} >&2 || rc=$?
	[[ -n $ours ]] && rm -f "$policy"
	[[ $rc -eq 0 ]] || die "apt-get failed (exit $rc)"
	packages_missing && die "packages still missing after apt-get install"
	return 0
}

# ---------------------------------------------------------------- host files

ensure_hosts_entry() {
	# The LDAP service principal is ldap/dc1.corp.example.test: clients must be
	# able to resolve that name, and the system resolver does not ask Samba's DNS.
	local addr names
	while read -r addr names; do
		[[ $addr == "$DC_ADDR" && " ${names//$'\t'/ } " == *" $DC_HOST "* ]] && return 0
	done </etc/hosts
	log "adding '$DC_ADDR $DC_HOST $DC_NAME' to /etc/hosts"
	# append in place: /etc/hosts may be a bind mount, so no rename
	printf '%s %s %s\n' "$DC_ADDR" "$DC_HOST" "$DC_NAME" >>/etc/hosts
}

# write_file PATH [secret]: content from stdin. The file is only replaced when
# its content differs, and then atomically (rename), so a test reading it never
# sees a half-written file. Secrets are created 0600 from the start. (Modes of
# existing files are enforced by one chmod at the end: see fix_modes.)
write_file() {
	local path=$1 secret=${2:-} new= old=
	IFS= read -r -d '' new || true
	if [[ -f $path ]]; then
		IFS= read -r -d '' old <"$path" || true
		[[ $old == "$new" ]] && return 0
	fi
	[[ -n $secret ]] && umask 077
	printf '%s' "$new" >"$path.tmp.$$"
	umask 022
	mv -f "$path.tmp.$$" "$path"
}

write_krb5_conf() {
	write_file "$KRB5_CONF" <<-EOF
		[libdefaults]
		    default_realm = $REALM
		    dns_lookup_kdc = false
		    dns_lookup_realm = false
		    rdns = false

		[realms]
		    $REALM = {
		        kdc = $DC_ADDR
		        admin_server = $DC_ADDR
		    }

		[domain_realm]
		    .$DOMAIN_DNS = $REALM
		    $DOMAIN_DNS = $REALM
	EOF
}

# ---------------------------------------------------------------- provision

# Settings our smb.conf must have. Everything that Samba would otherwise put
# under /run/samba or /var/lib/samba is kept inside the state dir: /run/samba
# does not exist without the init scripts (nbtd then fails and takes the whole
# DC down), and we must not collide with a stock Samba.
smbconf_settings() {
	cat <<-EOF
		interfaces=lo
		bind interfaces only=yes
		dns forwarder=
		log file=$LOG_FILE
		pid directory=$SAMBA_DIR/run
		ncalrpc dir=$SAMBA_DIR/run/ncalrpc
		winbindd socket directory=$SAMBA_DIR/run/winbindd
		nmbd:socket dir=$SAMBA_DIR/run/nmbd
		ntp signd socket directory=$SAMBA_DIR/run/ntp_signd
		tls enabled=yes
		tls keyfile=$TLS_DIR/dc.key
		tls certfile=$TLS_DIR/dc.pem
		tls cafile=$TLS_DIR/ca.pem
	EOF
}

# Samba's own self-signed certificate names the DC only in its Common Name,
# which Go (like current browsers) refuses; real AD certificates carry a
# subjectAltName. Make a test CA and a DC certificate with one.
TLS_DIR=$STATE/tls
ensure_tls() {
	[[ -s $TLS_DIR/dc.pem && -s $TLS_DIR/dc.key && -s $TLS_DIR/ca.pem ]] && return 0
	log "making a test CA and a certificate for $DC_HOST"
	mkdir -p "$TLS_DIR"
	chmod 0700 "$TLS_DIR"
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=gmsa-hook test CA" \
		-keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$DC_HOST" \
		-keyout "$TLS_DIR/dc.key" -out "$TLS_DIR/dc.csr" 2>/dev/null
	openssl x509 -req -in "$TLS_DIR/dc.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
		-CAcreateserial -days 3650 -out "$TLS_DIR/dc.pem" \
		-extfile <(printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$DC_HOST") 2>/dev/null
	chmod 0600 "$TLS_DIR/dc.key" "$TLS_DIR/ca.key"
	chmod 0644 "$TLS_DIR/ca.pem" "$TLS_DIR/dc.pem"
	rm -f "$TLS_DIR/dc.csr"
	SMBCONF_CHANGED=1
}

ensure_provisioned() {
	if [[ ! -e $PROVISIONED_MARK ]]; then
		if [[ -e $SAMBA_DIR ]]; then
			log "removing a partial provision in $SAMBA_DIR"
			stop_samba
			rm -rf "$SAMBA_DIR"
		fi
		log "provisioning domain $REALM in $SAMBA_DIR (~6 s)"
		local opts=() kv
		while IFS= read -r kv; do opts+=("--option=$kv"); done < <(smbconf_settings)
		# -s /dev/null: otherwise provision copies the settings of the host's
		# /etc/samba/smb.conf (standalone server, [homes], [printers]) into ours.
		# "dns forwarder=" empty: otherwise provision copies the nameserver from
		# /etc/resolv.conf; empty = the internal DNS never forwards a query.
		samba-tool domain provision -s /dev/null \
			--realm="$REALM" --domain="$NETBIOS" --server-role=dc \
			--dns-backend=SAMBA_INTERNAL --adminpass="$ADMIN_PASSWORD" \
			--targetdir="$SAMBA_DIR" --host-ip="$DC_ADDR" --host-name="$DC_NAME" \
			"${opts[@]}" >"$STATE/provision.log" 2>&1 ||
			die "samba-tool domain provision failed, see $STATE/provision.log"
		touch "$PROVISIONED_MARK"
	fi
	mkdir -p "$SAMBA_DIR/run" "$SAMBA_DIR/cache"
	ensure_tls
	ensure_smbconf
}

# Make sure each setting of smbconf_settings is in [global] with exactly that
# value (a re-run with an older smb.conf converges). Sets SMBCONF_CHANGED=1.
SMBCONF_CHANGED=
ensure_smbconf() {
	local kv key val conf
	IFS= read -r -d '' conf <"$SMB_CONF" || true
	# provision writes booleans as "Yes": compare case-insensitively
	conf=$'\n'${conf,,}$'\n'
	while IFS= read -r kv; do
		key=${kv%%=*} val=${kv#*=}
		[[ $conf == *$'\n'"	${key,,} = ${val,,}"$'\n'* ]] && continue
		log "smb.conf: setting '$key = $val'"
		# drop any other value of the key, then add ours right after [global]
		sed -i -e "/^[[:space:]]*${key//\//\\/}[[:space:]]*=/d" \
			-e "/^\[global\]/a \\	$key = $val" "$SMB_CONF"
		SMBCONF_CHANGED=1
	done < <(smbconf_settings)
	# The only "dns forwarder" line left must be the empty one.
	IFS= read -r -d '' conf <"$SMB_CONF" || true
	if [[ $conf =~ (^|$'\n')[[:blank:]]*dns\ forwarder[[:blank:]]*=[[:blank:]]*[^[:space:]] ]]; then
		die "smb.conf still has a DNS forwarder"
	fi
}

# ---------------------------------------------------------------- samba daemon

# PID of our running samba root process, or nothing.
samba_pid() {
	local pid f
	for f in "$PID_FILE" "$SAMBA_DIR/run/samba.pid"; do
		[[ -r $f ]] || continue
		read -r pid <"$f" || continue
		[[ $pid =~ ^[0-9]+$ ]] || continue
		# must be alive AND still be samba (a recycled PID is a stale file)
		local comm=
		read -r comm 2>/dev/null <"/proc/$pid/comm" || continue
		if [[ $comm == samba ]]; then
			echo "$pid"
			return 0
		fi
	done
	return 0
}

stop_samba() {
	local pid i
	pid=$(samba_pid)
	[[ -n $pid ]] || return 0
	log "stopping samba (pid $pid)"
	kill "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && die "samba pid $pid does not stop"
	rm -f "$PID_FILE"
}

tcp_open() { (exec 3<>"/dev/tcp/$DC_ADDR/$1") 2>/dev/null; }

ldap_ready() {
	local out
	tcp_open 88 && tcp_open 389 &&
		out=$(ldapsearch -x -LLL -o nettimeout=2 -H "ldap://$DC_ADDR" -s base -b '' defaultNamingContext 2>/dev/null) &&
		[[ ${out,,} == *"defaultnamingcontext: ${BASE_DN,,}"* ]]
}

ensure_running() {
	local pid
	pid=$(samba_pid)
	if [[ -n $pid && -n $SMBCONF_CHANGED ]]; then
		log "restarting samba for the smb.conf change"
		stop_samba
		pid=
	fi
	local started=
	if [[ -z $pid ]]; then
		rm -f "$PID_FILE" "$SAMBA_DIR/run/samba.pid"
		started=$SECONDS
		log "starting samba (log: $LOG_FILE)"
		# Daemon mode (forks, setsid). stdio to the log so the caller's pipes are
		# not held open by the DC, fd 9 (our lock) closed so the DC does not keep
		# it, and a clean environment so the caller's KRB5_*/LD_* don't leak in.
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
			samba -s "$SMB_CONF" </dev/null >>"$LOG_FILE" 2>&1 9>&- ||
			die "samba failed to start, see $LOG_FILE"
	fi
	local deadline=$((SECONDS + 30))
	until pid=$(samba_pid) && [[ -n $pid ]] && ldap_ready; do
		# a DC that exits early (e.g. a service failing to start) is not waited for
		if [[ -n $started && -z $pid ]] && ((SECONDS - started >= 5)); then
			tail -n 20 "$LOG_FILE" >&2 || true
			die "samba exited during startup, see $LOG_FILE"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 20 "$LOG_FILE" >&2 || true
			die "samba did not answer on $DC_ADDR:88/389 within 30 s (pid '${pid:-none}'), see $LOG_FILE"
		fi
		sleep 0.1
	done
	local recorded=
	[[ -r $PID_FILE ]] && read -r recorded <"$PID_FILE"
	[[ $recorded == "$pid" ]] || echo "$pid" >"$PID_FILE"
	SAMBA_PID=$pid
}

# ---------------------------------------------------------------- directory objects

samba_tool() {
	# samba-tool prints a warning about passwords on the command line on every
	# call: keep its output quiet unless it fails.
	local out url=(-H "ldap://$DC_ADDR")
	[[ $1 == dns ]] && url=() # the dns commands take the server as an argument
	if ! out=$(samba-tool "$@" -s "$SMB_CONF" "${url[@]}" \
		-U Administrator --password="$ADMIN_PASSWORD" 2>&1); then
		printf '%s\n' "$out" >&2
		die "samba-tool $1 $2 failed"
	fi
}

# Search as Administrator over LDAPS (a simple bind needs TLS on Samba).
admin_search() {
	ldapsearch -x -LLL -o ldif-wrap=no -o nettimeout=5 -H "ldaps://$DC_ADDR" \
		-D "Administrator@$DOMAIN_DNS" -w "$ADMIN_PASSWORD" "$@"
}

admin_modify() {
	ldapmodify -x -o nettimeout=5 -H "ldaps://$DC_ADDR" \
		-D "Administrator@$DOMAIN_DNS" -w "$ADMIN_PASSWORD" >/dev/null
}

# b64hex BASE64: sets HEX=" xx xx xx ..." (a space before every byte, so that a
# substring match is always aligned on a byte boundary). Pure bash: see the
# speed note at the top.
B64_ALPHABET=ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/
declare -A B64_VALUE
for ((i = 0; i < 64; i++)); do B64_VALUE[${B64_ALPHABET:i:1}]=$i; done
b64hex() {
	local s=${1%%=*} acc=0 bits=0 i
	HEX=
	for ((i = 0; i < ${#s}; i++)); do
		acc=$((((acc << 6) | ${B64_VALUE[${s:i:1}]}) & 0xffff))
		bits=$((bits + 6))
		if ((bits >= 8)); then
			bits=$((bits - 8))
			printf -v HEX '%s %02x' "$HEX" $(((acc >> bits) & 0xff))
		fi
	done
}

declare -A OBJ # "<lowercased sAMAccountName>|<attribute>" -> value(s), one a line
REC=()
flush_record() {
	local l name= a v
	for l in "${REC[@]}"; do
		[[ $l == 'sAMAccountName: '* ]] && name=${l#sAMAccountName: }
		[[ ${l,,} == "dn: ${BASE_DN,,}" ]] && name=@domain # the domain object itself
	done
	if [[ -n $name ]]; then
		name=${name,,}
		for l in "${REC[@]}"; do
			[[ $l =~ ^([A-Za-z0-9-]+)::?\ (.*)$ ]] || continue
			a=${BASH_REMATCH[1]} v=${BASH_REMATCH[2]}
			OBJ[$name|$a]+=${OBJ[$name|$a]:+$'\n'}$v
		done
		# binary attributes, in hex once here (compared many times)
		b64hex "${OBJ[$name|objectSid]:-}"
		OBJ[$name|sidhex]=$HEX
		b64hex "${OBJ[$name|msDS-GroupMSAMembership]:-}"
		OBJ[$name|sdhex]=$HEX
	fi
	REC=()
}

LOAD_ATTRS="dn sAMAccountName userAccountControl memberOf dNSHostName objectSid
	msDS-GroupMSAMembership objectGUID lockoutThreshold"

# Loads the accounts we manage and the domain object (key @domain) into OBJ.
load_objects() {
	OBJ=()
	local filter="(|(objectClass=domainDNS)(sAMAccountName=$READER_USER)(sAMAccountName=$OUTSIDER_USER)(sAMAccountName=$GROUP)(sAMAccountName=$HOST_ACCOUNT\$)"
	local g
	for g in "${GMSAS[@]}"; do filter+="(sAMAccountName=${g%%|*}\$)"; done
	filter+=")"
	local ldif line rc=0 err=$STATE/.ldapsearch.err
	ldif=$(admin_search -b "$BASE_DN" "$filter" $LOAD_ATTRS 2>"$err") || rc=$?
	if [[ $rc -eq 49 ]]; then
		# wrong Administrator password: reset it through the local database
		log "resetting the Administrator password (local sam.ldb)"
		samba-tool user setpassword Administrator --newpassword="$ADMIN_PASSWORD" \
			-s "$SMB_CONF" -H "$SAMBA_DIR/private/sam.ldb" >/dev/null 2>&1 ||
			die "cannot reset the Administrator password"
		rc=0
		ldif=$(admin_search -b "$BASE_DN" "$filter" $LOAD_ATTRS 2>"$err") || rc=$?
	fi
	[[ $rc -eq 0 ]] || die "LDAPS search as Administrator failed ($rc): $(<"$err")"
	while IFS= read -r line; do
		if [[ -z $line ]]; then
			flush_record
		elif [[ $line != '#'* ]]; then
			REC+=("$line")
		fi
	done <<<"$ldif"
	flush_record
}

# Accessors for the loaded objects (account names are case-insensitive).
has() { [[ -n ${OBJ[${1,,}|sAMAccountName]:-} ]]; }
attr() { REPLY=${OBJ[${1,,}|$2]:-}; } # sets REPLY
uac_has() { attr "$1" userAccountControl && (((${REPLY:-0} & $2) != 0)); }
member_of_group() {
	attr "$1" memberOf
	REPLY=$'\n'${REPLY,,}$'\n'
	[[ $REPLY == *$'\n'"${GROUP_DN,,}"$'\n'* ]]
}
# is the SID of account $2 in the msDS-GroupMSAMembership of gMSA $1?
sd_grants() {
	local sid=${OBJ[${2,,}|sidhex]:-}
	[[ -n $sid && ${OBJ[${1,,}|sdhex]:-} == *"$sid"* ]]
}

kinit_password() { # user password [ccache]
	printf '%s\n' "$2" | KRB5CCNAME=${3:-MEMORY:} kinit "$1@$REALM" >/dev/null 2>&1
}

# One pass over the wanted state: fix what is wrong, count the fixes in CHANGES.
# In "verify" mode nothing is changed and the problems are listed in PROBLEMS.
CHANGES=0
PROBLEMS=()
need() { # description command...
	local what=$1
	shift
	if [[ $MODE == verify ]]; then
		PROBLEMS+=("$what")
	else
		log "$what"
		"$@"
		CHANGES=$((CHANGES + 1))
	fi
}

reconcile_user() { # name password in-group(yes/no)
	local u=$1 pw=$2 ingroup=$3
	if ! has "$u"; then
		need "creating user $u" samba_tool user add "$u" "$pw"
		return
	fi
	if uac_has "$u" $UF_ACCOUNTDISABLE; then need "enabling user $u" samba_tool user enable "$u"; fi
	# test passwords must not expire 42 days after the first run
	if ! uac_has "$u" $UF_DONT_EXPIRE_PASSWD; then
		need "setting no expiry on user $u" samba_tool user setexpiry "$u" --noexpiry
	fi
	# the reader's ticket is kept for check_gmsa_read
	local cc=MEMORY:
	[[ $u == "$READER_USER" ]] && cc=FILE:$READER_CCACHE
	if ! kinit_password "$u" "$pw" "$cc"; then
		need "resetting the password of user $u" samba_tool user setpassword "$u" --newpassword="$pw"
	fi
	if [[ $ingroup == yes ]] && ! member_of_group "$u"; then
		need "adding $u to $GROUP" samba_tool group addmembers "$GROUP" "$u"
	elif [[ $ingroup == no ]] && member_of_group "$u"; then
		need "removing $u from $GROUP" samba_tool group removemembers "$GROUP" "$u"
	fi
}

create_host_account() {
	# --prepare-oldjoin makes the account enabled with a known password; we then
	# replace that with a random one: the keytab is the only way in.
	samba_tool computer add "$HOST_ACCOUNT" --prepare-oldjoin \
		--service-principal-name="HOST/$HOST_ACCOUNT.$DOMAIN_DNS" \
		--service-principal-name="HOST/$HOST_ACCOUNT"
	samba_tool user setpassword "$HOST_ACCOUNT\$" --random-password
}

set_dns_host_name() { # account-with-$ value
	attr "$1" dn
	printf 'dn: %s\nchangetype: modify\nreplace: dNSHostName\ndNSHostName: %s\n' \
		"$REPLY" "$2" | admin_modify
}

set_sam_account_name() { # current new
	attr "$1" dn
	printf 'dn: %s\nchangetype: modify\nreplace: sAMAccountName\nsAMAccountName: %s\n' \
		"$REPLY" "$2" | admin_modify
}

reconcile_objects() {
	MODE=$1
	load_objects
	# The tests use wrong passwords on purpose: they must never lock an account.
	if [[ ${OBJ[@domain|lockoutThreshold]:-0} != 0 ]]; then
		need "disabling account lockout" samba_tool domain passwordsettings set --account-lockout-threshold=0
	fi
	if ! has "$GROUP"; then
		need "creating group $GROUP" samba_tool group add "$GROUP"
	fi
	reconcile_user "$READER_USER" "$READER_PASSWORD" yes
	reconcile_user "$OUTSIDER_USER" "$OUTSIDER_PASSWORD" no

	local h="$HOST_ACCOUNT\$"
	if ! has "$h"; then
		need "creating computer account $HOST_ACCOUNT" create_host_account
	else
		if uac_has "$h" $UF_ACCOUNTDISABLE; then need "enabling $h" samba_tool user enable "$h"; fi
		attr "$h" dNSHostName
		if [[ $REPLY != "$HOST_ACCOUNT.$DOMAIN_DNS" ]]; then
			need "setting dNSHostName of $h" set_dns_host_name "$h" "$HOST_ACCOUNT.$DOMAIN_DNS"
		fi
		if ! member_of_group "$h"; then
			need "adding $h to $GROUP" samba_tool group addmembers "$GROUP" "$h"
		fi
	fi

	local g name enabled readable sam p
	for g in "${GMSAS[@]}"; do
		IFS='|' read -r name enabled readable <<<"$g"
		sam="$name\$"
		if ! has "$sam"; then
			need "creating gMSA $sam" samba_tool service-account create \
				--name="$name" --dns-host-name="${name,,}.$DOMAIN_DNS"
			continue
		fi
		# sAMAccountName lookups are case-insensitive, our tests are not
		attr "$sam" sAMAccountName
		if [[ $REPLY != "$sam" ]]; then
			need "renaming $REPLY to $sam" set_sam_account_name "$sam" "$sam"
		fi
		attr "$sam" dNSHostName
		if [[ $REPLY != "${name,,}.$DOMAIN_DNS" ]]; then
			need "setting dNSHostName of $sam" set_dns_host_name "$sam" "${name,,}.$DOMAIN_DNS"
		fi
		# gMSAs are created disabled (UAC 4130): "credentials have been revoked"
		if [[ $enabled == yes ]] && uac_has "$sam" $UF_ACCOUNTDISABLE; then
			need "enabling $sam" samba_tool user enable "$sam"
		elif [[ $enabled == no ]] && ! uac_has "$sam" $UF_ACCOUNTDISABLE; then
			need "disabling $sam" samba_tool user disable "$sam"
		fi
		if [[ $readable == yes ]]; then
			if has "$GROUP" && ! sd_grants "$sam" "$GROUP"; then
				# takes the group's DN, not its name
				need "letting $GROUP read the password of $sam" samba_tool service-account \
					group-msa-membership add --name="$name" --principal="$GROUP_DN"
			fi
		fi
		# nobody we have may read it unless wanted; the outsider never
		for p in "$GROUP" "$READER_USER" "$OUTSIDER_USER" "$HOST_ACCOUNT\$"; do
			[[ $readable == yes && $p == "$GROUP" ]] && continue
			if has "$p" && sd_grants "$sam" "$p"; then
				attr "$p" dn
				need "revoking $p's right to read the password of $sam" samba_tool service-account \
					group-msa-membership remove --name="$name" --principal="$REPLY"
			fi
		done
	done
}

ensure_objects() {
	local pass
	# Objects created in one pass are checked in detail by the next one.
	for pass in 1 2 3 4; do
		CHANGES=0
		reconcile_objects fix
		((CHANGES == 0)) && return 0 # this pass found everything right
	done
	PROBLEMS=()
	reconcile_objects verify
	((${#PROBLEMS[@]} == 0)) || die "directory does not converge: ${PROBLEMS[*]}"
}

# sid_string HEX (of a binary SID): sets REPLY to "S-1-5-21-...".
# Layout: revision, sub-authority count, 6-byte big-endian identifier authority,
# then the sub-authorities as 4-byte little-endian numbers.
sid_string() {
	local -a b
	read -ra b <<<"$1"
	local i j n=$((16#${b[1]})) auth=0
	for ((i = 2; i < 8; i++)); do auth=$(((auth << 8) | 16#${b[i]})); done
	REPLY="S-$((16#${b[0]}))-$auth"
	for ((i = 0; i < n; i++)); do
		j=$((8 + 4 * i))
		REPLY+=-$((16#${b[j + 3]}${b[j + 2]}${b[j + 1]}${b[j]}))
	done
}

# guid_string HEX (of a binary GUID): sets REPLY to the usual string form; the
# first three fields are stored little-endian.
guid_string() {
	local -a b
	read -ra b <<<"$1"
	REPLY=${b[3]}${b[2]}${b[1]}${b[0]}-${b[5]}${b[4]}-${b[7]}${b[6]}-${b[8]}${b[9]}-${b[10]}${b[11]}${b[12]}${b[13]}${b[14]}${b[15]}
}

# The domain SID and GUID for the credspecs (from the last load_objects).
domain_ids() {
	[[ -n ${OBJ[@domain|sidhex]:-} && -n ${OBJ[@domain|objectGUID]:-} ]] ||
		die "cannot read the SID and GUID of $BASE_DN"
	sid_string "${OBJ[@domain|sidhex]}"
	DOMAIN_SID=$REPLY
	b64hex "${OBJ[@domain|objectGUID]}"
	guid_string "$HEX"
	DOMAIN_GUID=$REPLY
}

# The DC's own A record: provision skips loopback addresses, so the SRV records
# point at dc1.corp.example.test but Samba's DNS would answer NXDOMAIN for it.
# Checked with `host` (bind9-host) when present, else in the directory.
ensure_dns() {
	local out have_host=
	command -v host >/dev/null && have_host=1
	if [[ -n $have_host ]]; then
		out=$(host -W 2 -t A "$DC_HOST" "$DC_ADDR" 2>&1) || true
		[[ $out == *"has address $DC_ADDR"* ]] && out=ok
	else
		out=$(admin_search -b "DC=$DC_NAME,DC=$DOMAIN_DNS,CN=MicrosoftDNS,DC=DomainDnsZones,$BASE_DN" \
			-s base '(!(dNSTombstoned=TRUE))' dn 2>/dev/null) || true
		[[ $out == *"dn: "* ]] && out=ok
	fi
	if [[ $out != ok ]]; then
		log "adding DNS A record $DC_HOST -> $DC_ADDR"
		samba_tool dns add "$DC_ADDR" "$DOMAIN_DNS" "$DC_NAME" A "$DC_ADDR"
		if [[ -n $have_host ]]; then
			out=$(host -W 2 -t A "$DC_HOST" "$DC_ADDR" 2>&1) || true
			[[ $out == *"has address $DC_ADDR"* ]] || die "Samba DNS on $DC_ADDR does not resolve $DC_HOST: $out"
		fi
	fi
	[[ -n $have_host ]] || return 0
	out=$(host -W 2 -t SRV "_kerberos._tcp.$DOMAIN_DNS" "$DC_ADDR" 2>&1) || true
	[[ $out == *"has SRV record 0 100 88 $DC_HOST."* ]] ||
		die "Samba DNS on $DC_ADDR does not serve _kerberos._tcp.$DOMAIN_DNS: $out"
}

ensure_keytab() {
	if [[ -s $HOST_KEYTAB ]] && KRB5CCNAME=MEMORY: kinit -k -t "$HOST_KEYTAB" "$HOST_PRINCIPAL" >/dev/null 2>&1; then
		return 0
	fi
	log "exporting the keys of $HOST_PRINCIPAL to $HOST_KEYTAB"
	local tmp=$HOST_KEYTAB.new
	rm -f "$tmp"
	# Local sam.ldb access (as root). Only the current kvno: the keytab holds
	# exactly the principal gmsahost$@CORP.EXAMPLE.TEST, so kinit -k picks it.
	(umask 077 && samba-tool domain exportkeytab "$tmp" --principal="$HOST_ACCOUNT\$" \
		--only-current-keys -s "$SMB_CONF" >/dev/null 2>&1) || die "samba-tool domain exportkeytab failed"
	mv -f "$tmp" "$HOST_KEYTAB"
	KRB5CCNAME=MEMORY: kinit -k -t "$HOST_KEYTAB" "$HOST_PRINCIPAL" >/dev/null 2>&1 ||
		die "kinit -k with $HOST_KEYTAB fails"
}

# End to end, what the hook does: with the reader's ticket (from reconcile_user)
# read managed passwords over a sealed SASL/GSSAPI LDAP connection. webapp01
# must come with its password, webapp03 without.
check_gmsa_read() {
	local out rc=0 err=$STATE/.ldapsearch.err
	out=$(KRB5CCNAME=FILE:$READER_CCACHE ldapsearch -Q -LLL -o ldif-wrap=no -o nettimeout=5 \
		-Y GSSAPI -H "ldap://$DC_HOST" -b "$BASE_DN" \
		'(|(sAMAccountName=webapp01$)(sAMAccountName=webapp03$))' sAMAccountName msDS-ManagedPassword 2>"$err") || rc=$?
	rm -f "$READER_CCACHE"
	((rc == 0)) || die "GSSAPI LDAP search as $READER_USER failed ($rc): $(<"$err")"
	# per entry (attribute order is not fixed): "<name> yes|no"
	local line name= pw=no seen=" "
	while IFS= read -r line; do
		case $line in
		'sAMAccountName: '*) name=${line#sAMAccountName: } ;;
		'msDS-ManagedPassword:: '*) pw=yes ;;
		'') [[ -n $name ]] && seen+="$name=$pw " && name= pw=no ;;
		esac
	done <<<"$out"$'\n'
	[[ $seen == *" webapp01\$=yes "* && $seen == *" webapp03\$=no "* ]] ||
		die "unexpected gMSA password visibility for $READER_USER:$seen"
}

# ---------------------------------------------------------------- files for the tests

write_secret() { # file user password
	write_file "$1" secret <<-EOF
		{"username":"$2","password":"$3","domainName":"$DOMAIN_DNS"}
	EOF
}

write_credspec() { # file gmsa-name [secret-file]
	local file=$1 name=$2 secret=${3:-} host=
	# domainless: the host account comes from the secret, through the CCG plugin
	# that ECS/credentials-fetcher use (PluginInput.CredentialArn)
	[[ -n $secret ]] && host=",
	    \"HostAccountConfig\": {
	      \"PortableCcgVersion\": \"1\",
	      \"PluginGUID\": \"{859E1386-BDB4-49E8-85C7-3070B13920E1}\",
	      \"PluginInput\": {
	        \"CredentialArn\": \"file://$secret\"
	      }
	    }"
	host=${host//$'\n\t'/$'\n'}
	write_file "$file" <<-EOF
		{
		  "CmsPlugins": ["ActiveDirectory"],
		  "DomainJoinConfig": {
		    "Sid": "$DOMAIN_SID",
		    "MachineAccountName": "$name",
		    "Guid": "$DOMAIN_GUID",
		    "DnsTreeName": "$DOMAIN_DNS",
		    "DnsName": "$DOMAIN_DNS",
		    "NetBiosName": "$NETBIOS"
		  },
		  "ActiveDirectoryConfig": {
		    "GroupManagedServiceAccounts": [
		      {"Name": "$name", "Scope": "$DOMAIN_DNS"},
		      {"Name": "$name", "Scope": "$NETBIOS"}
		    ]$host
		  }
		}
	EOF
}

SECRET_FILES=("$STATE/reader-secret.json" "$STATE/outsider-secret.json" "$STATE/wrong-secret.json")

write_test_files() {
	write_secret "${SECRET_FILES[0]}" "$READER_USER" "$READER_PASSWORD"
	write_secret "${SECRET_FILES[1]}" "$OUTSIDER_USER" "$OUTSIDER_PASSWORD"
	write_secret "${SECRET_FILES[2]}" "$READER_USER" "$WRONG_PASSWORD"

	[[ -d $CREDSPEC_DIR ]] || mkdir "$CREDSPEC_DIR"
	local g name file
	for g in "${GMSAS[@]}"; do
		name=${g%%|*}
		file=$CREDSPEC_DIR/${name,,}
		write_credspec "$file.json" "$name"
		write_credspec "$file-domainless.json" "$name" "${SECRET_FILES[0]}"
	done
	write_credspec "$CREDSPEC_DIR/webapp01-outsider.json" webapp01 "${SECRET_FILES[1]}"
	write_credspec "$CREDSPEC_DIR/webapp01-wrongpw.json" webapp01 "${SECRET_FILES[2]}"

	# shell-style, every value single-quoted (no value contains a quote)
	write_file "$STATE/domain.env" <<-EOF
		GMSA_TEST_DIR='$STATE'
		REALM='$REALM'
		DOMAIN_DNS='$DOMAIN_DNS'
		DOMAIN_NETBIOS='$NETBIOS'
		DOMAIN_SID='$DOMAIN_SID'
		DOMAIN_GUID='$DOMAIN_GUID'
		BASE_DN='$BASE_DN'
		DC_HOST='$DC_HOST'
		DC_ADDR='$DC_ADDR'
		ADMIN_USER='Administrator'
		ADMIN_PASSWORD='$ADMIN_PASSWORD'
		READER_USER='$READER_USER'
		READER_PASSWORD='$READER_PASSWORD'
		OUTSIDER_USER='$OUTSIDER_USER'
		OUTSIDER_PASSWORD='$OUTSIDER_PASSWORD'
		WRONG_PASSWORD='$WRONG_PASSWORD'
		GMSA_GROUP='$GROUP'
		KRB5_CONFIG='$KRB5_CONF'
		HOST_KEYTAB='$HOST_KEYTAB'
		HOST_PRINCIPAL='$HOST_PRINCIPAL'
		CREDSPEC_DIR='$CREDSPEC_DIR'
		READER_SECRET='${SECRET_FILES[0]}'
		OUTSIDER_SECRET='${SECRET_FILES[1]}'
		WRONG_SECRET='${SECRET_FILES[2]}'
		SAMBA_PID_FILE='$PID_FILE'
		LDAPSASL_NOCANON='on'
		TLS_CA='$TLS_DIR/ca.pem'
	EOF
}

# Modes of files that already existed (write_file keeps them): one chmod each,
# whatever the state, instead of a stat per file.
fix_modes() {
	chmod 0600 "${SECRET_FILES[@]}" "$HOST_KEYTAB"
	chmod 0644 "$KRB5_CONF" "$STATE/domain.env" "$CREDSPEC_DIR"/*.json
}

# ---------------------------------------------------------------- main

main() {
	[[ $EUID == 0 ]] || die "must run as root"
	[[ -d $STATE ]] || mkdir -p "$STATE"
	# Serialise concurrent runs (test packages may call us in parallel).
	exec 9>"$STATE/.setup.lock"
	flock -w 300 9 || die "another setup-domain.sh holds $STATE/.setup.lock"

	ensure_packages
	ensure_hosts_entry
	write_krb5_conf
	ensure_provisioned
	ensure_running
	ensure_dns
	ensure_objects
	domain_ids
	ensure_keytab
	check_gmsa_read
	write_test_files
	fix_modes
	log "ready: samba pid $SAMBA_PID, $REALM on $DC_ADDR"
	echo "$STATE/domain.env"
}

main "$@"
