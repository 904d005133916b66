package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// row is one reported figure: git-sync's median, the floor's median (when
// there is a floor for it), and the target it is held to.
type row struct {
	Scenario  string    `json:"scenario"`
	Repo      string    `json:"repo"`
	Transport string    `json:"transport"`
	Metric    string    `json:"metric"`
	Unit      string    `json:"unit"`
	GitSync   float64   `json:"gitsync"`
	Floor     *float64  `json:"floor,omitempty"`
	GSSamples []float64 `json:"gitsync_samples,omitempty"`
	FlSamples []float64 `json:"floor_samples,omitempty"`
	// At most one of the three targets is set: a ratio ceiling, a ratio
	// floor (for "higher is better" figures), or an absolute ceiling.
	MaxRatio float64 `json:"max_ratio,omitempty"`
	MinRatio float64 `json:"min_ratio,omitempty"`
	MaxAbs   float64 `json:"max_abs,omitempty"`
	// TargetText, when set, describes a condition checked by the scenario
	// itself, which also sets Pass.
	TargetText string `json:"target_text,omitempty"`
	Pass       *bool  `json:"pass,omitempty"`
	Note       string `json:"note,omitempty"`
}

// median returns the median of xs (NaN for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio returns git-sync over floor, or NaN when undefined.
func (r *row) ratio() float64 {
	if r.Floor == nil {
		return math.NaN()
	}
	switch {
	case *r.Floor == 0 && r.GitSync == 0:
		return 1
	case *r.Floor == 0:
		return math.Inf(1)
	}
	return r.GitSync / *r.Floor
}

func (r *row) evaluate() {
	var ok bool
	switch {
	case r.MaxRatio > 0:
		ok = r.ratio() <= r.MaxRatio
	case r.MinRatio > 0:
		ok = r.ratio() >= r.MinRatio
	case r.MaxAbs > 0:
		ok = r.GitSync <= r.MaxAbs
	default:
		return
	}
	r.Pass = &ok
}

func (r *row) target() string {
	switch {
	case r.TargetText != "":
		return r.TargetText
	case r.MaxRatio > 0:
		return fmt.Sprintf("≤ %.2f×", r.MaxRatio)
	case r.MinRatio > 0:
		return fmt.Sprintf("≥ %.2f×", r.MinRatio)
	case r.MaxAbs > 0:
		return "≤ " + formatValue(r.MaxAbs, r.Unit)
	}
	return ""
}

// addRatio records a figure measured for both git-sync and the floor.
func (b *bench) addRatio(scenario, repo, transport, metric, unit string, gs, fl []float64, maxRatio, minRatio float64, note string) *row {
	f := median(fl)
	r := &row{Scenario: scenario, Repo: repo, Transport: transport, Metric: metric, Unit: unit,
		GitSync: median(gs), Floor: &f, GSSamples: gs, FlSamples: fl,
		MaxRatio: maxRatio, MinRatio: minRatio, Note: note}
	r.evaluate()
	b.results = append(b.results, r)
	b.logf("  %s %s %s %s: git-sync %s, floor %s, ratio %s %s", scenario, repo, transport, metric,
		formatValue(r.GitSync, unit), formatValue(f, unit), formatRatio(r.ratio()), passMark(r))
	return r
}

// addSlowest records a figure where every run counts: git-sync's slowest
// sample against the floor's slowest, with git-sync's held to an absolute
// ceiling.
func (b *bench) addSlowest(scenario, repo, transport, metric, unit string, gs, fl []float64, maxAbs float64, note string) *row {
	f := maxOf(fl)
	r := &row{Scenario: scenario, Repo: repo, Transport: transport, Metric: metric, Unit: unit,
		GitSync: maxOf(gs), Floor: &f, GSSamples: gs, FlSamples: fl, MaxAbs: maxAbs, Note: note}
	r.evaluate()
	b.results = append(b.results, r)
	b.logf("  %s %s %s %s: git-sync %s, floor %s %s", scenario, repo, transport, metric,
		formatValue(r.GitSync, unit), formatValue(f, unit), passMark(r))
	return r
}

// addAbs records a figure that has no floor, held to an absolute ceiling
// (maxAbs 0: reported only).
func (b *bench) addAbs(scenario, repo, transport, metric, unit string, gs []float64, maxAbs float64, note string) *row {
	r := &row{Scenario: scenario, Repo: repo, Transport: transport, Metric: metric, Unit: unit,
		GitSync: median(gs), GSSamples: gs, MaxAbs: maxAbs, Note: note}
	r.evaluate()
	b.results = append(b.results, r)
	b.logf("  %s %s %s %s: git-sync %s %s", scenario, repo, transport, metric, formatValue(r.GitSync, unit), passMark(r))
	return r
}

func passMark(r *row) string {
	if r.Pass == nil {
		return ""
	}
	if *r.Pass {
		return "ok"
	}
	return "MISSED"
}

func formatRatio(x float64) string {
	switch {
	case math.IsNaN(x):
		return ""
	case math.IsInf(x, 1):
		return "∞"
	}
	return fmt.Sprintf("%.2f×", x)
}

func formatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "–"
	}
	if math.IsInf(v, 1) {
		return "∞"
	}
	switch unit {
	case "ms":
		if v >= 100 {
			return fmt.Sprintf("%.0f ms", v)
		}
		return fmt.Sprintf("%.2f ms", v)
	case "s":
		return fmt.Sprintf("%.2f s", v)
	case "B":
		switch {
		case v >= 1<<20:
			return fmt.Sprintf("%.2f MiB", v/(1<<20))
		case v >= 10<<10:
			return fmt.Sprintf("%.1f KiB", v/(1<<10))
		}
		return fmt.Sprintf("%.0f B", v)
	case "MiB":
		return fmt.Sprintf("%.2f MiB", v)
	case "×":
		return fmt.Sprintf("%.2f×", v)
	case "/s":
		return fmt.Sprintf("%.1f/s", v)
	case "":
		if v == math.Trunc(v) {
			return fmt.Sprintf("%.0f", v)
		}
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.2f %s", v, unit)
}

// printTable prints every figure as a Markdown table (readable as is, and
// pasted into docs/PERFORMANCE.md), then the notes, and returns how many
// targets were missed.
func (b *bench) printTable(w io.Writer) int {
	header := []string{"scenario", "repo", "transport", "metric", "git-sync", "floor", "ratio", "target", "met"}
	rows := [][]string{header}
	missed, met := 0, 0
	for _, r := range b.results {
		fl := "–"
		if r.Floor != nil {
			fl = formatValue(*r.Floor, r.Unit)
		}
		mark := ""
		if r.Pass != nil {
			if *r.Pass {
				mark = "yes"
				met++
			} else {
				mark = "**NO**"
				missed++
			}
		}
		rows = append(rows, []string{r.Scenario, r.Repo, r.Transport, r.Metric,
			formatValue(r.GitSync, r.Unit), fl, formatRatio(r.ratio()), r.target(), mark})
	}
	widths := make([]int, len(header))
	for _, rw := range rows {
		for i, c := range rw {
			if n := len([]rune(c)); n > widths[i] {
				widths[i] = n
			}
		}
	}
	line := func(cells []string) {
		var sb strings.Builder
		sb.WriteString("|")
		for i, c := range cells {
			sb.WriteString(" " + c + strings.Repeat(" ", widths[i]-len([]rune(c))) + " |")
		}
		fmt.Fprintln(w, sb.String())
	}
	line(rows[0])
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
	}
	line(sep)
	for _, rw := range rows[1:] {
		line(rw)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Targets met: %d of %d.\n", met, met+missed)
	var notes []string
	for _, r := range b.results {
		if r.Note != "" {
			notes = append(notes, fmt.Sprintf("- %s / %s / %s / %s: %s", r.Scenario, r.Repo, r.Transport, r.Metric, r.Note))
		}
	}
	var failures []string
	for k, v := range b.info {
		if strings.HasPrefix(k, "failed: ") {
			failures = append(failures, fmt.Sprintf("- %s: %s", k, v))
		}
	}
	sort.Strings(failures)
	if len(notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Notes:")
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	if len(failures) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Scenario failures:")
		fmt.Fprintln(w)
		for _, f := range failures {
			fmt.Fprintln(w, f)
		}
	}
	return missed
}
