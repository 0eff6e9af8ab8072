// Command awsfake serves the SSM, Secrets Manager and S3 fakes of package
// awsfake on one address for shell-driven tests, preloaded from files.
//
// Usage:
//
//	awsfake [-addr 127.0.0.1:0] [-env FILE] [-aws-dir DIR] \
//	    [-ssm NAME=FILE] [-ssm-secure NAME=FILE] [-secret NAME=FILE] [-s3 BUCKET/KEY=FILE] \
//	    [-fail SERVICE:FAULT[:N]]
//
// Once listening it prints shell assignments (AWS_ENDPOINT_URL, the test
// keys, AWS_REGION, AWS_EC2_METADATA_DISABLED) and then one comment line per
// document with its ARN, and writes the same to -env FILE (atomically, so a
// script can wait for the file). -aws-dir writes DIR/config and
// DIR/credentials with a profile "awsfake" for programs that get no
// environment, such as an OCI hook. It serves until SIGINT or SIGTERM.
//
// Example:
//
//	awsfake -env /tmp/aws.env -ssm /gmsa/webapp01=webapp01.json \
//	    -secret gmsa/reader=reader.json -fail ssm:throttle:2 &
//	while [ ! -s /tmp/aws.env ]; do sleep 0.1; done; . /tmp/aws.env
//	gmsa-hook fetch --credspec arn:aws:ssm:us-west-2:111122223333:parameter/gmsa/webapp01
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/gmsa-hook/gmsa-hook/test/awsfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintf(os.Stderr, "awsfake: error: %v\n", err)
		os.Exit(1)
	}
}

// list is a repeatable flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// run serves until ctx ends; ready, when not nil, gets the URL once
// listening.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(url string)) error {
	fs := flag.NewFlagSet("awsfake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr                                        = fs.String("addr", "127.0.0.1:0", "listen `address`")
		envFile                                     = fs.String("env", "", "also write the shell assignments to `file`")
		awsDir                                      = fs.String("aws-dir", "", "write config and credentials files with profile awsfake to `dir`")
		region                                      = fs.String("region", awsfake.Region, "`region` of SSM and Secrets Manager")
		s3Region                                    = fs.String("s3-region", "", "`region` of the S3 buckets (default -region)")
		account                                     = fs.String("account", awsfake.Account, "`account` in ARNs")
		ssmStr, ssmSecure, secrets, objects, faults list
	)
	fs.Var(&ssmStr, "ssm", "String parameter `NAME=FILE` (repeatable)")
	fs.Var(&ssmSecure, "ssm-secure", "SecureString parameter `NAME=FILE` (repeatable)")
	fs.Var(&secrets, "secret", "Secrets Manager secret `NAME=FILE` (repeatable)")
	fs.Var(&objects, "s3", "S3 object `BUCKET/KEY=FILE` (repeatable)")
	fs.Var(&faults, "fail", "queue `SERVICE:FAULT[:N]`: ssm, secretsmanager or s3; throttle, access-denied, internal-error, unavailable or garbled; N times (default every request)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	f := awsfake.New(awsfake.Options{Region: *region, S3Region: *s3Region, Account: *account})

	for _, v := range objects {
		if b, k, _ := strings.Cut(strings.SplitN(v, "=", 2)[0], "/"); b == "" || k == "" {
			return fmt.Errorf("-s3 %q: want BUCKET/KEY=FILE", v)
		}
	}
	var comments []string
	load := func(l list, put func(name string, body []byte) string, kind string) error {
		for _, v := range l {
			name, file, ok := strings.Cut(v, "=")
			if !ok || name == "" || file == "" {
				return fmt.Errorf("-%s %q: want NAME=FILE", kind, v)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("-%s %s: %w", kind, name, err)
			}
			comments = append(comments, fmt.Sprintf("# %s %s %s", kind, name, put(name, b)))
		}
		return nil
	}
	err := errors.Join(
		load(ssmStr, func(n string, b []byte) string { return f.SSM.Put(n, awsfake.String, string(b)) }, "ssm"),
		load(ssmSecure, func(n string, b []byte) string { return f.SSM.Put(n, awsfake.SecureString, string(b)) }, "ssm-secure"),
		load(secrets, func(n string, b []byte) string { return f.SecretsManager.Put(n, string(b)) }, "secret"),
		load(objects, func(n string, b []byte) string {
			bucket, key, _ := strings.Cut(n, "/")
			return f.S3.Put(bucket, key, b)
		}, "s3"),
	)
	if err != nil {
		return err
	}
	for _, v := range faults {
		if err := queueFault(f, v); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	f.URL = "http://" + ln.Addr().String()
	srv := &http.Server{Handler: f.Handler()}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()

	env := f.Env()
	keys := make([]string, 0, len(env))
	for k := range env {
		if k == "AWS_CONFIG_FILE" || k == "AWS_SHARED_CREDENTIALS_FILE" {
			continue // a script decides whether to hide the user's files
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&out, "%s=%s\n", k, env[k])
	}
	for _, c := range comments {
		out.WriteString(c + "\n")
	}
	if *awsDir != "" {
		if err := writeAWSDir(*awsDir, f.URL, *region); err != nil {
			return err
		}
	}
	if *envFile != "" {
		if err := writeAtomic(*envFile, out.String()); err != nil {
			return err
		}
	}
	io.WriteString(stdout, out.String())
	if ready != nil {
		ready(f.URL)
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func queueFault(f *awsfake.Fakes, v string) error {
	p := strings.Split(v, ":")
	if len(p) < 2 || len(p) > 3 {
		return fmt.Errorf("-fail %q: want SERVICE:FAULT[:N]", v)
	}
	var svc *awsfake.Service
	switch p[0] {
	case "ssm":
		svc = &f.SSM.Service
	case "secretsmanager":
		svc = &f.SecretsManager.Service
	case "s3":
		svc = &f.S3.Service
	default:
		return fmt.Errorf("-fail %q: unknown service %q; want ssm, secretsmanager or s3", v, p[0])
	}
	fault, err := awsfake.ParseFault(p[1])
	if err != nil {
		return fmt.Errorf("-fail %q: %w", v, err)
	}
	n := 0
	if len(p) == 3 {
		if n, err = strconv.Atoi(p[2]); err != nil || n < 1 {
			return fmt.Errorf("-fail %q: N must be a positive number", v)
		}
	}
	svc.Fail(fault, n)
	return nil
}

// writeAWSDir writes shared config and credentials files whose profile
// "awsfake" points every service at the fakes.
func writeAWSDir(dir, url, region string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	config := fmt.Sprintf("[profile awsfake]\nregion = %s\nendpoint_url = %s\n", region, url)
	creds := fmt.Sprintf("[awsfake]\naws_access_key_id = %s\naws_secret_access_key = %s\n", awsfake.AccessKeyID, awsfake.SecretAccessKey)
	return errors.Join(
		writeAtomic(filepath.Join(dir, "config"), config),
		writeAtomic(filepath.Join(dir, "credentials"), creds),
	)
}

func writeAtomic(name, data string) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".awsfake-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
