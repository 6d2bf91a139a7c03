package mn

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/mcoad/mcoad/internal/sdjob"
)

type fakeCause struct {
	v     sdjob.Verdict
	err   error
	asked int
}

func (f *fakeCause) Ask(context.Context) (sdjob.Verdict, error) {
	f.asked++
	return f.v, f.err
}

func TestPlanStop(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name       string
		configured bool
		cause      *fakeCause
		want       stopPlan
	}{
		{"no service manager", true, nil, stopPlan{deregister: true}},
		{"restart", true, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Restart, Job: "restart"}}, stopPlan{keep: keepRestart}},
		{"try-restart", true, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Restart, Job: "try-restart"}}, stopPlan{keep: keepRestart}},
		{"stop", true, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Stop, Job: "stop"}}, stopPlan{deregister: true}},
		{"shutdown", true, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Shutdown}}, stopPlan{deregister: true}},
		{"kill without a job", true, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Unknown}}, stopPlan{deregister: true}},
		{"no answer", true, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Restart}, err: errors.New("no bus")}, stopPlan{deregister: true}},
		// Bindings kept by configuration: the data plane stays only for
		// a restart, or when no one tells.
		{"configured to keep, no service manager", false, nil, stopPlan{keep: keepConfigured}},
		{"configured to keep, stop", false, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Stop}}, stopPlan{}},
		{"configured to keep, shutdown", false, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Shutdown}}, stopPlan{}},
		{"configured to keep, restart", false, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Restart}}, stopPlan{keep: keepRestart}},
		{"configured to keep, no answer", false, &fakeCause{err: errors.New("no bus")}, stopPlan{keep: keepConfigured}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c StopCause
			if tc.cause != nil {
				c = tc.cause
			}
			if got := planStop(tc.configured, c, log); got != tc.want {
				t.Fatalf("planStop = %+v, want %+v", got, tc.want)
			}
		})
	}
}
