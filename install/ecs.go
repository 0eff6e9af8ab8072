package install

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gmsa-hook/gmsa-hook/hook/store"
)

// ECS unit names.
const (
	ECSSocket  = "gmsa-hook-ecs.socket"
	ECSService = "gmsa-hook-ecs.service"
)

// ECSSocketPath is the socket the ECS agent dials (credentials-fetcher's).
const ECSSocketPath = "/var/credentials-fetcher/socket/credentials_fetcher.sock"

const ecsHeader = "# Written by gmsa-hook install --runtime ecs."

// ECSUnits are the systemd units of gmsa-hook ecs: a socket unit on the
// agent's socket, root's and 0660 (the agent runs as root and dials it
// through ecs-init's bind mount of /var/credentials-fetcher), and the
// service it starts on the first connection, which exits when idle: no
// process stays resident.
func ECSUnits(h Hooks) map[string][]byte {
	exec := quoteExec(h.Binary) + " ecs"
	if h.Config != "" {
		exec += " --config " + quoteExec(h.Config)
	}
	socket := ecsHeader + `
[Unit]
Description=gmsa-hook: the ECS agent's credentials-fetcher socket

[Socket]
ListenStream=` + ECSSocketPath + `
SocketUser=root
SocketGroup=root
SocketMode=0660
DirectoryMode=0755
RemoveOnStop=yes
Service=` + ECSService + `

[Install]
WantedBy=sockets.target
`
	service := ecsHeader + `
[Unit]
Description=gmsa-hook: gMSA tickets for the ECS agent (started by its socket, exits when idle)
Requires=` + ECSSocket + `
After=` + ECSSocket + ` network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=` + exec + `
NoNewPrivileges=yes
`
	return map[string][]byte{ECSSocket: []byte(socket), ECSService: []byte(service)}
}

// ECS writes the ECS units into dir, as Renewal does the renewal units.
func ECS(dir string, h Hooks) (written []string, err error) {
	return writeUnits(dir, ECSUnits(h), []string{ECSSocket, ECSService})
}

// writeUnits writes units into dir atomically; a unit already as it would
// be written is left alone.
func writeUnits(dir string, units map[string][]byte, names []string) (written []string, err error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: unit directory %s: not a directory", ErrUnitDir, dir)
	}
	for _, name := range names {
		p := filepath.Join(dir, name)
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, units[name]) {
			continue
		}
		if err := store.WriteFile(p, units[name], 0o644, -1, -1); err != nil {
			return written, fmt.Errorf("write %s: %w", p, err)
		}
		written = append(written, p)
	}
	return written, nil
}

// ECSConfig are the lines of /etc/ecs/ecs.config that send the agent to
// gmsa-hook ecs.
const ECSConfig = `ECS_GMSA_SUPPORTED=true
# The default; set it only if the socket unit listens elsewhere:
# CREDENTIALS_FETCHER_HOST=unix://` + ECSSocketPath + `
# Domainless gMSA on instances not joined to the domain: the Secrets Manager
# secret ({"username", "password", "domainName"}) the tasks' specs name:
# CREDENTIALS_FETCHER_SECRET_NAME_FOR_DOMAINLESS_GMSA=SECRET-NAME
`
