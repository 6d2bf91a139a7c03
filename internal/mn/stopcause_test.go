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

func TestDeregisterOnStop(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name       string
		configured bool
		cause      *fakeCause
		want       bool
	}{
		{"no service manager", true, nil, true},
		{"restart", true, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Restart, Job: "restart"}}, false},
		{"try-restart", true, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Restart, Job: "try-restart"}}, false},
		{"stop", true, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Stop, Job: "stop"}}, true},
		{"shutdown", true, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Shutdown}}, true},
		{"kill without a job", true, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Unknown}}, true},
		{"no answer", true, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Restart}, err: errors.New("no bus")}, true},
		{"configured to keep, stop", false, &fakeCause{v: sdjob.Verdict{Reason: sdjob.Stop}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c StopCause
			if tc.cause != nil {
				c = tc.cause
			}
			if got := deregisterOnStop(tc.configured, c, log); got != tc.want {
				t.Fatalf("deregisterOnStop = %v, want %v", got, tc.want)
			}
			// Keeping the bindings by configuration needs no question.
			if !tc.configured && tc.cause.asked != 0 {
				t.Fatalf("asked the service manager %d times", tc.cause.asked)
			}
		})
	}
}
