package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/gmsa-hook/gmsa-hook/test/awsfake"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.json")
	secret := filepath.Join(dir, "secret.json")
	os.WriteFile(spec, []byte(`{"spec":1}`), 0o600)
	os.WriteFile(secret, []byte(`{"username":"u"}`), 0o600)
	envFile := filepath.Join(dir, "aws.env")
	awsDir := filepath.Join(dir, "aws")

	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr bytes.Buffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"-env", envFile, "-aws-dir", awsDir,
			"-ssm", "/gmsa/webapp01=" + spec, "-ssm-secure", "/gmsa/secure=" + spec,
			"-secret", "gmsa/reader=" + secret, "-s3", "specs/webapp01.json=" + spec,
			"-fail", "ssm:throttle:1",
		}, &stdout, &stderr, func(url string) { ready <- url })
	}()
	var url string
	select {
	case url = <-ready:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	smARN := awsfake.New(awsfake.Options{}).SecretsManager.ARN("gmsa/reader")
	want := "AWS_ACCESS_KEY_ID=" + awsfake.AccessKeyID + "\n" +
		"AWS_EC2_METADATA_DISABLED=true\n" +
		"AWS_ENDPOINT_URL=" + url + "\n" +
		"AWS_REGION=us-west-2\n" +
		"AWS_SECRET_ACCESS_KEY=" + awsfake.SecretAccessKey + "\n" +
		"# ssm /gmsa/webapp01 arn:aws:ssm:us-west-2:111122223333:parameter/gmsa/webapp01\n" +
		"# ssm-secure /gmsa/secure arn:aws:ssm:us-west-2:111122223333:parameter/gmsa/secure\n" +
		"# secret gmsa/reader " + smARN + "\n" +
		"# s3 specs/webapp01.json arn:aws:s3:::specs/webapp01.json\n"
	if got := stdout.String(); got != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
	}
	if b, _ := os.ReadFile(envFile); string(b) != want {
		t.Errorf("env file:\n%s", b)
	}

	// The files under -aws-dir are all a program with no environment needs.
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithSharedConfigProfile("awsfake"),
		config.WithSharedConfigFiles([]string{filepath.Join(awsDir, "config")}),
		config.WithSharedCredentialsFiles([]string{filepath.Join(awsDir, "credentials")}),
		config.WithRetryMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	c := ssm.NewFromConfig(cfg)
	in := &ssm.GetParameterInput{Name: aws.String("arn:aws:ssm:us-west-2:111122223333:parameter/gmsa/webapp01")}
	_, err = c.GetParameter(ctx, in)
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "ThrottlingException" {
		t.Errorf("first GetParameter: %v, want the queued throttle", err)
	}
	out, err := c.GetParameter(ctx, in)
	if err != nil || *out.Parameter.Value != `{"spec":1}` {
		t.Errorf("GetParameter: %v", err)
	}
	sv, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("arn:aws:secretsmanager:us-west-2:111122223333:secret:gmsa/reader")})
	if err != nil || *sv.SecretString != `{"username":"u"}` {
		t.Errorf("GetSecretValue: %v", err)
	}
	obj, err := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("specs"), Key: aws.String("webapp01.json")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	b, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if string(b) != `{"spec":1}` {
		t.Errorf("object = %q", b)
	}
}

func TestRunErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("x"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"argument", []string{"x"}, `unexpected argument "x"`},
		{"no file", []string{"-ssm", "/p"}, `-ssm "/p": want NAME=FILE`},
		{"missing file", []string{"-secret", "s=/nonexistent"}, "-secret s: open /nonexistent: no such file or directory"},
		{"s3 without key", []string{"-s3", "bucket=" + file}, `-s3 "bucket=` + file + `": want BUCKET/KEY=FILE`},
		{"fail service", []string{"-fail", "sts:throttle"}, `-fail "sts:throttle": unknown service "sts"; want ssm, secretsmanager or s3`},
		{"fail fault", []string{"-fail", "ssm:slow"}, `-fail "ssm:slow": unknown fault "slow": want throttle, access-denied, internal-error, unavailable or garbled`},
		{"fail count", []string{"-fail", "ssm:throttle:0"}, `-fail "ssm:throttle:0": N must be a positive number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, io.Discard, io.Discard, nil)
			if err == nil || err.Error() != tt.want {
				t.Errorf("run(%q) = %v, want %s", tt.args, err, tt.want)
			}
		})
	}
}
