package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/fetcher/kdc"
)

var update = flag.Bool("update", false, "rewrite docs/errors.md from the hint table")

// TestErrorsDoc keeps docs/errors.md in step with the hint table.
func TestErrorsDoc(t *testing.T) {
	var b strings.Builder
	b.WriteString("# Operator errors and their hints\n\n")
	b.WriteString("Every failure of `gmsa-hook fetch` and of the hook is one line,\n")
	b.WriteString("`gmsa-hook: error: <what failed, for which container and account, against which server>: <cause>`,\n")
	b.WriteString("followed by `gmsa-hook: hint:` lines chosen by the cause. This page is generated from\n")
	b.WriteString("`cmd/gmsa-hook/hints.go` by `go test ./cmd/gmsa-hook -run TestErrorsDoc -update`.\n\n")
	b.WriteString("| cause (as it appears in the error) | hint |\n| --- | --- |\n")
	for _, h := range hintTable {
		fmt.Fprintf(&b, "| %s | %s |\n", strings.ReplaceAll(h.err.Error(), "|", "\\|"), strings.ReplaceAll(h.text, "|", "\\|"))
	}
	const path = "../../docs/errors.md"
	if *update {
		os.MkdirAll("../../docs", 0o755)
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != b.String() {
		t.Errorf("docs/errors.md is stale: run go test ./cmd/gmsa-hook -run TestErrorsDoc -update")
	}
}

func TestHintsFollowWrapping(t *testing.T) {
	err := &fetcher.Error{Step: "log in", Err: fmt.Errorf("x: %w", &kdc.Error{Code: 37})}
	got := hints(err)
	if len(got) != 1 || !strings.Contains(got[0], "synchronise this host's clock") {
		t.Errorf("hints = %q", got)
	}
	if h := hints(errors.New("plain")); h != nil {
		t.Errorf("hints of an unknown error = %q", h)
	}
}

func TestReportIsOneLine(t *testing.T) {
	var b strings.Builder
	report(&b, fmt.Errorf("read password: %w", fetcher.ErrNotPermitted))
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := []string{
		"gmsa-hook: error: read password: not permitted to retrieve the managed password",
		"gmsa-hook: hint: add the reading account to PrincipalsAllowedToRetrieveManagedPassword (msDS-GroupMSAMembership) of the gMSA",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("report:\n%s\nwant:\n%s", b.String(), strings.Join(want, "\n"))
	}
}
