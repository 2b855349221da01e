//go:build !unix

package sqlitebroker

import "os"

const haveFlock = false

func tryFlock(*os.File) bool { return true }
func flock(*os.File) error   { return nil }
func funlock(*os.File)       {}
