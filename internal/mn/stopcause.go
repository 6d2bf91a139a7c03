package mn

import (
	"context"
	"log/slog"
	"time"

	"github.com/mcoad/mcoad/internal/sdjob"
)

// StopCause tells why mcoad is being stopped, when a service manager knows
// (sdjob.Client asks systemd). systemd sends the same SIGTERM for a stop
// and for a restart; only a stop should de-register.
type StopCause interface {
	Ask(ctx context.Context) (sdjob.Verdict, error)
}

// askTimeout bounds the question: systemd answers in milliseconds, and
// no answer means doing what the configuration says.
const askTimeout = 2 * time.Second

// deregisterOnStop decides whether a stopping mcoad de-registers: only
// when the configuration says so and the stop is not a restart (the next
// process continues on the same bindings: BIDs and sequence numbers are
// in state_dir). Without a StopCause, or when it cannot tell, the
// configuration decides, as it did before anyone asked.
func deregisterOnStop(configured bool, cause StopCause, log *slog.Logger) bool {
	if !configured || cause == nil {
		return configured
	}
	ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
	defer cancel()
	v, err := cause.Ask(ctx)
	if err != nil {
		log.Debug("stop: the service manager's job is unknown; de-registering as configured", "err", err)
		return true
	}
	switch v.Reason {
	case sdjob.Restart:
		log.Info("stop: restarting; the bindings stay for the next process", "unit", v.Unit, "job", v.Job)
		return false
	case sdjob.Stop, sdjob.Shutdown:
		log.Info("stop: de-registering", "unit", v.Unit, "reason", v.Reason, "job", v.Job)
	}
	return true
}
