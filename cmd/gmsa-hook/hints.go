package main

import (
	"errors"
	"io/fs"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/fetcher/kdc"
	"github.com/gmsa-hook/gmsa-hook/hook"
	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/place"
	"github.com/gmsa-hook/gmsa-hook/hook/store"
	"github.com/gmsa-hook/gmsa-hook/hook/wrapper"
	"github.com/gmsa-hook/gmsa-hook/install"
	"github.com/gmsa-hook/gmsa-hook/spec"
	"github.com/gmsa-hook/gmsa-hook/spec/policy"
)

// hint pairs a condition with what an operator can do about it. The list is
// the one place hints live; docs/errors.md is checked against it by a test.
// An error gets the hint of the first condition it matches: specific
// conditions come before general ones.
type hint struct {
	err  error
	text string
}

var hintTable = []hint{
	{policy.ErrRefused, "put the credential spec in /etc/gmsa-hook/credspecs and label the container credentialspec=file://NAME.json, or allow what was asked in the config file's \"policy\" (gmsa-hook policy check shows the decision; see docs/security.md)"},
	{spec.ErrOutside, "name a file inside the directory: file://NAME.json, no \"..\" and no symlink that points out of it"},
	{spec.ErrUntrustedDir, "make the directory root's and writable by root only: chown root DIR && chmod 755 DIR"},
	{spec.ErrNotRegular, "a credential spec or secret must be a regular file, not a FIFO, a device or a directory"},
	{spec.ErrMalformed, "check the credential spec against the CredSpec format (CmsPlugins, DomainJoinConfig, ActiveDirectoryConfig.GroupManagedServiceAccounts)"},
	{spec.ErrInsecureFile, "make the secret file readable by its owner only: chmod 600 FILE"},
	{spec.ErrForeignFile, "the secret file must belong to root: chown root FILE"},
	{spec.ErrNotFound, "check the ARN: the parameter, object or secret must exist in that account and region"},
	{spec.ErrAccessDenied, "allow the refused action to the host's instance profile role (or the configured profile)"},
	{spec.ErrThrottled, "the AWS API is throttling this account: retry later, or raise aws.max_attempts in the config file"},
	{spec.ErrNoCredentials, "give the host an instance profile, or set aws.profile and aws.credentials_files in the config file"},
	{spec.ErrParameterType, "store the credential spec as an SSM String or SecureString parameter"},
	{spec.ErrNoRemote, "configure AWS access in the \"aws\" section of the config file"},
	{config.ErrConfig, "see README.md for the configuration keys"},
	{fetcher.ErrNotPermitted, "add the reading account to PrincipalsAllowedToRetrieveManagedPassword (msDS-GroupMSAMembership) of the gMSA"},
	{fetcher.ErrNoSuchGMSA, "check the gMSA name in ActiveDirectoryConfig.GroupManagedServiceAccounts; create it with New-ADServiceAccount or samba-tool service-account create"},
	{fetcher.ErrNotGMSA, "name a group Managed Service Account (New-ADServiceAccount, or samba-tool service-account create), not a user or computer account"},
	{errSpecMismatch, "the spec was made for another domain or account: make it again with gmsa-hook credspec create"},
	{errNoSPN, "a ticket is fetched without one, but services find the gMSA by its SPNs: add them with Set-ADServiceAccount -ServicePrincipalNames or samba-tool spn add"},
	{errNoWiring, "install the hooks with gmsa-hook install --runtime podman --hooks-dir DIR (or --runtime runc --bundle DIR), or show doctor where they are with --hooks-dir or --bundle"},
	{spec.ErrNoWriter, "configure AWS access in the \"aws\" section of the config file"},
	{fetcher.ErrDisabled, "enable the gMSA account in Active Directory (Enable-ADAccount, or samba-tool user enable)"},
	{fetcher.ErrLayerRefused, "leave ldap_security unset (seal), or set \"ldaps\": true in the config file"},
	{fetcher.ErrNoDC, "give the domain controllers in the config file (domain_controllers), or a dns_server that serves the domain's SRV records"},
	{kdc.ErrUnreachable, "check that the domain controllers answer on ports 88 and 389 (636 with ldaps) from this host"},
	{fetcher.ErrUnreachable, "check that the domain controllers answer on ports 88 and 389 (636 with ldaps) from this host"},
	{fetcher.ErrDeadline, "check that the domain controllers answer, or raise \"timeout\" in the config file (keep it below the runtime's hook timeout)"},
	{fetcher.ErrKeytab, "join the host to the domain, or point --keytab (\"keytab\" in the config file) at the machine account's keytab"},
	{fetcher.ErrKeysRefused, "this KDC has neither password the LDAP server gave: its copy of the account is behind (replication after a rotation), or the password was reset outside its rotation; name one writable domain controller in domain_controllers, or wait for replication"},
	{kdc.ErrBadCredentials, "check the reader's password in its secret, or re-export the host keytab if the machine password changed"},
	{kdc.ErrUnknownPrincipal, "check the user name and domainName in the secret, or the keytab's principal"},
	{kdc.ErrRevoked, "the account is disabled or locked out in Active Directory: enable or unlock it"},
	{kdc.ErrSkew, "synchronise this host's clock with the domain controllers (chrony or systemd-timesyncd)"},
	{container.ErrState, "gmsa-hook hook is run by the OCI runtime with the container state on stdin: add it to a bundle with gmsa-hook install"},
	{hook.ErrStage, "use one of the stages gmsa-hook install writes: createRuntime, createContainer, poststop"},
	{container.ErrBundle, "check the bundle's config.json: the hook reads root.path, annotations, process.user and linux.uidMappings"},
	{hook.ErrRunDir, "set \"run_dir\" in the config file to an absolute path on a tmpfs, e.g. /run/gmsa-hook: a directory of root's (0711), not a symlink, that nobody else can write"},
	{hook.ErrInUse, "the same container id runs from the same bundle path under two runtimes (runc --root, containerd namespaces): give each its own bundle directory, or delete the other container first"},
	{place.ErrNotBound, "the runtime wrapper names the bundle by the path the runtime is given; start the container again, and if it recurs, set the wrapper's runtime to runc or crun as installed (gmsa-hook install --runtime docker or containerd again)"},
	{hook.ErrNoTicket, "install the createRuntime hook next to createContainer (gmsa-hook install writes both)"},
	{container.ErrUnmapped, "run the container as a user that linux.uidMappings and linux.gidMappings map to the host"},
	{hook.ErrMount, "the image must have a directory, or nothing, at /var/credentials-fetcher/krbdir, on the rootfs's own filesystem (no symlink to /proc or /sys, no volume mounted on the path)"},
	{hook.ErrContainerd, "pass the containerd socket to the hook entries (--containerd-address SOCKET), or give the container the credentialspec annotation"},
	{install.ErrBundle, "give --bundle an OCI bundle directory with a config.json (runc spec makes one)"},
	{install.ErrRuntime, "use --runtime docker, containerd, kubernetes, podman, cri-o, or runc with --bundle; crun users add the hooks to a bundle with --runtime runc (see README.md)"},
	{install.ErrEngineConfig, "fix the file named above by hand, or point the flag at the right file (--daemon-json, --containerd-config, --crio-dropin, --wrapper, --runc); --dry-run shows what install would write"},
	{wrapper.ErrConfig, "run gmsa-hook install --runtime docker (or containerd, kubernetes) again: it writes the wrapper's configuration beside the wrapper"},
	{install.ErrUnitDir, "give --unit-dir the directory systemd reads units from (/etc/systemd/system), writable by root"},
	{fetcher.ErrNotRenewable, "the renewal pass fetches a new ticket then; check why the fetch failed"},
	{store.ErrLocked, "another gmsa-hook is fetching the same gMSA and has not finished: check that the domain controllers answer"},
	{install.ErrHooksDir, "give --hooks-dir a directory Podman or CRI-O reads hooks from (hooks_dir in containers.conf), writable by root"},
	{kdc.ErrRC4Disabled, "enable AES for the account in Active Directory (msDS-SupportedEncryptionTypes, then reset its password or re-export the keytab), or set \"allow_rc4\": true in the config file to accept RC4"},
	{errECSUnits, "write them again with gmsa-hook install --runtime ecs --config FILE (the --config doctor was given), then systemctl daemon-reload && systemctl restart gmsa-hook-ecs.socket"},
	{errNoRenewal, "install the renewal units with gmsa-hook install --renewal --config FILE (the --config doctor was given; --unit-dir DIR for another unit directory), then systemctl daemon-reload && systemctl enable --now gmsa-hook-renew.timer"},
	{errNoStore, "gmsa-hook install --renewal --config FILE makes the run directory, mounts its tmpfs and writes its version file before any container is made"},
	{errRenewFailed, "fix the cause named (gmsa-hook renew --config FILE tries again and status shows the outcome): containers keep their ticket until it ends"},
	{errAwaitingGC, "gmsa-hook gc --config FILE removes them; the renewal timer runs it every 5 minutes"},
	{kdc.ErrKeyExpired, "the reading account's password has expired: reset it in Active Directory and update the secret"},
	// The generic file conditions come last: a more specific cause above
	// has the better hint.
	{fs.ErrNotExist, "check the path; the hook runs as root in the host's mount namespace"},
	{fs.ErrPermission, "run as root, or make the file readable by the user running gmsa-hook"},
}

func hints(err error) []string {
	for _, h := range hintTable {
		if errors.Is(err, h.err) {
			return []string{h.text}
		}
	}
	return nil
}
