package dcap_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
)

// qvlSkipped is set when the differential test against @phala/dcap-qvl
// skipped because node or the package is missing.
var qvlSkipped atomic.Bool

const qvlSkipNotice = "attest/dcap: NOTE: the differential test against @phala/dcap-qvl was SKIPPED (node or the package is missing): install Node.js, then run: npm ci --prefix testdata/qvl\n"

// TestMain says, after the tests, when the differential test skipped.
// `go test ./...` prints nothing of a package that passes, not even this
// line, so it also goes to the terminal (/dev/tty) when there is one: a
// developer at a terminal sees it under the summary. CI has no terminal;
// there SHARED_ENCLAVE_REQUIRE_QVL=1 turns the skip into a failure.
func TestMain(m *testing.M) {
	code := m.Run()
	if qvlSkipped.Load() {
		fmt.Print(qvlSkipNotice)
		if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
			fmt.Fprint(tty, qvlSkipNotice)
			tty.Close()
		}
	}
	os.Exit(code)
}
