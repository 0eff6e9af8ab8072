package ecs

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/fetcher/kdc"
	"github.com/gmsa-hook/gmsa-hook/spec"
	"github.com/gmsa-hook/gmsa-hook/spec/policy"
)

func TestCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("log in: %w", kdc.ErrUnreachable), codes.Unavailable},
		{fetcher.ErrDeadline, codes.Unavailable},
		{fmt.Errorf("x: %w", spec.ErrMalformed), codes.InvalidArgument},
		{&policy.Refusal{What: "w", Reason: "r"}, codes.PermissionDenied},
		{fetcher.ErrNotPermitted, codes.PermissionDenied},
		{kdc.ErrBadCredentials, codes.Unauthenticated},
		{fetcher.ErrNoSuchGMSA, codes.NotFound},
		{kdc.ErrSkew, codes.FailedPrecondition},
		{errors.New("something else"), codes.Internal},
	} {
		if got := Code(tt.err); got != tt.want {
			t.Errorf("Code(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
