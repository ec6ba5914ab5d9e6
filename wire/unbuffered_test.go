package wire

import (
	"bufio"
	"io"
)

// newUnbuffered wraps r in the smallest bufio.Reader, so that reads reach
// r in small steps and a test sees exactly how far the decoder read.
func newUnbuffered(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 16) }
