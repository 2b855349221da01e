//go:build !unix

package autoscale

import "os/exec"

func setProcAttr(*exec.Cmd) {}

// terminateProcess kills: there is no SIGTERM on this system.
func terminateProcess(cmd *exec.Cmd) error { return cmd.Process.Kill() }
