package control

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// The TCP metrics listener serves /metrics and nothing of the control API.
func TestServeMetricsTCP(t *testing.T) {
	ts := startServer(t, Config{HA: &fakeHA{}, Metrics: MetricsFunc(func() []Metric {
		return []Metric{{Name: "mcoa_test_value", Help: "A test value.", Type: Gauge, Samples: []Sample{{Value: 42}}}}
	})})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.srv.ServeMetrics(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeMetrics: %v", err)
		}
	})
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + l.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "mcoa_test_value 42") {
		t.Fatalf("GET /metrics: %d %q", code, body)
	}
	if code, _ := get("/v1/cache"); code != http.StatusNotFound {
		t.Fatalf("GET /v1/cache over TCP: %d, want 404", code)
	}
}
