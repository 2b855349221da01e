package simulate

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// WritePlot writes an SVG with two panels sharing the time axis: queue latency (with the
// SLA as a dashed line) and workers alive, one line per result (from its Timeline).
func WritePlot(w io.Writer, title string, sla float64, rs []Result) error {
	const (
		width, left, right = 960, 60, 220
		top, panel, gap    = 40, 220, 50
	)
	height := top + 2*panel + gap + 40
	colors := []string{"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"}
	tmax, lmax, wmax := 1.0, sla*1.2, 1.0
	for _, r := range rs {
		for _, p := range r.Timeline {
			tmax = math.Max(tmax, p.T)
			lmax = math.Max(lmax, p.Latency)
			wmax = math.Max(wmax, float64(p.Workers))
		}
	}
	lmax, wmax = niceCeil(lmax), niceCeil(wmax)
	pw := float64(width - left - right)
	x := func(t float64) float64 { return left + t/tmax*pw }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15">%s</text>`+"\n", left, html.EscapeString(title))
	panels := []struct {
		name string
		y0   int
		vmax float64
		val  func(Point) float64
	}{
		{"queue latency (s)", top, lmax, func(p Point) float64 { return p.Latency }},
		{"workers", top + panel + gap, wmax, func(p Point) float64 { return float64(p.Workers) }},
	}
	for pi, pn := range panels {
		y := func(v float64) float64 { return float64(pn.y0+panel) - v/pn.vmax*panel }
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%d" fill="none" stroke="#999"/>`+"\n", left, pn.y0, pw, panel)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", left, pn.y0-6, pn.name)
		for i := 0; i <= 4; i++ {
			v := pn.vmax * float64(i) / 4
			fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
				left, left+pw, y(v), y(v), left-4, y(v)+4, trimFloat(v))
		}
		for i := 0; i <= 6; i++ {
			t := tmax * float64(i) / 6
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(t), pn.y0+panel+14, clock(t))
		}
		if pi == 0 && sla > 0 {
			fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#000" stroke-dasharray="6 4"/><text x="%.0f" y="%.1f">SLA %ss</text>`+"\n",
				left, left+pw, y(sla), y(sla), left+pw+4, y(sla)+4, trimFloat(sla))
		}
		for ri := len(rs) - 1; ri >= 0; ri-- { // the first (the default) on top
			r := rs[ri]
			var pts strings.Builder
			for _, p := range r.Timeline {
				fmt.Fprintf(&pts, "%.1f,%.1f ", x(p.T), y(math.Min(pn.val(p), pn.vmax)))
			}
			width := 1.2
			if r.Default {
				width = 2.2
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="%.1f" points="%s"/>`+"\n", colors[ri%len(colors)], width, strings.TrimSpace(pts.String()))
		}
	}
	for ri, r := range rs {
		ly := top + 20 + ri*34
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>`, left+pw+12, left+pw+32, ly, ly, colors[ri%len(colors)])
		fmt.Fprintf(&b, `<text x="%.0f" y="%d">%s</text><text x="%.0f" y="%d" font-size="10">%s</text>`+"\n",
			left+pw+36, ly+4, html.EscapeString(r.Policy), left+pw+36, ly+17, html.EscapeString(ParamString(r.Params)))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	return strings.TrimSuffix(s, ".0")
}

func clock(t float64) string {
	s := int(t)
	return fmt.Sprintf("%d:%02d", s/3600, s%3600/60)
}
