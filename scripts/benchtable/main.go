// Command benchtable turns `go test -bench` output into the markdown table of
// bench/results.md: each figure next to its target from bench/targets.tsv and
// the ratio between them.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

type target struct {
	metric string
	value  float64
	note   string
}

var benchLine = regexp.MustCompile(`^(Benchmark[^\s]+?)(-\d+)?\s+\d+\s+(.*)$`)

// row is one line of the table.
type row struct{ name, metric, value, target, ratio, note string }

func main() {
	targetsPath := flag.String("targets", "bench/targets.tsv", "targets file")
	extra := flag.String("extra", "", "markdown lines to append (a file), e.g. the lab's figures")
	flag.Parse()

	rows, cpu := readBench(os.Stdin, readTargets(*targetsPath))
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].name < rows[j].name })

	fmt.Printf("# mcoad benchmark results\n\n")
	fmt.Printf("Date: %s  \nCPU: %s (%d cores, %s/%s)\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), cpuModel(cpu), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Println("Ratio is figure / target: at or under 1.00 meets a ceiling target.")
	fmt.Println()
	fmt.Println("| benchmark | metric | figure | target | ratio | what |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", strings.TrimPrefix(r.name, "Benchmark"), r.metric, r.value, r.target, r.ratio, r.note)
	}
	if *extra != "" {
		if b, err := os.ReadFile(*extra); err == nil {
			fmt.Printf("\n%s", b)
		}
	}
}

// readTargets reads the targets file (benchmark, metric, target, what,
// tab-separated), by benchmark; a missing file has none.
func readTargets(path string) map[string][]target {
	targets := map[string][]target{}
	f, err := os.Open(path)
	if err != nil {
		return targets
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Split(line, "\t")
		if len(fs) < 4 {
			continue
		}
		v, err := strconv.ParseFloat(fs[2], 64)
		if err != nil {
			continue
		}
		targets[fs[0]] = append(targets[fs[0]], target{fs[1], v, fs[3]})
	}
	return targets
}

// readBench turns `go test -bench` output into rows: each metric with a
// target against it, then the other per-op and per-second metrics (but
// B/op); it also returns the CPU the output names.
func readBench(r io.Reader, targets map[string][]target) (rows []row, cpu string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "cpu: ") {
			cpu = strings.TrimPrefix(line, "cpu: ")
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		rows = append(rows, benchRows(m[1], strings.Fields(m[3]), targets[m[1]])...)
	}
	return rows, cpu
}

// benchRows are the rows of benchmark name, whose figures are fields
// (value, unit, value, unit, ...).
func benchRows(name string, fields []string, targets []target) []row {
	var rows []row
	metrics := map[string]string{}
	var order []string
	for i := 0; i+1 < len(fields); i += 2 {
		metrics[fields[i+1]] = fields[i]
		order = append(order, fields[i+1])
	}
	shown := map[string]bool{}
	for _, t := range targets {
		v, ok := metrics[t.metric]
		if !ok {
			continue
		}
		shown[t.metric] = true
		f, _ := strconv.ParseFloat(v, 64)
		ratio := "-"
		if t.value > 0 {
			ratio = fmt.Sprintf("%.2f", f/t.value)
		} else if f == 0 {
			ratio = "met"
		} else {
			ratio = "MISSED"
		}
		rows = append(rows, row{name, t.metric, v, "≤ " + strconv.FormatFloat(t.value, 'f', -1, 64), ratio, t.note})
	}
	for _, k := range order {
		if shown[k] || k == "B/op" || (k != "ns/op" && k != "allocs/op" && !strings.Contains(k, "/")) {
			continue
		}
		rows = append(rows, row{name, k, metrics[k], "", "", ""})
	}
	return rows
}

func cpuModel(fromBench string) string {
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if i := strings.Index(l, ":"); i >= 0 {
					return strings.TrimSpace(l[i+1:])
				}
			}
		}
	}
	if fromBench != "" {
		return fromBench
	}
	return "unknown"
}
