package sgxquote

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes and offsets of the fixed parts of a quote, in bytes.
const (
	HeaderSize     = 48
	ReportBodySize = 384
	// SignedSize is the length of the region covered by the ISV report
	// signature: the header followed by the report body.
	SignedSize = HeaderSize + ReportBodySize // 432
	// MinSize is the smallest well-formed quote: the signed region, the
	// signature data length, the fixed part of the signature data, an
	// empty QE auth data and an empty certification data.
	MinSize = SignedSize + 4 + sigFixedSize + 2 + 2 + 4

	sigFixedSize = 64 + 64 + ReportBodySize + 64 // ISV sig, attestation key, QE report, QE sig

	// MaxSize bounds a quote that Parse accepts. Real quotes are about
	// 4–8 KiB; 64 KiB is the relay's cap as well.
	MaxSize = 64 << 10
)

// Fixed values of the header this package accepts.
const (
	Version3               = 3
	AttestationKeyECDSA256 = 2 // ECDSA-256-with-P-256 curve
	TEETypeSGX             = 0
	CertDataPCKChain       = 5 // PEM: PCK leaf ‖ PCK CA ‖ root
)

// ErrFormat is wrapped by every error Parse returns.
var ErrFormat = errors.New("sgxquote: malformed quote")

// ErrTrailingBytes is wrapped (with ErrFormat) when a length field
// declares less than what follows it: bytes that no field accounts for.
// Verifiers that read only the declared lengths accept such quotes; this
// package does not, so that a quote has one encoding.
var ErrTrailingBytes = errors.New("sgxquote: bytes after the declared length")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

// lengthErr reports a length field that disagrees with the bytes left.
func lengthErr(field string, declared uint64, left int) error {
	if declared < uint64(left) {
		return fmt.Errorf("%w: %w: %s %d, but %d bytes follow", ErrFormat, ErrTrailingBytes, field, declared, left)
	}
	return formatErr("%s %d, but %d bytes follow", field, declared, left)
}

// Header is the 48-byte quote header.
type Header struct {
	Version            uint16
	AttestationKeyType uint16
	TEEType            uint32
	QESVN              uint16
	PCESVN             uint16
	QEVendorID         [16]byte
	UserData           [20]byte
}

// Attribute flag bits of ReportBody.Attributes (the low 8 bytes, little-endian).
const (
	AttrInit          = 0x01
	AttrDebug         = 0x02
	AttrMode64Bit     = 0x04
	AttrProvisionKey  = 0x10
	AttrEInitTokenKey = 0x20
	AttrKSS           = 0x80
)

// ReportBody is the 384-byte SGX report body, used for both the ISV
// enclave report and the quoting enclave's report. Reserved fields are kept
// so that Marshal reproduces the input byte for byte.
type ReportBody struct {
	CPUSVN     [16]byte
	MiscSelect uint32
	Reserved1  [28]byte
	Attributes [16]byte // flags u64 ‖ xfrm u64, little-endian
	MREnclave  [32]byte
	Reserved2  [32]byte
	MRSigner   [32]byte
	Reserved3  [96]byte
	ISVProdID  uint16
	ISVSVN     uint16
	Reserved4  [60]byte
	ReportData [64]byte
}

// Flags returns the attribute flags (first 8 bytes of Attributes).
func (r *ReportBody) Flags() uint64 { return binary.LittleEndian.Uint64(r.Attributes[0:8]) }

// Debug reports whether the DEBUG attribute is set.
func (r *ReportBody) Debug() bool { return r.Flags()&AttrDebug != 0 }

// Quote is a parsed SGX ECDSA quote, version 3.
type Quote struct {
	Header Header
	Body   ReportBody

	// Signature data.
	ISVSignature   [64]byte // r ‖ s, big-endian each
	AttestationKey [64]byte // X ‖ Y of a P-256 point, big-endian each
	QEReport       ReportBody
	QESignature    [64]byte
	QEAuthData     []byte
	CertDataType   uint16
	CertData       []byte
}

// Parse decodes a quote. It rejects a version other than 3, a key type
// other than ECDSA-256, a TEE type other than SGX, lengths that do not add
// up, and trailing bytes. The returned Quote does not alias b.
func Parse(b []byte) (*Quote, error) {
	if len(b) > MaxSize {
		return nil, formatErr("%d bytes, over the %d-byte limit", len(b), MaxSize)
	}
	if len(b) < MinSize {
		return nil, formatErr("%d bytes, shorter than the minimum %d", len(b), MinSize)
	}
	q := new(Quote)
	h := &q.Header
	h.Version = binary.LittleEndian.Uint16(b[0:])
	h.AttestationKeyType = binary.LittleEndian.Uint16(b[2:])
	h.TEEType = binary.LittleEndian.Uint32(b[4:])
	h.QESVN = binary.LittleEndian.Uint16(b[8:])
	h.PCESVN = binary.LittleEndian.Uint16(b[10:])
	copy(h.QEVendorID[:], b[12:28])
	copy(h.UserData[:], b[28:48])
	if h.Version != Version3 {
		return nil, formatErr("version %d, want %d", h.Version, Version3)
	}
	if h.AttestationKeyType != AttestationKeyECDSA256 {
		return nil, formatErr("attestation key type %d, want %d (ECDSA-256-with-P-256)", h.AttestationKeyType, AttestationKeyECDSA256)
	}
	if h.TEEType != TEETypeSGX {
		return nil, formatErr("TEE type %#x, want %#x (SGX)", h.TEEType, TEETypeSGX)
	}
	parseBody(&q.Body, b[HeaderSize:SignedSize])

	sigLen := binary.LittleEndian.Uint32(b[SignedSize:])
	rest := b[SignedSize+4:]
	if uint64(sigLen) != uint64(len(rest)) {
		return nil, lengthErr("signature data length", uint64(sigLen), len(rest))
	}
	copy(q.ISVSignature[:], rest[0:64])
	copy(q.AttestationKey[:], rest[64:128])
	parseBody(&q.QEReport, rest[128:128+ReportBodySize])
	copy(q.QESignature[:], rest[512:576])
	rest = rest[sigFixedSize:]

	authLen := int(binary.LittleEndian.Uint16(rest))
	rest = rest[2:]
	if authLen > len(rest) {
		return nil, formatErr("QE auth data length %d, but %d bytes follow", authLen, len(rest))
	}
	q.QEAuthData = append([]byte(nil), rest[:authLen]...)
	rest = rest[authLen:]
	if len(rest) < 6 {
		return nil, formatErr("certification data header truncated")
	}
	q.CertDataType = binary.LittleEndian.Uint16(rest)
	certLen := binary.LittleEndian.Uint32(rest[2:])
	rest = rest[6:]
	if uint64(certLen) != uint64(len(rest)) {
		return nil, lengthErr("certification data length", uint64(certLen), len(rest))
	}
	q.CertData = append([]byte(nil), rest...)
	return q, nil
}

func parseBody(r *ReportBody, b []byte) {
	copy(r.CPUSVN[:], b[0:16])
	r.MiscSelect = binary.LittleEndian.Uint32(b[16:])
	copy(r.Reserved1[:], b[20:48])
	copy(r.Attributes[:], b[48:64])
	copy(r.MREnclave[:], b[64:96])
	copy(r.Reserved2[:], b[96:128])
	copy(r.MRSigner[:], b[128:160])
	copy(r.Reserved3[:], b[160:256])
	r.ISVProdID = binary.LittleEndian.Uint16(b[256:])
	r.ISVSVN = binary.LittleEndian.Uint16(b[258:])
	copy(r.Reserved4[:], b[260:320])
	copy(r.ReportData[:], b[320:384])
}

// Marshal appends the 384-byte encoding of r to dst.
func (r *ReportBody) Marshal(dst []byte) []byte {
	dst = append(dst, r.CPUSVN[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, r.MiscSelect)
	dst = append(dst, r.Reserved1[:]...)
	dst = append(dst, r.Attributes[:]...)
	dst = append(dst, r.MREnclave[:]...)
	dst = append(dst, r.Reserved2[:]...)
	dst = append(dst, r.MRSigner[:]...)
	dst = append(dst, r.Reserved3[:]...)
	dst = binary.LittleEndian.AppendUint16(dst, r.ISVProdID)
	dst = binary.LittleEndian.AppendUint16(dst, r.ISVSVN)
	dst = append(dst, r.Reserved4[:]...)
	return append(dst, r.ReportData[:]...)
}

// SignedBytes returns the header and report body: the bytes the ISV report
// signature covers.
func (q *Quote) SignedBytes() []byte {
	b := make([]byte, 0, SignedSize)
	b = binary.LittleEndian.AppendUint16(b, q.Header.Version)
	b = binary.LittleEndian.AppendUint16(b, q.Header.AttestationKeyType)
	b = binary.LittleEndian.AppendUint32(b, q.Header.TEEType)
	b = binary.LittleEndian.AppendUint16(b, q.Header.QESVN)
	b = binary.LittleEndian.AppendUint16(b, q.Header.PCESVN)
	b = append(b, q.Header.QEVendorID[:]...)
	b = append(b, q.Header.UserData[:]...)
	return q.Body.Marshal(b)
}

// Marshal encodes q. For a Quote returned by Parse, Marshal returns the
// parsed bytes exactly. It fails if a variable-length field is too long for
// its length prefix.
func (q *Quote) Marshal() ([]byte, error) {
	if len(q.QEAuthData) > 0xFFFF {
		return nil, fmt.Errorf("sgxquote: QE auth data of %d bytes does not fit a u16 length", len(q.QEAuthData))
	}
	sigLen := sigFixedSize + 2 + len(q.QEAuthData) + 6 + len(q.CertData)
	total := SignedSize + 4 + sigLen
	if total > MaxSize {
		return nil, fmt.Errorf("sgxquote: quote of %d bytes is over the %d-byte limit", total, MaxSize)
	}
	b := make([]byte, 0, total)
	b = append(b, q.SignedBytes()...)
	b = binary.LittleEndian.AppendUint32(b, uint32(sigLen))
	b = append(b, q.ISVSignature[:]...)
	b = append(b, q.AttestationKey[:]...)
	b = q.QEReport.Marshal(b)
	b = append(b, q.QESignature[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(q.QEAuthData)))
	b = append(b, q.QEAuthData...)
	b = binary.LittleEndian.AppendUint16(b, q.CertDataType)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(q.CertData)))
	b = append(b, q.CertData...)
	return b, nil
}

// EGo's GetRemoteReport puts a 16-byte header in front of the quote:
// u32 version = 1, u32 type = 2, u64 length of what follows (little-endian).
const egoHeaderSize = 16

// StripEGoHeader checks and removes the header that EGo's GetRemoteReport
// puts in front of a quote, returning the quote itself.
func StripEGoHeader(report []byte) ([]byte, error) {
	if len(report) < egoHeaderSize {
		return nil, formatErr("EGo report of %d bytes is shorter than its %d-byte header", len(report), egoHeaderSize)
	}
	if v := binary.LittleEndian.Uint32(report[0:]); v != 1 {
		return nil, formatErr("EGo report header version %d, want 1", v)
	}
	if t := binary.LittleEndian.Uint32(report[4:]); t != 2 {
		return nil, formatErr("EGo report header type %d, want 2 (SGX ECDSA)", t)
	}
	if n := binary.LittleEndian.Uint64(report[8:]); n != uint64(len(report)-egoHeaderSize) {
		return nil, formatErr("EGo report header length %d, but %d bytes follow", n, len(report)-egoHeaderSize)
	}
	return report[egoHeaderSize:], nil
}

// AddEGoHeader returns quote with EGo's 16-byte report header in front.
func AddEGoHeader(quote []byte) []byte {
	b := make([]byte, egoHeaderSize, egoHeaderSize+len(quote))
	binary.LittleEndian.PutUint32(b[0:], 1)
	binary.LittleEndian.PutUint32(b[4:], 2)
	binary.LittleEndian.PutUint64(b[8:], uint64(len(quote)))
	return append(b, quote...)
}
