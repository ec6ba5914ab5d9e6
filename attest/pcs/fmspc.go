package pcs

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/sharedenclave/sharedenclave/attest/dcap"
)

// checkFMSPC fails unless a TCB info body is for fmspc.
func checkFMSPC(tcbInfoBody []byte, fmspc [6]byte) error {
	ti, err := dcap.ParseTCBInfo(tcbInfoBody)
	if err != nil {
		return fmt.Errorf("pcs: TCB info: %v", err)
	}
	if !strings.EqualFold(ti.FMSPC, hex.EncodeToString(fmspc[:])) {
		return fmt.Errorf("pcs: TCB info is for FMSPC %s, the quote's platform is %X", ti.FMSPC, fmspc)
	}
	return nil
}

func parseFMSPC(tcbInfoBody []byte) (string, error) {
	ti, err := dcap.ParseTCBInfo(tcbInfoBody)
	if err != nil {
		return "", err
	}
	return ti.FMSPC, nil
}
