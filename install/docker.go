package install

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// DockerRuntime is the name of the wrapper in daemon.json's runtimes.
const DockerRuntime = "gmsa"

// docker writes daemon.json: runtimes.gmsa = {"path": the wrapper} and,
// with --default, default-runtime = "gmsa". Every other key is kept as
// written (json.RawMessage); the file is re-indented with two spaces and
// its keys sorted, which Docker does not mind. What install replaced
// (default-runtime, whether it made the file or the runtimes object) is
// recorded beside it in daemon.json.gmsa-hook, so uninstall gives it back:
// dockerd refuses unknown keys in daemon.json itself.
type docker struct{}

// dockerRecord is daemon.json.gmsa-hook.
type dockerRecord struct {
	CreatedFile     bool            `json:"created_file,omitempty"`
	CreatedRuntimes bool            `json:"created_runtimes,omitempty"`
	DefaultRuntime  json.RawMessage `json:"default_runtime,omitempty"`
	SetDefault      bool            `json:"set_default,omitempty"`
	// Original is daemon.json before the first install and Written a hash
	// of what install last wrote: while the file is still that, uninstall
	// gives back the original bytes, comments of order and spacing
	// included; once someone else changed it, only gmsa-hook's keys go.
	Original *string `json:"original,omitempty"`
	Written  string  `json:"written,omitempty"`
}

func hash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func recordPath(daemonJSON string) string { return daemonJSON + ".gmsa-hook" }

func decodeObject(b []byte, path string) (map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(b)) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%w: %s is not a JSON object: %v", ErrEngineConfig, path, err)
	}
	return m, nil
}

func encodeObject(m map[string]json.RawMessage) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (docker) read(o Options) (old []byte, top, runtimes map[string]json.RawMessage, rec *dockerRecord, recOld []byte, err error) {
	if old, err = readFile(o.DaemonJSON); err != nil {
		return
	}
	if top, err = decodeObject(old, o.DaemonJSON); err != nil {
		return
	}
	runtimes = map[string]json.RawMessage{}
	if raw, ok := top["runtimes"]; ok {
		if runtimes, err = decodeObject(raw, o.DaemonJSON+": \"runtimes\""); err != nil {
			return
		}
	}
	if recOld, err = readFile(recordPath(o.DaemonJSON)); err != nil {
		return
	}
	if recOld != nil {
		rec = &dockerRecord{}
		if err = json.Unmarshal(recOld, rec); err != nil {
			err = fmt.Errorf("%w: %s: %v", ErrEngineConfig, recordPath(o.DaemonJSON), err)
		}
	}
	return
}

func (d docker) Install(o Options) ([]Change, error) {
	cs, err := wrapperInstall(o)
	if err != nil {
		return nil, err
	}
	old, top, runtimes, rec, recOld, err := d.read(o)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		// The first install: what it finds is what uninstall gives back.
		_, hadRuntimes := top["runtimes"]
		rec = &dockerRecord{CreatedFile: old == nil, CreatedRuntimes: !hadRuntimes}
		if old != nil {
			orig := string(old)
			rec.Original = &orig
		}
	}
	entry, _ := json.Marshal(map[string]string{"path": o.Wrapper})
	runtimes[DockerRuntime] = entry
	if top["runtimes"], err = encodeObject(runtimes); err != nil {
		return nil, err
	}
	cur, hasDefault := top["default-runtime"]
	ours := hasDefault && isString(cur, DockerRuntime)
	switch {
	case o.Default && !ours:
		rec.SetDefault, rec.DefaultRuntime = true, cur
		top["default-runtime"], _ = json.Marshal(DockerRuntime)
	case !o.Default && ours && rec.SetDefault:
		restoreDefault(top, rec)
	}
	b, err := encodeObject(top)
	if err != nil {
		return nil, err
	}
	rec.Written = hash(b)
	rb, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, err
	}
	rb = append(rb, '\n')
	return append(cs,
		Change{Path: recordPath(o.DaemonJSON), Old: recOld, New: rb, Mode: 0o600},
		Change{Path: o.DaemonJSON, Old: old, New: b, Mode: 0o644}), nil
}

func restoreDefault(top map[string]json.RawMessage, rec *dockerRecord) {
	if rec.DefaultRuntime == nil {
		delete(top, "default-runtime")
	} else {
		top["default-runtime"] = rec.DefaultRuntime
	}
	rec.SetDefault, rec.DefaultRuntime = false, nil
}

func isString(raw json.RawMessage, want string) bool {
	var s string
	return json.Unmarshal(raw, &s) == nil && s == want
}

func (d docker) Uninstall(o Options) ([]Change, error) {
	old, top, runtimes, rec, recOld, err := d.read(o)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		rec = &dockerRecord{SetDefault: true} // no record: ours are removed, nothing given back
	}
	var cs []Change
	_, hasOurs := runtimes[DockerRuntime]
	cur, _ := top["default-runtime"]
	if old != nil && (hasOurs || isString(cur, DockerRuntime) || recOld != nil) {
		delete(runtimes, DockerRuntime)
		if len(runtimes) == 0 && rec.CreatedRuntimes {
			delete(top, "runtimes")
		} else if _, had := top["runtimes"]; had {
			if top["runtimes"], err = encodeObject(runtimes); err != nil {
				return nil, err
			}
		}
		if cur, ok := top["default-runtime"]; ok && isString(cur, DockerRuntime) && rec.SetDefault {
			restoreDefault(top, rec)
		}
		var b []byte
		if rec.Original != nil && rec.Written == hash(old) {
			b = []byte(*rec.Original)
		} else if !(rec.CreatedFile && (len(top) == 0 || rec.Written == hash(old))) {
			if b, err = encodeObject(top); err != nil {
				return nil, err
			}
		}
		cs = append(cs, Change{Path: o.DaemonJSON, Old: old, New: b})
	}
	if recOld != nil {
		cs = append(cs, Change{Path: recordPath(o.DaemonJSON), Old: recOld})
	}
	w, err := wrapperUninstall(o, namesWrapper(o, o.DaemonJSON))
	return append(cs, w...), err
}

func (docker) Restart(o Options) string {
	return "reload dockerd (systemctl reload docker, or kill -HUP $(pidof dockerd)): it rereads runtimes and default-runtime from " + o.DaemonJSON + " without stopping containers"
}
