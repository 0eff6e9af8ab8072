package fetcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/gmsa-hook/gmsa-hook/fetcher/ccache"
	"github.com/gmsa-hook/gmsa-hook/fetcher/kdc"
)

// ErrNotRenewable marks a ticket the KDC cannot renew: not renewable, or
// past its renew-till. A fresh fetch is the way on.
var ErrNotRenewable = errors.New("ticket is not renewable")

// RenewRequest is one renewal of a gMSA's ticket-granting ticket.
type RenewRequest struct {
	// Cache holds the ticket, as Fetch returned it.
	Cache *ccache.Cache
	// Domain is the gMSA's DNS domain, where its KDCs are found.
	Domain string
	Config Config
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Renew renews a ticket-granting ticket with one TGS exchange (the RENEW
// option): the gMSA's password is neither read nor needed. It fails with
// ErrNotRenewable when the ticket cannot be renewed (then re-fetch).
func Renew(ctx context.Context, req RenewRequest) (*Result, error) {
	cfg := (*conf)(&req.Config)
	timeout := cfg.timeout()
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w of %s", ErrDeadline, timeout))
	defer cancel()
	now := time.Now
	if req.Now != nil {
		now = req.Now
	}
	if req.Cache == nil || len(req.Cache.Credentials) == 0 {
		return nil, &Error{Step: "renew ticket", Err: fmt.Errorf("%w: empty credential cache", ErrNotRenewable)}
	}
	cred := req.Cache.Credentials[0]
	who := fmt.Sprintf("ticket of %q", strings.Join(cred.Client.Components, "/")+"@"+cred.Client.Realm)
	switch {
	case cred.Flags&ccache.FlagRenewable == 0:
		return nil, &Error{Step: "renew " + who, Err: fmt.Errorf("%w: the kdc did not make it renewable", ErrNotRenewable)}
	case !cred.RenewTill.After(now()):
		return nil, &Error{Step: "renew " + who, Err: fmt.Errorf("%w: its renew-till %s has passed", ErrNotRenewable, cred.RenewTill.UTC().Format(time.RFC3339))}
	}
	var tkt messages.Ticket
	if err := tkt.Unmarshal(cred.Ticket); err != nil {
		return nil, &Error{Step: "renew " + who, Err: fmt.Errorf("%w: the cached ticket does not decode: %v", ErrNotRenewable, err)}
	}
	realm := cred.Client.Realm
	d, err := cfg.locate(ctx, req.Domain, realm)
	if err != nil {
		return nil, &Error{Step: "find domain controllers of " + req.Domain, Err: err}
	}
	kc := &kdc.Client{Realm: realm, KDCs: d.kdcs, Dial: d.dial, AllowRC4: cfg.AllowRC4,
		Lifetime: time.Duration(cfg.TicketLifetime), RenewLifetime: renew(cfg)}
	t, err := kc.Renew(ctx, &kdc.Ticket{
		Client:      types.PrincipalName{NameType: cred.Client.NameType, NameString: cred.Client.Components},
		ClientRealm: realm,
		Server:      types.PrincipalName{NameType: cred.Server.NameType, NameString: cred.Server.Components},
		ServerRealm: cred.Server.Realm,
		Ticket:      tkt, SessionKey: cred.Key,
	})
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %v", context.Cause(ctx), innermost(err))
		}
		return nil, &Error{Step: "renew " + who, Server: kdcOf(err, d), Err: err}
	}
	return &Result{Cache: cacheOf(t), Account: strings.Join(cred.Client.Components, "/"), Realm: realm,
		Expires: t.EndTime}, nil
}
