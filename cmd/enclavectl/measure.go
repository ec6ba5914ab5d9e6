package main

import (
	"fmt"
	"io"

	"github.com/sharedenclave/sharedenclave/attest/sim"
)

// measure prints the simulated MRENCLAVE of a binary (its SHA-256), and
// with --sim-dir the MRSIGNER every enclave of that platform has: the
// values a --simulation policy names. Under SGX, use the values
// deploy/gramine/build.sh prints from gramine-sgx-sigstruct-view.
func measure(args []string, stdout, stderr io.Writer) int {
	fs := newFlagsHelpOut("measure", "measure BINARY [--sim-dir DIR]", args, stdout, stderr)
	simDir := fs.String("sim-dir", "", "also print the simulated platform's MRSIGNER")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != 1 {
		return usageErr(stderr, fs, "want one BINARY")
	}
	mr, err := sim.FileMeasurement(pos[0])
	if err != nil {
		return fail(stderr, "measure", err, "give the path of a binary (relayd, kmsd, example-client) as built for the enclave")
	}
	if *simDir == "" {
		fmt.Fprintln(stdout, mr)
		return 0
	}
	p, err := sim.Load(*simDir)
	if err != nil {
		return fail(stderr, "measure", err, "--sim-dir must be a platform made by `enclavectl sim init DIR` (relayd --simulation makes .sim)")
	}
	// Lines of a policy file's [peers] table, as policyfile reads them.
	fmt.Fprintf(stdout, "mrenclave = [%q]\nmrsigner = [%q]\n", mr.String(), p.MRSigner().String())
	return 0
}
