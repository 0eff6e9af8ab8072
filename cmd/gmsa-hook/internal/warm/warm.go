// Package warm ends a labelled container's createRuntime (or prestart) whose
// gMSA ticket is in the node's cache before the AWS SDK, the LDAP and
// Kerberos clients, TLS and gRPC are initialised: about half of such a
// run went to their initialisation.
//
// Package quick reads the container state first and leaves this run to
// be done (quick.Left). Its init then does createRuntime's work with files
// only (package place, the code the full run uses, with no fetch, no AWS
// source and no containerd API): the configuration file, config.json, the
// label, the policy, the cache entry, the container's directory. Anything
// else (no valid cached ticket, a spec or secret in AWS, a label only
// containerd tells, a configuration that cannot be read or asks for a
// debug log, any error, a refusal too) is left to the full run, which does
// the whole stage again and reports. Go initialises this package once
// path/filepath and the policy's other imports are; TestWarmCreateSkipsHeavyInit
// guards that nothing heavy comes before it.
package warm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/gmsa-hook/gmsa-hook/cmd/gmsa-hook/internal/quick"
	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/place"
)

func init() {
	stage, cfgPath, state, ok := quick.Left()
	if !ok || (stage != container.CreateRuntime && stage != container.Prestart) {
		return
	}
	if create(cfgPath, state) == nil {
		os.Exit(0)
	}
}

// create is createRuntime with files only; an error leaves the stage to
// the full run.
func create(cfgPath string, state []byte) error {
	cfg := config.Config{}
	if cfgPath != "" {
		var err error
		if cfg, err = config.Load(cfgPath); err != nil {
			return err
		}
		// meta.json names the file for the renewer, as the full run does.
		if cfgPath, err = filepath.Abs(cfgPath); err != nil {
			return err
		}
	}
	if cfg.LogFile != "" || !filepath.IsAbs(cfg.RunDirOrDefault()) {
		return place.ErrFullRun
	}
	st, err := container.ReadState(bytes.NewReader(state))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.TimeoutOrDefault())
	defer cancel()
	// Without a fetch, success is a cached ticket placed (or one placed at
	// an earlier stage kept, or no label after all).
	return place.Create(ctx, place.Request{Config: cfg, ConfigPath: cfgPath}, st, &place.Report{}, time.Now())
}
