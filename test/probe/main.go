// Command probe runs inside the test containers (built static, copied into
// the rootfs). It proves that the container holds a usable ticket of its
// gMSA: it loads the credential cache the hook mounted, uses the TGT in it
// to get a service ticket from the KDC, and checks that the cache cannot be
// written. With -expect-denied it proves instead that this user cannot read
// the cache at all.
//
// Output, one line each, for the tests to match:
//
//	probe: uid=1000 read-only
//	probe: ok client=webapp01$@CORP.EXAMPLE.TEST service=ldap/dc1.corp.example.test@CORP.EXAMPLE.TEST etype=18
//	probe: denied: open ...: permission denied
//	probe: tgt end=1764612345 auth=1764576345     (the cached TGT's end and authentication times, Unix seconds)
//	probe: watched 5123 reads, 3 tickets, 0 bad   (-watch: read until stdin closes)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
)

func main() {
	ccache := flag.String("ccache", "", "credential cache (default $KRB5CCNAME, else /var/credentials-fetcher/krbdir/krb5cc)")
	kdc := flag.String("kdc", "127.0.0.1:88", "KDC address")
	realm := flag.String("realm", "CORP.EXAMPLE.TEST", "realm")
	spn := flag.String("spn", "ldap/dc1.corp.example.test", "service principal to get a ticket for")
	denied := flag.Bool("expect-denied", false, "succeed only when the cache cannot be read")
	watch := flag.Bool("watch", false, "read the cache over and over until stdin closes; count reads that find it partial, missing or invalid")
	flag.Parse()
	if *watch {
		watchCache(*ccache)
		return
	}
	if err := probe(*ccache, *kdc, *realm, *spn, *denied); err != nil {
		fmt.Printf("probe: error: %v\n", err)
		os.Exit(1)
	}
}

func probe(path, kdc, realm, spn string, expectDenied bool) error {
	if path == "" {
		path = os.Getenv("KRB5CCNAME")
	}
	if path == "" {
		path = "/var/credentials-fetcher/krbdir/krb5cc"
	}
	if len(path) > 5 && path[:5] == "FILE:" {
		path = path[5:]
	}
	b, err := os.ReadFile(path)
	if expectDenied {
		if errors.Is(err, fs.ErrPermission) {
			fmt.Printf("probe: denied: %v\n", err)
			return nil
		}
		return fmt.Errorf("uid %d read %s (%d bytes, err %v): want permission denied", os.Getuid(), path, len(b), err)
	}
	if err != nil {
		return err
	}
	// The mount is read-only: neither the cache nor its directory take writes.
	// A cache this user does not own (an ECS lease's, root's and 0644) is
	// refused for want of permission first: the mount's flags say then.
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); errors.Is(err, syscall.EACCES) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(filepath.Dir(path), &st); err != nil || st.Flags&0x1 == 0 { // ST_RDONLY
			return fmt.Errorf("statfs %s: flags %#x, %v: want a read-only mount", filepath.Dir(path), st.Flags, err)
		}
	} else if !errors.Is(err, syscall.EROFS) {
		if f != nil {
			f.Close()
		}
		return fmt.Errorf("open %s for writing: %v, want read-only file system", path, err)
	} else if err := os.WriteFile(filepath.Join(filepath.Dir(path), "x"), nil, 0o600); !errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("create a file beside %s: %v, want read-only file system", path, err)
	}
	fmt.Printf("probe: uid=%d read-only\n", os.Getuid())

	cc := new(credentials.CCache)
	if err := cc.Unmarshal(b); err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	cfg, err := config.NewFromString(fmt.Sprintf(`[libdefaults]
 default_realm = %[1]s
 dns_lookup_kdc = false
 dns_lookup_realm = false
 udp_preference_limit = 1
[realms]
 %[1]s = {
  kdc = %[2]s
 }
`, realm, kdc))
	if err != nil {
		return err
	}
	for _, c := range cc.GetEntries() {
		if len(c.Server.PrincipalName.NameString) > 0 && c.Server.PrincipalName.NameString[0] == "krbtgt" {
			fmt.Printf("probe: tgt end=%d auth=%d\n", c.EndTime.Unix(), c.AuthTime.Unix())
		}
	}
	cl, err := client.NewFromCCache(cc, cfg, client.DisablePAFXFAST(true))
	if err != nil {
		return fmt.Errorf("client from %s: %w", path, err)
	}
	tkt, key, err := cl.GetServiceTicket(spn)
	if err != nil {
		return fmt.Errorf("service ticket for %s: %w", spn, err)
	}
	fmt.Printf("probe: ok client=%s@%s service=%s@%s etype=%d\n",
		cc.GetClientPrincipalName().PrincipalNameString(), cc.GetClientRealm(),
		tkt.SName.PrincipalNameString(), tkt.Realm, key.KeyType)
	return nil
}

// watchCache reads the cache until stdin closes. A read that fails, a
// cache that does not decode or holds no TGT valid now, counts as bad.
func watchCache(path string) {
	if path == "" {
		path = "/var/credentials-fetcher/krbdir/krb5cc"
	}
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	reads, bad := 0, 0
	var firstBad error
	ends := map[int64]bool{}
	for {
		select {
		case <-done:
			fmt.Printf("probe: watched %d reads, %d tickets, %d bad\n", reads, len(ends), bad)
			if firstBad != nil {
				fmt.Printf("probe: first bad read: %v\n", firstBad)
			}
			return
		default:
		}
		reads++
		err := func() error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			cc := new(credentials.CCache)
			if err := cc.Unmarshal(b); err != nil {
				return fmt.Errorf("decode %d bytes: %w", len(b), err)
			}
			for _, c := range cc.GetEntries() {
				if len(c.Server.PrincipalName.NameString) > 0 && c.Server.PrincipalName.NameString[0] == "krbtgt" && c.EndTime.After(time.Now()) {
					ends[c.EndTime.Unix()] = true
					return nil
				}
			}
			return errors.New("no valid tgt in the cache")
		}()
		if err != nil {
			bad++
			if firstBad == nil {
				firstBad = err
			}
		}
	}
}
