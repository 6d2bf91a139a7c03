package lab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A command's warnings on stderr never reach the data, and a netlink dump
// that raced a change is run again.
func TestOutputStdoutOnlyAndRetry(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "n")
	// Interrupted twice (a half dump and the warning), then whole.
	script := `n=$(cat ` + count + ` 2>/dev/null || echo 0); echo $((n+1)) > ` + count + `
if [ "$n" -lt 2 ]; then echo '[{"ifname":'; echo "Dump was interrupted and may be inconsistent." >&2; exit 0; fi
echo "a warning" >&2; echo '[{"ifname":"eth0"}]'`
	out, err := output(context.Background(), "", "sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "[{\"ifname\":\"eth0\"}]\n" {
		t.Errorf("output %q: want the third run's stdout alone", out)
	}
	if b, _ := os.ReadFile(count); string(b) != "3\n" {
		t.Errorf("ran %q times, want 3", b)
	}

	// A failure carries both streams.
	_, err = output(context.Background(), "in", "sh", "-c", `cat; echo oops >&2; exit 3`)
	var ee *ExecError
	if !errors.As(err, &ee) || string(ee.Output) != "inoops\n" {
		t.Errorf("error %v: want an ExecError with stdout and stderr", err)
	}
}
