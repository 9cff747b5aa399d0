package repl

import (
	"context"
	"runtime/debug"
)

// Version describes this build: the module version when built from a
// tagged module, else the VCS revision (with "+dirty" for uncommitted
// changes), then the Go version.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build information)"
	}
	return versionOf(bi)
}

func versionOf(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		switch {
		case rev != "":
			v = "revision " + rev[:min(len(rev), 12)]
			if modified == "true" {
				v += "+dirty"
			}
		default:
			v = "(devel)"
		}
	}
	return v + ", " + bi.GoVersion
}

func cmdVersion(_ context.Context, c *call, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	c.printf("p2pshare %s\n", Version())
	return nil
}
