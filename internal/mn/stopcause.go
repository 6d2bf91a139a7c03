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

// Why a stop keeps the data plane for the next process (stopPlan.keep);
// the marker in state_dir says which (dataplane.go).
const (
	// keepRestart: the service manager restarts mcoad; its ExecStopPost
	// (`mcoad -cleanup`) leaves the kept data plane alone once.
	keepRestart = "restart"
	// keepConfigured: deregister_on_stop = false without a service
	// manager that tells (or answers); `mcoad -cleanup` removes it.
	keepConfigured = "deregister_on_stop"
)

// stopPlan is what a stopping mcoad does: de-register its bindings, or
// keep them, and then also its data plane (keep is why, "" not).
type stopPlan struct {
	deregister bool
	keep       string
}

// planStop decides whether a stopping mcoad de-registers: only when the
// configuration says so and the stop is not a restart (the next process
// continues on the same bindings: BIDs and sequence numbers are in
// state_dir). Without a StopCause, or when it cannot tell, the
// configuration decides, as it did before anyone asked. Bindings kept
// keep the data plane too (tunnels, rules, table), for the next process to
// adopt, except on a stop or shutdown the service manager names: that
// removes it whatever the bindings do.
func planStop(configured bool, cause StopCause, log *slog.Logger) stopPlan {
	byConfig := stopPlan{deregister: configured}
	if !configured {
		byConfig.keep = keepConfigured
	}
	if cause == nil {
		return byConfig
	}
	ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
	defer cancel()
	v, err := cause.Ask(ctx)
	if err != nil {
		log.Debug("stop: the service manager's job is unknown; de-registering as configured", "err", err, "deregister", configured)
		return byConfig
	}
	switch v.Reason {
	case sdjob.Restart:
		log.Info("stop: restarting; the bindings and the data plane stay for the next process", "unit", v.Unit, "job", v.Job)
		return stopPlan{keep: keepRestart}
	case sdjob.Stop, sdjob.Shutdown:
		if configured {
			log.Info("stop: de-registering", "unit", v.Unit, "reason", v.Reason, "job", v.Job)
		}
	}
	return stopPlan{deregister: configured}
}
