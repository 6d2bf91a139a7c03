package correspondent

import (
	"errors"
	"testing"

	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

func TestCheckBindings(t *testing.T) {
	if _, err := checkBindings([]Binding{{HoA: pkttest.THoA, BID: 1, CoA: pkttest.TCoA[0]}}); !errors.Is(err, dataplane.ErrInvalid) {
		t.Errorf("binding without local address: %v", err)
	}
}
