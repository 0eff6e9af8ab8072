package awsfake

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
)

// Fault is an error a fake answers instead of doing its work. Each service
// renders it the way that service does.
type Fault int

const (
	// Throttle: SSM and Secrets Manager 400 ThrottlingException, S3 503 SlowDown.
	Throttle Fault = iota + 1
	// AccessDenied: 400 AccessDeniedException naming the refused action, S3 403 AccessDenied.
	AccessDenied
	// InternalError: SSM 500 InternalServerError, Secrets Manager 500
	// InternalServiceError, S3 500 InternalError.
	InternalError
	// Unavailable: 503 ServiceUnavailable.
	Unavailable
	// Garbled: 200 with the real answer cut short mid-value, to check that a
	// client's decoding errors do not quote what they read.
	Garbled
)

func (f Fault) String() string {
	switch f {
	case Throttle:
		return "throttle"
	case AccessDenied:
		return "access-denied"
	case InternalError:
		return "internal-error"
	case Unavailable:
		return "unavailable"
	case Garbled:
		return "garbled"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// ParseFault is the inverse of Fault.String.
func ParseFault(s string) (Fault, error) {
	for f := Throttle; f <= Garbled; f++ {
		if f.String() == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("unknown fault %q: want throttle, access-denied, internal-error, unavailable or garbled", s)
}

// Service is what the three fakes share: the signing name and region they
// check, the queue of faults and the request counters.
type Service struct {
	name   string // signing name: ssm, secretsmanager, s3
	region string
	keys   *keyring

	mu       sync.Mutex
	faults   []queued
	requests int
	rejected int
}

type queued struct {
	fault Fault
	left  int // < 0: forever
}

// Region is the region requests must be signed for.
func (s *Service) Region() string { return s.region }

// Fail queues a fault for the next times requests (after those already
// queued); times < 1 means every request until Clear.
func (s *Service) Fail(f Fault, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if times < 1 {
		times = -1
	}
	s.faults = append(s.faults, queued{f, times})
}

// Clear drops queued faults and resets the counters.
func (s *Service) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults, s.requests, s.rejected = nil, 0, 0
}

// Requests is how many correctly signed requests reached the service,
// faulted ones included.
func (s *Service) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Rejected is how many requests were refused for missing or bad signatures.
func (s *Service) Rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

func (s *Service) reject() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected++
}

// admit counts a signed request and returns the fault to answer, if any.
func (s *Service) admit() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if len(s.faults) == 0 {
		return 0
	}
	q := &s.faults[0]
	f := q.fault
	if q.left > 0 {
		q.left--
		if q.left == 0 {
			s.faults = s.faults[1:]
		}
	}
	return f
}

func requestID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// deniedMessage is AWS's text for an action an identity policy does not allow.
func deniedMessage(account, action, resource string) string {
	return fmt.Sprintf("User: arn:aws:sts::%s:assumed-role/gmsa-hook-test/i-0123456789abcdef0 is not authorized to perform: %s on resource: %s because no identity-based policy allows the %s action",
		account, action, resource, action)
}
