package kdc

import (
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"
)

var sentinels = []error{ErrBadCredentials, ErrUnknownPrincipal, ErrUnknownService, ErrRevoked, ErrSkew, ErrKeyExpired, ErrUnreachable}

func TestErrorText(t *testing.T) {
	kdcTime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		code int32
		want string // a regular expression, anchored
		is   error  // the one sentinel it matches, or nil
	}{
		{24, `wrong password or key \(kerberos error 24 kdc_err_preauth_failed\)`, ErrBadCredentials},
		{6, `no such account \(kerberos error 6 kdc_err_c_principal_unknown\)`, ErrUnknownPrincipal},
		{7, `no such service principal \(kerberos error 7 kdc_err_s_principal_unknown\)`, ErrUnknownService},
		{18, `account disabled or locked out \(kerberos error 18 kdc_err_client_revoked\)`, ErrRevoked},
		{23, `password expired \(kerberos error 23 kdc_err_key_expired\)`, ErrKeyExpired},
		{37, `clock skew too great: kdc time 2026-01-02T02:04:05Z, ours \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(kerberos error 37 krb_ap_err_skew\)`, ErrSkew},
		{25, `\(kerberos error 25 kdc_err_preauth_required\)`, nil},
		{14, `\(kerberos error 14 kdc_err_etype_nosupp\)`, nil},
		{99, `\(kerberos error 99\)`, nil},
		{-1, `\(kerberos error -1\)`, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			err := error(&Error{Code: tt.code, Server: "127.0.0.1:88", ServerTime: kdcTime, Text: "e-text"})
			if !regexp.MustCompile(`^` + tt.want + `$`).MatchString(err.Error()) {
				t.Errorf("Error()\n got %s\nwant %s", err, tt.want)
			}
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tt.is) {
					t.Errorf("errors.Is(%v, %q) = %v", tt.code, s, got)
				}
			}
			// Wrapped as callers wrap it.
			if w := fmt.Errorf("login as gmsa-reader: %w", err); tt.is != nil && !errors.Is(w, tt.is) {
				t.Errorf("wrapped error %v does not match %q", w, tt.is)
			}
		})
	}
}

func TestErrorAs(t *testing.T) {
	err := fmt.Errorf("kdc: %w", &Error{Code: 24, Server: "127.0.0.1:88"})
	var kerr *Error
	if !errors.As(err, &kerr) || kerr.Code != 24 || kerr.Server != "127.0.0.1:88" {
		t.Fatalf("errors.As = %+v", kerr)
	}
}
