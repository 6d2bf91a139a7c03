package clock

import (
	"testing"
	"time"
)

func TestFakeFiresInOrder(t *testing.T) {
	f := NewFake(time.Unix(1000, 0))
	a := f.NewTimer(2 * time.Second)
	b := f.NewTimer(1 * time.Second)
	f.Advance(500 * time.Millisecond)
	select {
	case <-a.C():
		t.Fatal("a fired early")
	case <-b.C():
		t.Fatal("b fired early")
	default:
	}
	f.Advance(time.Second)
	select {
	case v := <-b.C():
		if want := time.Unix(1001, 0); !v.Equal(want) {
			t.Fatalf("b fired at %v, want %v", v, want)
		}
	default:
		t.Fatal("b did not fire")
	}
	if a.Reset(time.Second) != true {
		t.Fatal("reset of an active timer reported inactive")
	}
	f.Advance(900 * time.Millisecond)
	if got := f.Pending(); len(got) != 1 || got[0] != 100*time.Millisecond {
		t.Fatalf("pending = %v", got)
	}
	if !a.Stop() {
		t.Fatal("stop of an active timer reported inactive")
	}
	f.Advance(time.Hour)
	select {
	case <-a.C():
		t.Fatal("stopped timer fired")
	default:
	}
}

func TestFakeFiresPastDeadlineAtOnce(t *testing.T) {
	f := NewFake(time.Unix(1000, 0))
	tm := f.NewTimer(time.Hour)
	tm.Reset(0)
	select {
	case <-tm.C():
	default:
		t.Fatal("a timer reset to 0 did not fire")
	}
	if got := f.Pending(); len(got) != 0 {
		t.Fatalf("pending after firing: %v", got)
	}
	tm.Reset(-time.Second)
	select {
	case <-tm.C():
	default:
		t.Fatal("a timer reset to a past deadline did not fire")
	}
}
