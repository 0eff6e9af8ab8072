package fetcher

import (
	"time"

	"github.com/gmsa-hook/gmsa-hook/hook/config"
)

// Config is what a fetch is told: the configuration file's settings
// (package config owns the file).
type Config = config.Config

// conf carries the fetcher's methods on the settings.
type conf config.Config

func (c *conf) timeout() time.Duration { return (*config.Config)(c).TimeoutOrDefault() }
