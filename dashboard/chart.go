package dashboard

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/briskq/brisk/internal/humanize"
)

// Chart geometry in SVG user units (the SVG scales to its container).
const (
	chartW, chartH = 720.0, 180.0
	padL, padB     = 52.0, 20.0
	padT, padR     = 8.0, 8.0
	// decisionTick is the length of an autoscaler decision's tick from the plot's top.
	decisionTick = 8.0
)

// latencyChart draws a queue's latency over the window ending now as an inline SVG, with
// its SLA as a dashed line and the autoscaler's decisions as ticks along the top, each
// with its desired count and, on hover, "current → desired: reason". It contains numbers,
// fixed text and the escaped reasons, so it is safe HTML.
func latencyChart(samples []sample, sla time.Duration, decisions []decision, now time.Time, window time.Duration) template.HTML {
	top := time.Second
	for _, s := range samples {
		top = max(top, s.latency)
	}
	if sla > 0 {
		top = max(top, sla*5/4)
	}
	start := now.Add(-window)
	plotW, plotH := chartW-padL-padR, chartH-padT-padB
	x := func(t time.Time) float64 { return padL + plotW*float64(t.Sub(start))/float64(window) }
	y := func(d time.Duration) float64 { return padT + plotH*(1-float64(d)/float64(top)) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="queue latency over the last hour">`, chartW, chartH)
	fmt.Fprintf(&b, `<rect class="plot" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, padL, padT, plotW, plotH)
	for _, f := range []float64{0, 0.5, 1} {
		d := time.Duration(float64(top) * f)
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, padL, y(d), padL+plotW, y(d))
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, padL-4, y(d)+4, humanize.Duration(d.Round(time.Millisecond)))
	}
	for _, m := range []int{60, 45, 30, 15, 0} {
		t := now.Add(-time.Duration(m) * time.Minute)
		label, anchor := "now", "end"
		if m > 0 {
			label, anchor = fmt.Sprintf("−%dm", m), "middle"
		}
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="%s">%s</text>`, x(t), chartH-4, anchor, label)
	}
	if sla > 0 {
		fmt.Fprintf(&b, `<line class="sla" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, padL, y(sla), padL+plotW, y(sla))
		fmt.Fprintf(&b, `<text class="sla-label" x="%.1f" y="%.1f" text-anchor="end">SLA %s</text>`, padL+plotW-4, y(sla)-4, humanize.Duration(sla))
	}
	var pts []string
	for _, s := range samples {
		if s.at.Before(start) {
			continue
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.at), y(s.latency)))
	}
	switch len(pts) {
	case 0:
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="middle">no samples yet</text>`, padL+plotW/2, padT+plotH/2)
	case 1:
		fmt.Fprintf(&b, `<circle class="latency-dot" cx="%s" cy="%s" r="3"/>`, strings.Split(pts[0], ",")[0], strings.Split(pts[0], ",")[1])
	default:
		fmt.Fprintf(&b, `<polyline class="latency" points="%s"/>`, strings.Join(pts, " "))
	}
	drawn := 0
	for _, d := range decisions {
		if d.Time.Before(start) {
			continue
		}
		dx := x(d.Time)
		if d.Time.After(now) { // the autoscaler's clock is ahead
			dx = x(now)
		}
		fmt.Fprintf(&b, `<g class="decision"><title>%s</title>`, template.HTMLEscapeString(fmt.Sprintf("%s %d → %d: %s",
			d.Time.Local().Format("15:04:05"), d.Current, d.Desired, d.Reason)))
		fmt.Fprintf(&b, `<line class="decision-tick" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, dx, padT, dx, padT+decisionTick)
		fmt.Fprintf(&b, `<text class="decision-count" x="%.1f" y="%.1f" text-anchor="middle">%d</text></g>`, dx, padT+decisionTick+10, d.Desired)
		drawn++
	}
	if drawn > 0 {
		lx, ly := padL+6, padT+plotH-6
		fmt.Fprintf(&b, `<g class="legend"><line class="decision-tick" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, lx, ly-9, lx, ly+1)
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f">autoscaler decisions (desired workers)</text></g>`, lx+5, ly)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // numbers, fixed text and escaped reasons only
}
