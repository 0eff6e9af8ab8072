// Command benchfetch measures a cold gMSA ticket fetch by gmsa-hook against
// the MIT-tools pipeline that does the same job (kinit as the reader,
// ldapsearch -Y GSSAPI for msDS-ManagedPassword, decode, kinit as the gMSA),
// in one run against the same local Samba DC, and prints both side by side.
//
// Each fetch is a new process, as when a runtime calls the hook; the MIT
// pipeline's decode step runs in this process, which flatters the pipeline.
//
//	go run ./test/benchfetch -n 30
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
	"unicode/utf16"

	"github.com/gmsa-hook/gmsa-hook/fetcher/blob"
)

func main() {
	n := flag.Int("n", 30, "runs of each")
	dir := flag.String("domain", "/var/lib/gmsa-hook-test", "test domain state dir (test/setup-domain.sh)")
	bin := flag.String("bin", "", "gmsa-hook binary (default: build it)")
	flag.Parse()
	if err := run(*n, *dir, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "benchfetch:", err)
		os.Exit(1)
	}
}

func run(n int, dir, bin string) error {
	tmp, err := os.MkdirTemp("", "benchfetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if bin == "" {
		bin = filepath.Join(tmp, "gmsa-hook")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/gmsa-hook")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build: %v\n%s", err, out)
		}
	}
	var secret struct{ Username, Password, DomainName string }
	b, err := os.ReadFile(filepath.Join(dir, "reader-secret.json"))
	if err != nil {
		return err
	}
	json.Unmarshal(b, &secret)
	cfg := filepath.Join(tmp, "config.json")
	logPath := filepath.Join(tmp, "gmsa-hook.log")
	os.WriteFile(cfg, []byte(`{"domain_controllers":["dc1.corp.example.test"],"dns_server":"127.0.0.1:53","log_file":"`+logPath+`"}`), 0o600)
	env := []string{"KRB5_CONFIG=" + filepath.Join(dir, "krb5.conf"), "PATH=/usr/bin:/bin", "LDAPSASL_NOCANON=on"}

	var ours, theirs []time.Duration
	theirSteps := map[string][]time.Duration{}
	var peak int64
	for i := 0; i < n; i++ {
		// Alternate so both see the same DC state.
		out := filepath.Join(tmp, fmt.Sprintf("ours%d", i))
		start := time.Now()
		cmd := exec.Command(bin, "fetch", "--config", cfg, "--out", out, "--credspec", filepath.Join(dir, "credspecs/webapp01-domainless.json"))
		if o, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("gmsa-hook fetch: %v\n%s", err, o)
		}
		ours = append(ours, time.Since(start))
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > peak {
			peak = ru.Maxrss
		}
		steps, err := pipeline(tmp, i, env, secret.Username+"@CORP.EXAMPLE.TEST", secret.Password)
		if err != nil {
			return err
		}
		var total time.Duration
		for _, st := range steps {
			theirSteps[st.name] = append(theirSteps[st.name], st.d)
			total += st.d
		}
		theirs = append(theirs, total)
	}
	// Our in-process steps, from the debug log: one line per fetch.
	ourSteps := map[string][]time.Duration{}
	var inside []time.Duration
	logData, err := os.ReadFile(logPath)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(logData)), "\n") {
		var l struct {
			Steps   map[string]float64 `json:"steps_ms"`
			Elapsed float64            `json:"elapsed_ms"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			return fmt.Errorf("debug log: %v", err)
		}
		for k, v := range l.Steps {
			ourSteps[k] = append(ourSteps[k], time.Duration(v*float64(time.Millisecond)))
		}
		inside = append(inside, time.Duration(l.Elapsed*float64(time.Millisecond)))
	}
	if len(inside) != n {
		return fmt.Errorf("debug log has %d fetches, want %d", len(inside), n)
	}
	var outside []time.Duration
	for i := range ours {
		outside = append(outside, ours[i]-inside[i])
	}
	mo, po := stats(ours)
	mt, pt := stats(theirs)
	fmt.Printf("cold fetch of webapp01$ against the local Samba DC, %d runs each\n", n)
	fmt.Printf("%-44s %10s %10s\n", "", "median", "p95")
	fmt.Printf("%-44s %10s %10s\n", "gmsa-hook fetch (one process)", ms(mo), ms(po))
	fmt.Printf("%-44s %10s %10s\n", "MIT pipeline (kinit, ldapsearch, kinit)", ms(mt), ms(pt))
	fmt.Printf("%-44s %9.2fx %9.2fx\n", "gmsa-hook / pipeline", float64(mo)/float64(mt), float64(po)/float64(pt))
	fmt.Printf("gmsa-hook fetch peak memory (max RSS): %.1f MiB\n", float64(peak)/1024)

	fmt.Printf("\nwhere the time goes (medians; the same exchanges with the same DC on both sides):\n")
	row := func(a string, ad []time.Duration, b string, bd []time.Duration) {
		ma, mb := "", ""
		if ad != nil {
			m, _ := stats(ad)
			ma = ms(m)
		}
		if bd != nil {
			m, _ := stats(bd)
			mb = ms(m)
		}
		fmt.Printf("  %-40s %9s   %-34s %9s\n", a, ma, b, mb)
	}
	row("gmsa-hook", nil, "MIT pipeline", nil)
	row("process start and exit", outside, "", nil)
	row("credspec and secret (credspec)", ourSteps["credspec"], "", nil)
	row("find dcs (locate)", ourSteps["locate"], "", nil)
	row("reader's ldap/ ticket, AS (login)", ourSteps["login"], "kinit as the reader", theirSteps["kinit reader"])
	row("sealed bind and search (ldap)", ourSteps["ldap"], "ldapsearch -Y GSSAPI (+ TGS)", theirSteps["ldapsearch"])
	row("", nil, "decode the blob (in this process)", theirSteps["decode"])
	row("keys and the gMSA's AS (gmsa)", ourSteps["gmsa"], "kinit as the gMSA", theirSteps["kinit gmsa"])
	return nil
}

type step struct {
	name string
	d    time.Duration
}

func pipeline(tmp string, i int, env []string, reader, password string) ([]step, error) {
	readerCC := filepath.Join(tmp, fmt.Sprintf("reader%d", i))
	gmsaCC := filepath.Join(tmp, fmt.Sprintf("gmsa%d", i))
	var steps []step
	t := time.Now()
	lap := func(name string) {
		now := time.Now()
		steps = append(steps, step{name, now.Sub(t)})
		t = now
	}
	kinit := exec.Command("kinit", "-c", readerCC, reader)
	kinit.Env, kinit.Stdin = env, strings.NewReader(password+"\n")
	if o, err := kinit.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("kinit reader: %v\n%s", err, o)
	}
	lap("kinit reader")
	ls := exec.Command("ldapsearch", "-LLL", "-Q", "-Y", "GSSAPI", "-H", "ldap://dc1.corp.example.test",
		"-b", "DC=corp,DC=example,DC=test", "(sAMAccountName=webapp01$)", "msDS-ManagedPassword")
	ls.Env = append(env, "KRB5CCNAME=FILE:"+readerCC)
	var out bytes.Buffer
	ls.Stdout = &out
	if err := ls.Run(); err != nil {
		return nil, fmt.Errorf("ldapsearch: %v", err)
	}
	lap("ldapsearch")
	// ldapsearch folds long base64 values over lines starting with a space.
	text := strings.ReplaceAll(out.String(), "\n ", "")
	_, b64, ok := strings.Cut(text, "msDS-ManagedPassword:: ")
	if !ok {
		return nil, fmt.Errorf("ldapsearch returned no msDS-ManagedPassword")
	}
	b64, _, _ = strings.Cut(b64, "\n")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, err
	}
	mp, err := blob.Parse(raw)
	if err != nil {
		return nil, err
	}
	u := make([]uint16, len(mp.Current)/2)
	for j := range u {
		u[j] = uint16(mp.Current[2*j]) | uint16(mp.Current[2*j+1])<<8
	}
	pw := string(utf16.Decode(u))
	if strings.ContainsAny(pw, "\n\r") {
		return nil, fmt.Errorf("the gMSA password holds a line break: kinit cannot read it from stdin")
	}
	lap("decode")
	k2 := exec.Command("kinit", "-c", gmsaCC, "webapp01$@CORP.EXAMPLE.TEST")
	k2.Env, k2.Stdin = env, strings.NewReader(pw+"\n")
	if o, err := k2.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("kinit gMSA: %v\n%s", err, o)
	}
	lap("kinit gmsa")
	return steps, nil
}

func stats(d []time.Duration) (median, p95 time.Duration) {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[(len(s)*95+99)/100-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
