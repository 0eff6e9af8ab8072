package spec

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"
)

// TestNewMatchesWindowsExamples: what New and Marshal write has the shape
// of published Windows and ECS specs (testdata/windows-examples.txtar says
// where each comes from): the domain-joined one byte for byte, the
// domainless one token for token (its indentation is Python's).
func TestNewMatchesWindowsExamples(t *testing.T) {
	ar, err := txtar.ParseFile("testdata/windows-examples.txtar")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range ar.Files {
		files[f.Name] = f.Data
	}
	contoso := New(DomainInfo{SID: "S-1-5-21-702590844-1001920913-2680819671", GUID: "56d9b66c-d746-4f87-bd26-26760cfdca2e",
		DNSName: "contoso.com", DNSTreeName: "contoso.com", NetBIOSName: "CONTOSO"}, "webapp01$", "")
	got, err := contoso.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(files["domain-joined.json"]), string(got)); diff != "" {
		t.Errorf("domain-joined spec differs from New-CredentialSpec's (-windows +ours):\n%s", diff)
	}

	ecs := New(DomainInfo{SID: "S-1-5-21-2421564706-1737585382-3854682907", GUID: "6a91814c-e151-4fb0-96f0-f517566fc883",
		DNSName: "DOMAINNAME", DNSTreeName: "DOMAINNAME", NetBIOSName: "NETBIOS_NAME"}, "GMSA_NAME", "GMSA_SECRET_ARN")
	got, err = ecs.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var want, ours bytes.Buffer
	if err := json.Compact(&want, files["domainless.json"]); err != nil {
		t.Fatal(err)
	}
	json.Compact(&ours, got)
	if diff := cmp.Diff(want.String(), ours.String()); diff != "" {
		t.Errorf("domainless spec differs from credentials-fetcher's (-ecs +ours):\n%s", diff)
	}

	// Both parse, and say what they were made from.
	for name, b := range map[string][]byte{"domain-joined": files["domain-joined.json"], "domainless": got} {
		cs, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "domainless" && (!cs.Domainless() || cs.CredentialArn() != "GMSA_SECRET_ARN") {
			t.Errorf("domainless: Domainless %v, CredentialArn %q", cs.Domainless(), cs.CredentialArn())
		}
	}
}

func TestStoreFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "webapp01.json")
	src, _ := ParseSource(path)
	for _, content := range []string{"{}\n", "{\"a\": 1}\n"} {
		if err := Store(context.Background(), src, []byte(content), nil); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Errorf("file holds %q, %v; want %q", b, err, content)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left in the directory: %v", ents)
	}
	missing, _ := ParseSource(filepath.Join(dir, "no", "x.json"))
	err := Store(context.Background(), missing, []byte("{}"), nil)
	if want := "write " + missing.Path + ": open " + filepath.Join(dir, "no") + "/.x.json.tmp-"; err == nil || len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Errorf("err = %v, want prefix %q", err, want)
	}
	ssm, _ := ParseSource("arn:aws:ssm:us-west-2:123456789012:parameter/gmsa/x")
	if err := Store(context.Background(), ssm, []byte("{}"), nil); err == nil || err.Error() != "arn:aws:ssm:us-west-2:123456789012:parameter/gmsa/x: no AWS access configured for writing" {
		t.Errorf("err = %v", err)
	}
}
