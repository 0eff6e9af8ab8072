package ecs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/fetcher/kdc"
	"github.com/gmsa-hook/gmsa-hook/hook"
	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/hook/store"
	"github.com/gmsa-hook/gmsa-hook/spec"
	"github.com/gmsa-hook/gmsa-hook/spec/policy"
)

// codes pairs conditions with the gRPC code the agent gets. The agent
// retries Unavailable, DeadlineExceeded, ResourceExhausted, Aborted and
// Internal; every other code is final and becomes the task's stop reason.
// The first match wins.
var codeTable = []struct {
	err  error
	code codes.Code
}{
	// Transient: the agent tries again.
	{fetcher.ErrUnreachable, codes.Unavailable},
	{kdc.ErrUnreachable, codes.Unavailable},
	{fetcher.ErrDeadline, codes.Unavailable},
	{fetcher.ErrNoDC, codes.Unavailable},
	{store.ErrLocked, codes.Unavailable},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
	// Bad input.
	{ErrRequest, codes.InvalidArgument},
	{spec.ErrMalformed, codes.InvalidArgument},
	{policy.ErrRefused, codes.PermissionDenied},
	{fetcher.ErrNotPermitted, codes.PermissionDenied},
	{kdc.ErrBadCredentials, codes.Unauthenticated},
	{kdc.ErrUnknownPrincipal, codes.Unauthenticated},
	{kdc.ErrRevoked, codes.Unauthenticated},
	{kdc.ErrKeyExpired, codes.Unauthenticated},
	{fetcher.ErrNoSuchGMSA, codes.NotFound},
	{fetcher.ErrNotGMSA, codes.NotFound},
	// The host or the domain needs fixing.
	{fetcher.ErrDisabled, codes.FailedPrecondition},
	{fetcher.ErrKeytab, codes.FailedPrecondition},
	{fetcher.ErrLayerRefused, codes.FailedPrecondition},
	{kdc.ErrSkew, codes.FailedPrecondition},
	{kdc.ErrRC4Disabled, codes.FailedPrecondition},
	{hook.ErrRunDir, codes.FailedPrecondition},
	{config.ErrConfig, codes.FailedPrecondition},
}

// Code is the gRPC code of a failed call's error.
func Code(err error) codes.Code {
	for _, c := range codeTable {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return codes.Internal
}

// status is a failed call's gRPC status: its code, and the same one line
// the CLI prints, with its hints, for the task's stop reason.
func (s *Server) status(call string, err error) error {
	msg := "gmsa-hook: " + strings.ReplaceAll(err.Error(), "\n", " ")
	if s.Hints != nil {
		for _, h := range s.Hints(err) {
			msg += "; hint: " + h
		}
	}
	if s.Log != nil {
		fmt.Fprintf(s.Log, "gmsa-hook: error: ecs %s: %s\n", call, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	return status.Error(Code(err), msg)
}
