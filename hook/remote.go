package hook

import (
	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/spec"
)

// newRemote reads credential specs and secrets kept in AWS.
func newRemote(cfg fetcher.Config) spec.Remote { return spec.NewAWS(cfg.AWS) }
