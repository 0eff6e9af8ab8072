package hook

import (
	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/spec"
	"github.com/gmsa-hook/gmsa-hook/spec/awsremote"
)

// newRemote reads credential specs and secrets kept in AWS.
func newRemote(cfg fetcher.Config) spec.Remote { return awsremote.New(cfg.AWS) }
