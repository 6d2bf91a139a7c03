// Command benchtable turns `go test -bench` output into the markdown table of
// bench/results.md: each figure next to its target from bench/targets.tsv and
// the ratio between them.
package main

import (
	"bufio"
	"flag"
	"fmt"
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

func main() {
	targetsPath := flag.String("targets", "bench/targets.tsv", "targets file")
	extra := flag.String("extra", "", "markdown lines to append (a file), e.g. the lab's figures")
	flag.Parse()

	targets := map[string][]target{}
	if f, err := os.Open(*targetsPath); err == nil {
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
		f.Close()
	}

	type row struct{ name, metric, value, target, ratio, note string }
	var rows []row
	cpu := ""
	sc := bufio.NewScanner(os.Stdin)
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
		name := m[1]
		fields := strings.Fields(m[3])
		metrics := map[string]string{}
		var order []string
		for i := 0; i+1 < len(fields); i += 2 {
			metrics[fields[i+1]] = fields[i]
			order = append(order, fields[i+1])
		}
		shown := map[string]bool{}
		for _, t := range targets[name] {
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
			if shown[k] || (k != "ns/op" && k != "allocs/op" && k != "B/op" && !strings.Contains(k, "/")) {
				continue
			}
			if k == "B/op" {
				continue
			}
			rows = append(rows, row{name, k, metrics[k], "", "", ""})
		}
	}
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
