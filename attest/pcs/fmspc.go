package pcs

import (
	"encoding/hex"
	"strings"

	"github.com/sharedenclave/sharedenclave/attest/dcap"
)

func equalFMSPC(s string, fmspc [6]byte) bool {
	return strings.EqualFold(s, hex.EncodeToString(fmspc[:]))
}

func parseFMSPC(tcbInfoBody []byte) (string, error) {
	ti, err := dcap.ParseTCBInfo(tcbInfoBody)
	if err != nil {
		return "", err
	}
	return ti.FMSPC, nil
}
