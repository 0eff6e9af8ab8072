package hook

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/fetcher/ccache"
	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/store"
)

// ticketUntil is a renewable cache of account whose TGT ends at end.
func ticketUntil(account string, end time.Time) []byte {
	client := ccache.Principal{NameType: 1, Realm: "CORP.EXAMPLE.TEST", Components: []string{account}}
	c := &ccache.Cache{DefaultPrincipal: client, Credentials: []ccache.Credential{{
		Client: client, Server: ccache.Principal{NameType: 2, Realm: "CORP.EXAMPLE.TEST", Components: []string{"krbtgt", "CORP.EXAMPLE.TEST"}},
		AuthTime: testNow, StartTime: testNow, EndTime: end, RenewTill: testNow.Add(7 * 24 * time.Hour),
		Flags: ccache.FlagRenewable, Ticket: []byte("ticket-" + account),
	}}}
	b, err := c.MarshalBinary()
	if err != nil {
		panic(err)
	}
	return b
}

// TestRenewPass: entries that live containers use and that end within the
// threshold are renewed once each and copied into every such container;
// one that fails does not stop the other, and the report names it; an
// entry valid beyond the threshold is left alone, and a container that is
// gone is removed.
func TestRenewPass(t *testing.T) {
	runDir := memRunDir(t)
	s, _, err := store.Open(runDir)
	if err != nil {
		t.Fatal(err)
	}
	soon, later := testNow.Add(30*time.Minute), testNow.Add(5*time.Hour)
	entries := map[string]*store.Entry{
		"ok":    {Key: store.Key("ok"), Account: "webapp01$", Realm: "CORP.EXAMPLE.TEST", Expires: soon},
		"fails": {Key: store.Key("fails"), Account: "webapp02$", Realm: "CORP.EXAMPLE.TEST", Expires: soon},
		"valid": {Key: store.Key("valid"), Account: "webapp04$", Realm: "CORP.EXAMPLE.TEST", Expires: later},
	}
	for _, e := range entries {
		if err := s.Put(e, ticketUntil(e.Account, e.Expires)); err != nil {
			t.Fatal(err)
		}
	}
	self, _ := container.ProcessStart(os.Getpid())
	place := func(id, key string, pid int, start uint64) string {
		e := entries[key]
		m := &store.Meta{ID: id, Bundle: "/b/" + id, Account: e.Account, Realm: e.Realm, CacheKey: e.Key,
			UID: os.Getuid(), GID: os.Getgid(), Created: testNow, Expires: e.Expires, Pid: pid, PidStart: start}
		if err := s.Place(m, ticketUntil(e.Account, e.Expires)); err != nil {
			t.Fatal(err)
		}
		return s.ContainerDir(m.ID, m.Bundle)
	}
	okDirs := []string{place("a", "ok", os.Getpid(), self), place("b", "ok", os.Getpid(), self)}
	failDir := place("c", "fails", os.Getpid(), self)
	validDir := place("d", "valid", os.Getpid(), self)
	goneDir := place("gone", "ok", 1<<22, 0)

	renewed := testNow.Add(10 * time.Hour)
	var renews, fetches []string
	rep, err := Renew(context.Background(), RenewRequest{
		RunDir: runDir, Threshold: time.Hour, Now: func() time.Time { return testNow },
		Renew: func(_ context.Context, r fetcher.RenewRequest) (*fetcher.Result, error) {
			acct := r.Cache.Credentials[0].Client.Components[0]
			renews = append(renews, acct)
			if acct == "webapp02$" {
				return nil, &fetcher.Error{Step: `renew ticket of "webapp02$@CORP.EXAMPLE.TEST"`, Server: "127.0.0.1:88", Err: errors.New("kdc unreachable")}
			}
			c, _ := ccache.Parse(ticketUntil(acct, renewed))
			return &fetcher.Result{Cache: c, Account: acct, Realm: "CORP.EXAMPLE.TEST", Expires: renewed}, nil
		},
		Fetch: func(_ context.Context, r fetcher.Request) (*fetcher.Result, error) {
			fetches = append(fetches, r.Source)
			return nil, errors.New("not reached")
		},
		LoadConfig: func(string) (config.Config, error) { return testConfig(runDir), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(renews, " ") != "webapp01$ webapp02$" && strings.Join(renews, " ") != "webapp02$ webapp01$" {
		t.Errorf("renewals %v, want one each of webapp01$ and webapp02$", renews)
	}
	outcomes := map[string]string{}
	for _, e := range rep.Entries {
		outcomes[e.Account] = e.Outcome
	}
	if outcomes["webapp01$"] != "renewed" || outcomes["webapp02$"] != "failed" || outcomes["webapp04$"] != "valid" {
		t.Errorf("outcomes %v", outcomes)
	}
	if err := rep.Failed(); err == nil || !strings.Contains(err.Error(), "webapp02$@CORP.EXAMPLE.TEST") || !strings.Contains(err.Error(), "kdc unreachable") {
		t.Errorf("Failed() = %v", err)
	}
	// The renewal failed, so the fetch was tried: the spec source is empty
	// here and the policy refuses it before any fetch.
	if len(fetches) != 0 {
		t.Errorf("fetched %v", fetches)
	}
	for _, d := range okDirs {
		m, err := store.ReadMeta(d)
		if err != nil || !m.Expires.Equal(renewed) || m.Renewed.IsZero() {
			t.Errorf("%s: meta %+v, %v", d, m, err)
		}
		b, _ := os.ReadFile(filepath.Join(d, "krbdir", "krb5cc"))
		if c, err := ccache.Parse(b); err != nil || !c.Credentials[0].EndTime.Equal(renewed) {
			t.Errorf("%s: ticket not renewed: %v", d, err)
		}
	}
	for _, d := range []string{failDir, validDir} {
		if m, _ := store.ReadMeta(d); m == nil || !m.Renewed.IsZero() {
			t.Errorf("%s: touched: %+v", d, m)
		}
	}
	if _, err := os.Stat(goneDir); !os.IsNotExist(err) {
		t.Errorf("a gone container's directory is left: %v", err)
	}
	if e, _, _ := s.Get(entries["fails"].Key); e.Outcome != "failed" || !strings.Contains(e.Error, "kdc unreachable") {
		t.Errorf("failed entry: %+v", e)
	}
}
