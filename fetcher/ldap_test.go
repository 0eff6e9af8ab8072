package fetcher

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gmsa-hook/gmsa-hook/fetcher/sasl"
)

// TestReadAccountRefusesSkippedLayerNegotiation: a DC (or a man in the
// middle relaying the AP exchange to the real one) that answers the bind's
// empty step with success never offers layers. The read must fail before
// any search goes out, whatever layer was configured.
func TestReadAccountRefusesSkippedLayerNegotiation(t *testing.T) {
	for _, tt := range []struct {
		security string
		want     string
	}{
		{"", "ldap server refused the security layer: asked for confidentiality, negotiated nothing: the bind succeeded before the server offered its layers"},
		{"sign", "ldap server refused the security layer: asked for integrity, negotiated nothing: the bind succeeded before the server offered its layers"},
		{"none", "ldap server refused the security layer: asked for none, negotiated nothing: the bind succeeded before the server offered its layers"},
	} {
		t.Run("ldap_security="+tt.security, func(t *testing.T) {
			f := startLDAP(t, skipLayers)
			c := conf{LDAPSecurity: tt.security}
			a, _, err := c.readAccount(context.Background(), f.dcs(), f.ticket, "webapp01", "corp.example.test", "")
			if err == nil || err.Error() != tt.want {
				t.Fatalf("readAccount = %+v, %v; want error %s", a, err, tt.want)
			}
			if !errors.Is(err, ErrLayerRefused) || !errors.Is(err, sasl.ErrLayerRefused) {
				t.Errorf("error %v does not match ErrLayerRefused and sasl.ErrLayerRefused", err)
			}
			// The client has hung up; the fake has read all it sent.
			<-f.done
			if diff := cmp.Diff([]string{"bind", "bind"}, f.received()); diff != "" {
				t.Errorf("operations the server received (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadAccountStopsAtSizeLimit: the search asks for two entries; a DC
// that streams more must not be read to its end.
func TestReadAccountStopsAtSizeLimit(t *testing.T) {
	f := startLDAP(t, streamEntries)
	var c conf
	a, _, err := c.readAccount(context.Background(), f.dcs(), f.ticket, "webapp01", "corp.example.test", "")
	want := "ldap server sent more than 2 entries for webapp01$ in DC=corp,DC=example,DC=test"
	if err == nil || err.Error() != want {
		t.Fatalf("readAccount = %+v, %v; want error %s", a, err, want)
	}
	// The fake writes until the client hangs up, or streamCap entries.
	<-f.done
	if diff := cmp.Diff([]string{"bind", "bind", "bind", "search"}, f.received()); diff != "" {
		t.Errorf("operations the server received (-want +got):\n%s", diff)
	}
	if f.entries >= streamCap {
		t.Errorf("the server wrote all %d entries: the client read them all", f.entries)
	}
	if n := f.clientRead.Load(); n > maxResponse {
		t.Errorf("the client read %d bytes, more than maxResponse (%d)", n, maxResponse)
	}
}

// TestReadAccountBoundsResponseBytes: one entry too large for any gMSA
// ends the read at maxResponse bytes.
func TestReadAccountBoundsResponseBytes(t *testing.T) {
	f := startLDAP(t, hugeEntry)
	var c conf
	a, _, err := c.readAccount(context.Background(), f.dcs(), f.ticket, "webapp01", "corp.example.test", "")
	want := "ldap server sent more than 1048576 bytes for webapp01$ in DC=corp,DC=example,DC=test"
	if err == nil || err.Error() != want {
		if a != nil {
			t.Errorf("read a %d-byte password", len(a.Blob))
		}
		t.Fatalf("readAccount error %v, want %s", err, want)
	}
	<-f.done
	if n := f.clientRead.Load(); n > maxResponse {
		t.Errorf("the client read %d bytes, more than maxResponse (%d)", n, maxResponse)
	}
}
