package install

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrUnitDir marks a systemd unit directory that cannot be written.
var ErrUnitDir = errors.New("cannot write the systemd units")

// DefaultUnitDir is where RenewalUnits go unless told otherwise.
const DefaultUnitDir = "/etc/systemd/system"

// Renewal unit names.
const (
	RenewService = "gmsa-hook-renew.service"
	RenewTimer   = "gmsa-hook-renew.timer"
)

// RenewalUnits are the systemd units of the renewal pass: a oneshot
// service running `gmsa-hook renew` and a timer starting it every five
// minutes (a randomized delay spreads hosts; Persistent catches up after
// the host was off), so that with the default one-hour threshold a ticket
// gets a dozen tries before it ends.
func RenewalUnits(h Hooks) map[string][]byte {
	exec := quoteExec(h.Binary) + " renew"
	if h.Config != "" {
		exec += " --config " + quoteExec(h.Config)
	}
	service := `# Written by gmsa-hook install --renewal.
[Unit]
Description=gmsa-hook: renew the gMSA tickets of running containers, remove those of gone ones
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=` + exec + `
NoNewPrivileges=yes
`
	timer := `# Written by gmsa-hook install --renewal.
[Unit]
Description=gmsa-hook: renew the gMSA tickets of running containers every 5 minutes

[Timer]
OnCalendar=*:0/5
RandomizedDelaySec=60
AccuracySec=10s
Persistent=true

[Install]
WantedBy=timers.target
`
	return map[string][]byte{RenewService: []byte(service), RenewTimer: []byte(timer)}
}

// quoteExec quotes a path for ExecStart when it needs it.
func quoteExec(p string) string {
	if !strings.ContainsAny(p, " \t\"'\\$%;") {
		return p
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`).Replace(p) + `"`
}

// Renewal writes the renewal units into dir, atomically; a unit already as
// it would be written is left alone. It returns the paths it wrote.
func Renewal(dir string, h Hooks) (written []string, err error) {
	return writeUnits(dir, RenewalUnits(h), []string{RenewService, RenewTimer})
}

// RemoveRenewal removes the renewal units gmsa-hook wrote from dir.
func RemoveRenewal(dir string) (removed []string, err error) {
	for _, name := range []string{RenewService, RenewTimer} {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return removed, err
		}
		if !bytes.HasPrefix(b, []byte("# Written by gmsa-hook install --renewal.")) {
			return removed, fmt.Errorf("%s was not written by gmsa-hook: left alone", p)
		}
		if err := os.Remove(p); err != nil {
			return removed, err
		}
		removed = append(removed, p)
	}
	return removed, nil
}

// RenewalChanges are the changes that install (remove false) or uninstall
// the renewal units in dir, for an engine's install to apply with its own:
// an engine wired to gmsa-hook gets the timer that keeps its containers'
// tickets valid. On uninstall only units gmsa-hook wrote are removed.
func RenewalChanges(dir string, h Hooks, remove bool) ([]Change, error) {
	units := RenewalUnits(h)
	var changes []Change
	for _, name := range []string{RenewService, RenewTimer} {
		p := filepath.Join(dir, name)
		old, err := readFile(p)
		if err != nil {
			return nil, err
		}
		c := Change{Path: p, Old: old, New: units[name], Mode: 0o644}
		if remove {
			if old == nil || !bytes.HasPrefix(old, []byte("# Written by gmsa-hook install --renewal.")) {
				continue
			}
			c.New = nil
		}
		changes = append(changes, c)
	}
	return changes, nil
}
