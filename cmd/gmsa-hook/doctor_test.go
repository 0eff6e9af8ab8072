package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
)

// TestDoctorText pins the text rows of gmsa-hook doctor: status, the name
// padded to the longest, the time right-aligned in 8 columns ("-" for a
// step not run), the detail or the error on one line, each hint indented
// under a failure or a warning; a warning passes the steps that need it,
// a failure skips them.
func TestDoctorText(t *testing.T) {
	steps := []doctorStep{
		{name: "config", run: func(context.Context, *doctorState) (string, error) { return "/etc/gmsa-hook/config.json", nil }},
		{name: "store", needs: []string{"config"}, run: func(context.Context, *doctorState) (string, error) {
			return "", warned(fmt.Errorf("%w: gone-0123456789abcdef", errAwaitingGC))
		}},
		{name: "after a warning", needs: []string{"store"}, run: func(context.Context, *doctorState) (string, error) { return "ran", nil }},
		{name: "gMSA readable", run: func(context.Context, *doctorState) (string, error) {
			return "", fmt.Errorf("reader reading gMSA \"webapp03$\":\nline two: %w", fetcher.ErrNotPermitted)
		}},
		{name: "gMSA ticket", needs: []string{"gMSA readable", "config"}, run: func(context.Context, *doctorState) (string, error) {
			t.Error("a step whose needs failed ran")
			return "", nil
		}},
	}
	found := walk(context.Background(), &doctorState{}, steps)
	elapsed := []time.Duration{1500 * time.Microsecond, 42 * time.Millisecond, 2340 * time.Millisecond, 7 * time.Millisecond, 0}
	for i := range found {
		found[i].Elapsed = elapsed[i]
	}
	var b strings.Builder
	printFindings(&b, found, true)
	want := `pass  config              1.5ms  /etc/gmsa-hook/config.json
warn  store                42ms  containers that are gone await gc: gone-0123456789abcdef
      hint: gmsa-hook gc --config FILE removes them; the renewal timer runs it every 5 minutes
pass  after a warning     2.34s  ran
fail  gMSA readable       7.0ms  reader reading gMSA "webapp03$": line two: not permitted to retrieve the managed password
      hint: add the reading account to PrincipalsAllowedToRetrieveManagedPassword (msDS-GroupMSAMembership) of the gMSA
skip  gMSA ticket             -  needs gMSA readable
`
	if b.String() != want {
		t.Errorf("doctor text:\n%s\nwant:\n%s", b.String(), want)
	}
	err := failed("doctor", found)
	if got := "doctor: 1 of 5 checks failed; the first, gMSA readable: reader reading gMSA \"webapp03$\":\nline two: not permitted to retrieve the managed password"; err == nil || err.Error() != got || !errors.Is(err, fetcher.ErrNotPermitted) {
		t.Errorf("failed: %v, want %q", err, got)
	}
}
