package awsfake

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Parameter types, as SSM names them.
const (
	String       = "String"
	SecureString = "SecureString"
	StringList   = "StringList"
)

// jsonService is the awsJson1.1 half of a fake: POST / with X-Amz-Target.
type jsonService struct {
	Service
	account string
	prefix  string // X-Amz-Target prefix: "AmazonSSM." or "secretsmanager."
	// errNS is the namespace AWS appends to x-amzn-ErrorType.
	errNS string
}

// serve checks the protocol and the signature, then answers op's input or
// the queued fault.
func (s *jsonService) serve(w http.ResponseWriter, r *http.Request, ops map[string]func(in []byte, fault Fault) (int, any)) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "SerializationException", "cannot read the request body")
		return
	}
	if aerr := verify(r, body, s.keys, s.name, s.region, time.Now()); aerr != nil {
		s.reject()
		writeAuthJSONError(w, aerr)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		writeJSONError(w, http.StatusNotFound, "UnknownOperationException", "")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		writeJSONError(w, http.StatusBadRequest, "SerializationException", "Content-Type must be application/x-amz-json-1.1, not "+ct)
		return
	}
	op, ok := ops[strings.TrimPrefix(r.Header.Get("X-Amz-Target"), s.prefix)]
	if !ok || !strings.HasPrefix(r.Header.Get("X-Amz-Target"), s.prefix) {
		writeJSONError(w, http.StatusBadRequest, "UnknownOperationException", "")
		return
	}
	if !json.Valid(body) {
		writeJSONError(w, http.StatusBadRequest, "SerializationException", "")
		return
	}
	status, out := op(body, s.admit())
	switch v := out.(type) {
	case apiError:
		w.Header().Set("X-Amzn-ErrorType", v.Type+":http://internal.amazon.com/coral/"+s.errNS+"/")
		writeJSONError(w, status, v.Type, v.Message)
	case garbled:
		writeJSON(w, http.StatusOK, v)
	default:
		writeJSON(w, status, out)
	}
}

// apiError is an awsJson1.1 error answer.
type apiError struct{ Type, Message string }

// garbled is a response cut short: it is written as it is.
type garbled []byte

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b []byte
	if g, ok := v.(garbled); ok {
		b = g
	} else {
		b, _ = json.Marshal(v)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", requestID())
	w.WriteHeader(status)
	w.Write(b)
}

func writeJSONError(w http.ResponseWriter, status int, typ, msg string) {
	body := map[string]string{"__type": typ}
	if msg != "" {
		body["message"] = msg
	}
	writeJSON(w, status, body)
}

// writeAuthJSONError answers as AWS's front end does for signature
// problems: 400 (403 for a missing token) with a coral-qualified type.
func writeAuthJSONError(w http.ResponseWriter, e *authError) {
	const ns = "com.amazon.coral.service#"
	switch e.problem {
	case authMissing:
		writeJSONError(w, http.StatusBadRequest, ns+"MissingAuthenticationTokenException", "Missing Authentication Token")
	case authMalformed:
		writeJSONError(w, http.StatusBadRequest, ns+"IncompleteSignatureException", e.detail)
	case authUnknownKey, authBadToken:
		writeJSONError(w, http.StatusBadRequest, ns+"UnrecognizedClientException", "The security token included in the request is invalid.")
	case authSkewed:
		writeJSONError(w, http.StatusBadRequest, ns+"InvalidSignatureException", "Signature expired: "+e.detail)
	default:
		writeJSONError(w, http.StatusBadRequest, ns+"InvalidSignatureException", e.detail)
	}
}

// SSM is a fake of SSM Parameter Store's GetParameter.
type SSM struct {
	jsonService
	mu     sync.Mutex
	params map[string]Parameter // by name without a leading "/"
}

// Parameter is a stored SSM parameter.
type Parameter struct {
	Type  string // String, SecureString or StringList
	Value string
}

func newSSM(region, account string, keys *keyring) *SSM {
	return &SSM{
		jsonService: jsonService{Service: Service{name: "ssm", region: region, keys: keys}, account: account, prefix: "AmazonSSM.", errNS: "com.amazonaws.ssm"},
		params:      map[string]Parameter{},
	}
}

// Put stores a parameter and returns its ARN. name is "/path/name" or "name".
func (s *SSM) Put(name, typ, value string) (arn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.TrimPrefix(name, "/")
	s.params[key] = Parameter{Type: typ, Value: value}
	return s.arn(key)
}

// ARN of the parameter name in this fake's region and account.
func (s *SSM) ARN(name string) string { return s.arn(strings.TrimPrefix(name, "/")) }

func (s *SSM) arn(key string) string {
	return "arn:aws:ssm:" + s.region + ":" + s.account + ":parameter/" + key
}

// key turns a name or an ARN of this region and account into a map key.
func (s *SSM) key(name string) (string, bool) {
	if strings.HasPrefix(name, "arn:") {
		p := strings.SplitN(name, ":", 6)
		if len(p) != 6 || p[2] != "ssm" || p[3] != s.region || p[4] != s.account || !strings.HasPrefix(p[5], "parameter/") {
			return "", false
		}
		return strings.TrimPrefix(p[5], "parameter/"), true
	}
	return strings.TrimPrefix(name, "/"), true
}

func (s *SSM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, map[string]func([]byte, Fault) (int, any){"GetParameter": s.getParameter, "PutParameter": s.putParameter})
}

// Get returns a stored parameter by name ("/path/name" or "name").
func (s *SSM) Get(name string) (Parameter, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.params[strings.TrimPrefix(name, "/")]
	return p, ok
}

// putParameter stores a parameter as SSM does: by name (an ARN is refused,
// as by the service), an existing one replaced only with Overwrite.
func (s *SSM) putParameter(in []byte, fault Fault) (int, any) {
	var req struct {
		Name, Value, Type string
		Overwrite         bool
	}
	if err := json.Unmarshal(in, &req); err != nil {
		return http.StatusBadRequest, apiError{"SerializationException", ""}
	}
	if req.Name == "" || req.Value == "" {
		return http.StatusBadRequest, apiError{"ValidationException", "1 validation error detected: Value null at 'name' or 'value' failed to satisfy constraint: Member must not be null"}
	}
	if strings.HasPrefix(req.Name, "arn:") {
		return http.StatusBadRequest, apiError{"ValidationException", "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive)."}
	}
	key := strings.TrimPrefix(req.Name, "/")
	switch fault {
	case Throttle:
		return http.StatusBadRequest, apiError{"ThrottlingException", "Rate exceeded"}
	case AccessDenied:
		return http.StatusBadRequest, apiError{"AccessDeniedException", deniedMessage(s.account, "ssm:PutParameter", s.arn(key))}
	case InternalError:
		return http.StatusInternalServerError, apiError{"InternalServerError", ""}
	case Unavailable:
		return http.StatusServiceUnavailable, apiError{"ServiceUnavailable", "Service Unavailable"}
	}
	typ := req.Type
	if typ == "" {
		typ = String
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.params[key]; exists && !req.Overwrite {
		return http.StatusBadRequest, apiError{"ParameterAlreadyExists", "The parameter already exists. To overwrite this request, set the overwrite option in the request to true."}
	}
	s.params[key] = Parameter{Type: typ, Value: req.Value}
	return http.StatusOK, map[string]any{"Tier": "Standard", "Version": 1}
}

func (s *SSM) getParameter(in []byte, fault Fault) (int, any) {
	var req struct {
		Name           string
		WithDecryption bool
	}
	if err := json.Unmarshal(in, &req); err != nil {
		return http.StatusBadRequest, apiError{"SerializationException", ""}
	}
	if req.Name == "" {
		return http.StatusBadRequest, apiError{"ValidationException", "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null"}
	}
	key, ok := s.key(req.Name)
	s.mu.Lock()
	p, found := s.params[key]
	s.mu.Unlock()
	switch fault {
	case Throttle:
		return http.StatusBadRequest, apiError{"ThrottlingException", "Rate exceeded"}
	case AccessDenied:
		return http.StatusBadRequest, apiError{"AccessDeniedException", deniedMessage(s.account, "ssm:GetParameter", s.arn(key))}
	case InternalError:
		return http.StatusInternalServerError, apiError{"InternalServerError", ""}
	case Unavailable:
		return http.StatusServiceUnavailable, apiError{"ServiceUnavailable", "Service Unavailable"}
	}
	if !ok || !found {
		return http.StatusBadRequest, apiError{"ParameterNotFound", ""}
	}
	value := p.Value
	if p.Type == SecureString && !req.WithDecryption {
		value = ciphertext(p.Value)
	}
	out := map[string]any{"Parameter": map[string]any{
		"ARN":              s.arn(key),
		"DataType":         "text",
		"LastModifiedDate": float64(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Unix()),
		"Name":             req.Name,
		"Type":             p.Type,
		"Value":            value,
		"Version":          1,
	}}
	if fault == Garbled {
		return http.StatusOK, cut(out, value)
	}
	return http.StatusOK, out
}

// ciphertext stands in for the KMS blob SSM returns without decryption.
func ciphertext(v string) string {
	h := sha256.Sum256([]byte("kms:" + v))
	return "AQICAHh" + base64.StdEncoding.EncodeToString(h[:])
}

// cut encodes out and cuts it in the middle of value.
func cut(out any, value string) garbled {
	b, _ := json.Marshal(out)
	v, _ := json.Marshal(value)
	v = v[1 : len(v)-1]
	if i := bytes.Index(b, v); i >= 0 {
		return garbled(b[:i+len(v)/2+1])
	}
	return garbled(b[:len(b)/2])
}

// SecretsManager is a fake of Secrets Manager's GetSecretValue.
type SecretsManager struct {
	jsonService
	mu      sync.Mutex
	secrets map[string]secret // by name
}

type secret struct {
	arn    string
	str    *string
	binary []byte
}

func newSecretsManager(region, account string, keys *keyring) *SecretsManager {
	return &SecretsManager{
		jsonService: jsonService{Service: Service{name: "secretsmanager", region: region, keys: keys}, account: account, prefix: "secretsmanager.", errNS: "com.amazonaws.secretsmanager"},
		secrets:     map[string]secret{},
	}
}

// Put stores a SecretString and returns the secret's full ARN (with the
// six random-looking characters AWS appends). The name and the ARN without
// that suffix find it too, as in AWS.
func (s *SecretsManager) Put(name, value string) (arn string) {
	return s.put(name, secret{str: &value})
}

// PutBinary stores a SecretBinary and returns the secret's full ARN.
func (s *SecretsManager) PutBinary(name string, value []byte) (arn string) {
	return s.put(name, secret{binary: append([]byte(nil), value...)})
}

func (s *SecretsManager) put(name string, sec secret) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec.arn = s.ARN(name)
	s.secrets[name] = sec
	return sec.arn
}

// ARN is the full ARN a secret called name has in this fake.
func (s *SecretsManager) ARN(name string) string {
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	h := sha256.Sum256([]byte(name))
	suffix := make([]byte, 6)
	for i := range suffix {
		suffix[i] = alnum[int(h[i])%len(alnum)]
	}
	return s.partialARN(name) + "-" + string(suffix)
}

func (s *SecretsManager) partialARN(name string) string {
	return "arn:aws:secretsmanager:" + s.region + ":" + s.account + ":secret:" + name
}

func (s *SecretsManager) lookup(id string) (secret, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, sec := range s.secrets {
		if id == name || id == sec.arn || id == s.partialARN(name) {
			return sec, true
		}
	}
	return secret{}, false
}

func (s *SecretsManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, map[string]func([]byte, Fault) (int, any){"GetSecretValue": s.getSecretValue})
}

func (s *SecretsManager) getSecretValue(in []byte, fault Fault) (int, any) {
	var req struct{ SecretId string }
	if err := json.Unmarshal(in, &req); err != nil {
		return http.StatusBadRequest, apiError{"SerializationException", ""}
	}
	if req.SecretId == "" {
		return http.StatusBadRequest, apiError{"ValidationException", "1 validation error detected: Value null at 'secretId' failed to satisfy constraint: Member must not be null"}
	}
	switch fault {
	case Throttle:
		return http.StatusBadRequest, apiError{"ThrottlingException", "Rate exceeded"}
	case AccessDenied:
		return http.StatusBadRequest, apiError{"AccessDeniedException", deniedMessage(s.account, "secretsmanager:GetSecretValue", req.SecretId)}
	case InternalError:
		return http.StatusInternalServerError, apiError{"InternalServiceError", ""}
	case Unavailable:
		return http.StatusServiceUnavailable, apiError{"ServiceUnavailable", "Service Unavailable"}
	}
	sec, ok := s.lookup(req.SecretId)
	if !ok {
		return http.StatusBadRequest, apiError{"ResourceNotFoundException", "Secrets Manager can't find the specified secret."}
	}
	name := sec.arn[strings.LastIndex(sec.arn, ":")+1 : len(sec.arn)-7]
	out := map[string]any{
		"ARN":           sec.arn,
		"CreatedDate":   float64(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Unix()),
		"Name":          name,
		"VersionId":     "00000000-0000-4000-8000-000000000001",
		"VersionStages": []string{"AWSCURRENT"},
	}
	value := ""
	if sec.str != nil {
		out["SecretString"] = *sec.str
		value = *sec.str
	} else {
		out["SecretBinary"] = sec.binary // base64, as the protocol wants
		value = base64.StdEncoding.EncodeToString(sec.binary)
	}
	if fault == Garbled {
		return http.StatusOK, cut(out, value)
	}
	return http.StatusOK, out
}
