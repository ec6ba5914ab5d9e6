package pcs

import (
	"encoding/hex"
	"strings"
)

func equalFMSPC(s string, fmspc [6]byte) bool {
	return strings.EqualFold(s, hex.EncodeToString(fmspc[:]))
}
