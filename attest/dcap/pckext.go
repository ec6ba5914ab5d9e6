package dcap

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
)

// OIDs of Intel's SGX extensions in PCK certificates.
var (
	OIDSGXExtensions      = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	oidPPID               = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 1}
	oidTCB                = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2}
	oidPCEID              = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 3}
	oidFMSPC              = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 4}
	oidSGXType            = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 5}
	oidPlatformInstanceID = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 6}
)

// PCKExtensions holds the SGX extensions of a PCK certificate.
type PCKExtensions struct {
	PPID               [16]byte
	CompSVN            [16]uint8 // TCB components .2.1 … .2.16
	PCESVN             uint16    // .2.17
	CPUSVN             [16]byte  // .2.18
	PCEID              [2]byte
	FMSPC              [6]byte
	SGXType            int
	PlatformInstanceID []byte // platform CA certificates only
}

type oidValue struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue
}

// ParsePCKExtensions reads the SGX extensions of cert. Every field Intel
// defines for both processor and platform PCK certificates must be present
// exactly once; unknown entries are ignored.
func ParsePCKExtensions(cert *x509.Certificate) (*PCKExtensions, error) {
	var raw []byte
	for _, e := range cert.Extensions {
		if e.Id.Equal(OIDSGXExtensions) {
			if raw != nil {
				return nil, fmt.Errorf("dcap: PCK certificate has two SGX extensions")
			}
			raw = e.Value
		}
	}
	if raw == nil {
		return nil, fmt.Errorf("dcap: PCK certificate has no SGX extension (%s)", OIDSGXExtensions)
	}
	return ParseSGXExtension(raw)
}

// ParseSGXExtension parses the DER value of the SGX extension.
func ParseSGXExtension(raw []byte) (*PCKExtensions, error) {
	var entries []oidValue
	if rest, err := asn1.Unmarshal(raw, &entries); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("dcap: SGX extension is not a sequence of (OID, value): %v", err)
	}
	ext := new(PCKExtensions)
	seen := map[string]bool{}
	for _, e := range entries {
		key := e.ID.String()
		if seen[key] {
			return nil, fmt.Errorf("dcap: SGX extension %s appears twice", key)
		}
		seen[key] = true
		var err error
		switch {
		case e.ID.Equal(oidPPID):
			err = octets(e.Value, ext.PPID[:])
		case e.ID.Equal(oidTCB):
			err = parseTCBExt(e.Value, ext)
		case e.ID.Equal(oidPCEID):
			err = octets(e.Value, ext.PCEID[:])
		case e.ID.Equal(oidFMSPC):
			err = octets(e.Value, ext.FMSPC[:])
		case e.ID.Equal(oidSGXType):
			var v asn1.Enumerated
			err = unmarshalAll(e.Value.FullBytes, &v)
			ext.SGXType = int(v)
		case e.ID.Equal(oidPlatformInstanceID):
			err = unmarshalAll(e.Value.FullBytes, &ext.PlatformInstanceID)
		}
		if err != nil {
			return nil, fmt.Errorf("dcap: SGX extension %s: %w", key, err)
		}
	}
	for _, want := range []asn1.ObjectIdentifier{oidPPID, oidTCB, oidPCEID, oidFMSPC, oidSGXType} {
		if !seen[want.String()] {
			return nil, fmt.Errorf("dcap: SGX extension %s is missing", want)
		}
	}
	return ext, nil
}

func unmarshalAll(b []byte, v any) error {
	rest, err := asn1.Unmarshal(b, v)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes", len(rest))
	}
	return nil
}

func octets(v asn1.RawValue, dst []byte) error {
	var b []byte
	if err := unmarshalAll(v.FullBytes, &b); err != nil {
		return err
	}
	if len(b) != len(dst) {
		return fmt.Errorf("%d bytes, want %d", len(b), len(dst))
	}
	copy(dst, b)
	return nil
}

func parseTCBExt(v asn1.RawValue, ext *PCKExtensions) error {
	var entries []oidValue
	if err := unmarshalAll(v.FullBytes, &entries); err != nil {
		return err
	}
	seen := map[int]bool{}
	for _, e := range entries {
		if len(e.ID) != len(oidTCB)+1 || !e.ID[:len(oidTCB)].Equal(oidTCB) {
			continue
		}
		n := e.ID[len(oidTCB)]
		if seen[n] {
			return fmt.Errorf("TCB entry %d appears twice", n)
		}
		seen[n] = true
		switch {
		case n >= 1 && n <= 16:
			var svn int
			if err := unmarshalAll(e.Value.FullBytes, &svn); err != nil {
				return err
			}
			if svn < 0 || svn > 255 {
				return fmt.Errorf("component SVN %d out of range", svn)
			}
			ext.CompSVN[n-1] = uint8(svn)
		case n == 17:
			var svn int
			if err := unmarshalAll(e.Value.FullBytes, &svn); err != nil {
				return err
			}
			if svn < 0 || svn > 0xFFFF {
				return fmt.Errorf("PCESVN %d out of range", svn)
			}
			ext.PCESVN = uint16(svn)
		case n == 18:
			if err := octets(e.Value, ext.CPUSVN[:]); err != nil {
				return err
			}
		}
	}
	for n := 1; n <= 18; n++ {
		if !seen[n] {
			return fmt.Errorf("TCB entry %d is missing", n)
		}
	}
	return nil
}

// Marshal encodes the extension value (the DER that goes under
// OIDSGXExtensions) in the layout Intel uses for processor PCK
// certificates, or platform ones when PlatformInstanceID is set.
func (ext *PCKExtensions) Marshal() ([]byte, error) {
	entry := func(id asn1.ObjectIdentifier, v any) (oidValue, error) {
		b, err := asn1.Marshal(v)
		return oidValue{ID: id, Value: asn1.RawValue{FullBytes: b}}, err
	}
	var errs []error
	must := func(e oidValue, err error) oidValue {
		errs = append(errs, err)
		return e
	}
	var tcb []oidValue
	for i, svn := range ext.CompSVN {
		tcb = append(tcb, must(entry(append(append(asn1.ObjectIdentifier{}, oidTCB...), i+1), int(svn))))
	}
	tcb = append(tcb, must(entry(append(append(asn1.ObjectIdentifier{}, oidTCB...), 17), int(ext.PCESVN))))
	tcb = append(tcb, must(entry(append(append(asn1.ObjectIdentifier{}, oidTCB...), 18), ext.CPUSVN[:])))
	entries := []oidValue{
		must(entry(oidPPID, ext.PPID[:])),
		must(entry(oidTCB, tcb)),
		must(entry(oidPCEID, ext.PCEID[:])),
		must(entry(oidFMSPC, ext.FMSPC[:])),
		must(entry(oidSGXType, asn1.Enumerated(ext.SGXType))),
	}
	if ext.PlatformInstanceID != nil {
		entries = append(entries, must(entry(oidPlatformInstanceID, ext.PlatformInstanceID)))
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return asn1.Marshal(entries)
}
