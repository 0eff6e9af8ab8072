package awsremote

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/gmsa-hook/gmsa-hook/spec"
)

// The writes gmsa-hook credspec create makes, named for their IAM actions.
var (
	ssmPutService = awsService{"ssm", "parameter", "ssm:PutParameter"}
	s3PutService  = awsService{"s3", "object", "s3:PutObject"}
)

// Put writes a credential spec to an SSM parameter (a String parameter,
// replaced if it exists) or an S3 object, as the caller's AWS identity.
func (a *awsRemote) Put(ctx context.Context, dst spec.Source, data []byte) error {
	var svc awsService
	switch dst.Kind {
	case spec.SSM:
		svc = ssmPutService
	case spec.S3:
		svc = s3PutService
	default:
		return fmt.Errorf("%s: not an SSM parameter or S3 object", dst.Raw)
	}
	arn, err := spec.SplitARN(dst.ARN)
	if err != nil {
		return fmt.Errorf("%s %s %s: %w", svc.id, svc.noun, dst.ARN, err)
	}
	cfg, err := a.load(ctx)
	if err != nil {
		return fmt.Errorf("%s %s %s: %w", svc.id, svc.noun, dst.ARN, err)
	}
	if cfg.Credentials == nil {
		return a.fail(svc, dst.ARN, spec.ErrNoCredentials, nil, "no credential source")
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return a.fail(svc, dst.ARN, nil, ctx.Err(), "gave up getting AWS credentials: "+ctx.Err().Error())
		}
		return a.fail(svc, dst.ARN, spec.ErrNoCredentials, err, firstLine(err))
	}
	if dst.Kind == spec.SSM {
		region := a.region(cfg, arn)
		if region == "" {
			return fmt.Errorf("ssm parameter %s: no region in the ARN or the configuration", dst.ARN)
		}
		c := ssm.NewFromConfig(cfg, func(o *ssm.Options) {
			o.Region = region
			a.endpoint(ssmService, &o.BaseEndpoint)
			o.Retryer, o.RetryMaxAttempts = a.retryer(o.RetryMaxAttempts), 0
		})
		// PutParameter takes a name, not an ARN: the caller's own
		// account and the ARN's region.
		name := "/" + strings.TrimPrefix(strings.TrimPrefix(arn.Resource, "parameter"), "/")
		_, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(string(data)),
			Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true)})
		if err != nil {
			return a.failSDK(ctx, svc, dst.ARN, err)
		}
		return nil
	}
	bucket, key, _ := strings.Cut(arn.Resource, "/")
	if arn.Region != "" || arn.Account != "" || bucket == "" || key == "" {
		return fmt.Errorf("s3 object %s: want an object ARN arn:aws:s3:::BUCKET/KEY", dst.ARN)
	}
	region := a.region(cfg, arn)
	if region == "" {
		region = "us-east-1"
	}
	put := func(region string) error {
		c := s3.NewFromConfig(cfg, func(o *s3.Options) {
			o.Region = region
			a.endpoint(s3Service, &o.BaseEndpoint)
			o.UsePathStyle = o.UsePathStyle || o.BaseEndpoint != nil
			o.Retryer, o.RetryMaxAttempts = a.retryer(o.RetryMaxAttempts), 0
		})
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
			Body: bytes.NewReader(data), ContentType: aws.String("application/json")})
		return err
	}
	err = put(region)
	if r := bucketRegion(err); r != "" && r != region {
		err = put(r)
	}
	if err != nil {
		return a.failSDK(ctx, svc, dst.ARN, err)
	}
	return nil
}
