package attest

import (
	"encoding/hex"
	"encoding/json"
	"time"
)

// TCBStatus is a platform or QE TCB status as Intel reports it.
type TCBStatus string

// The statuses, in increasing order of severity (see Severity).
const (
	UpToDate                          TCBStatus = "UpToDate"
	SWHardeningNeeded                 TCBStatus = "SWHardeningNeeded"
	ConfigurationNeeded               TCBStatus = "ConfigurationNeeded"
	ConfigurationAndSWHardeningNeeded TCBStatus = "ConfigurationAndSWHardeningNeeded"
	OutOfDate                         TCBStatus = "OutOfDate"
	OutOfDateConfigurationNeeded      TCBStatus = "OutOfDateConfigurationNeeded"
	Revoked                           TCBStatus = "Revoked"
)

var severity = map[TCBStatus]int{
	UpToDate:                          0,
	SWHardeningNeeded:                 1,
	ConfigurationNeeded:               2,
	ConfigurationAndSWHardeningNeeded: 3,
	OutOfDate:                         4,
	OutOfDateConfigurationNeeded:      5,
	Revoked:                           6,
}

// Severity orders statuses from UpToDate (0) to Revoked (6). An unknown
// status is more severe than any known one.
func (s TCBStatus) Severity() int {
	if v, ok := severity[s]; ok {
		return v
	}
	return 100
}

// Known reports whether s is one of the statuses above.
func (s TCBStatus) Known() bool { _, ok := severity[s]; return ok }

// Worse returns the more severe of a and b.
func Worse(a, b TCBStatus) TCBStatus {
	if b.Severity() > a.Severity() {
		return b
	}
	return a
}

// Hash32 is a 32-byte measurement, printed and parsed as hex.
type Hash32 [32]byte

func (h Hash32) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes h as lower-case hex.
func (h Hash32) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes 64 hex digits.
func (h *Hash32) UnmarshalText(b []byte) error {
	v, err := ParseHash32(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHash32 decodes 64 hex digits.
func ParseHash32(s string) (Hash32, error) {
	var h Hash32
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return h, &PolicyError{Rule: "measurement", Reason: "want 64 hex digits"}
	}
	copy(h[:], b)
	return h, nil
}

// Report is what a verified quote says about the enclave and its platform.
type Report struct {
	MREnclave  Hash32   `json:"mrenclave"`
	MRSigner   Hash32   `json:"mrsigner"`
	ISVProdID  uint16   `json:"isvprodid"`
	ISVSVN     uint16   `json:"isvsvn"`
	Attributes HexBytes `json:"attributes"`
	Debug      bool     `json:"debug"`
	ReportData HexBytes `json:"report_data"`

	TCBStatus   TCBStatus `json:"tcb_status"`
	AdvisoryIDs []string  `json:"advisory_ids"`
	FMSPC       HexBytes  `json:"fmspc"`
	// PlatformStatus and QEStatus are the two statuses TCBStatus merges.
	PlatformStatus TCBStatus `json:"platform_status"`
	QEStatus       TCBStatus `json:"qe_status"`
	// CollateralExpiry is the earliest nextUpdate of the collateral used.
	CollateralExpiry time.Time `json:"collateral_expiry"`
	// Simulated is true when the quote chained to a simulated root.
	Simulated bool `json:"simulated"`
	// RootSubject names the trusted root the quote chained to.
	RootSubject string `json:"root_subject"`
}

// HexBytes is a byte slice printed as hex in JSON.
type HexBytes []byte

// MarshalJSON encodes b as a hex string.
func (b HexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(b)) }

// UnmarshalJSON decodes a hex string.
func (b *HexBytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}
