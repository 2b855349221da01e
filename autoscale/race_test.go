//go:build race

package autoscale

const raceEnabled = true
