package mn

import (
	"context"

	"github.com/mcoad/mcoad/pkg/config"
)

// watchConfig reloads the configuration each time its file changes (an
// editor saving, a configuration tool renaming a new file over it). Reload
// refuses a bad file with its errors and keeps the running configuration,
// so a half-edited file does no harm. Never fails the daemon: without a
// watch, SIGHUP and `mcoactl reload` still work.
func (d *Daemon) watchConfig(ctx context.Context) error {
	if d.opt.ConfigPath == "" {
		return nil
	}
	err := config.Watch(ctx, d.opt.ConfigPath, func() {
		d.log.Info("configuration file changed", "path", d.opt.ConfigPath)
		d.Reload(ctx) // logs what it applied or why it refused
	})
	if err != nil && ctx.Err() == nil {
		d.log.Warn("configuration file not watched; reload with SIGHUP or mcoactl reload", "path", d.opt.ConfigPath, "err", err)
	}
	return nil
}
