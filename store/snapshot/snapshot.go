package snapshot

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sharedenclave/sharedenclave/internal/durable"
	"github.com/sharedenclave/sharedenclave/seal"
)

// The two files that finish a backup, last in an archive.
const (
	SumsFile   = "SHA256SUMS"
	SealedFile = "SHA256SUMS.sealed"
)

// Meta is what SHA256SUMS.sealed holds.
type Meta struct {
	// Purpose is the service whose data dir this is ("kms", "relay").
	Purpose string `json:"purpose"`
	// Sequence is the store's open counter when the backup was taken.
	Sequence uint64 `json:"sequence"`
	// Taken is when the backup was taken, by the enclave's clock.
	Taken time.Time `json:"taken"`
	// Sums is the hex SHA-256 of the SHA256SUMS file.
	Sums string `json:"sha256sums"`
}

// Limits bound what Extract accepts; zero fields take the defaults.
type Limits struct {
	// Files is the most entries an archive may hold (default 100000).
	Files int
	// Bytes is the most bytes all files may hold together, uncompressed
	// (default 1 TiB).
	Bytes int64
}

const (
	defaultFiles = 100000
	defaultBytes = 1 << 40
	// maxSealed bounds SHA256SUMS.sealed; maxSumLine one line of
	// SHA256SUMS.
	maxSealed  = 4096
	maxSumLine = 64 + 2 + 255 + 1
	// maxSums bounds a SHA256SUMS read from a directory (the host's
	// file): as many lines as an archive may hold files.
	maxSums = defaultFiles * maxSumLine
)

// ErrInvalid: an archive or a backup directory that is not a complete,
// intact snapshot.
var ErrInvalid = errors.New("snapshot: not a complete, intact backup")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

func sealer(root *seal.Root, purpose string) (*seal.Sealer, error) {
	return seal.NewSealer(root, "snapshot/"+purpose, 1)
}

// validName: a plain file name, as a Pebble checkpoint and custody.json
// have; nothing that could leave the directory.
func validName(n string) bool {
	return n != "" && n != "." && n != ".." && len(n) <= 255 &&
		!strings.ContainsAny(n, "/\\\x00")
}

// files lists the regular files of dir other than the two sums files,
// sorted; anything else (a directory, a link) is refused.
func files(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.Name() == SumsFile || e.Name() == SealedFile {
			continue
		}
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("snapshot: %s: %s is not a regular file", dir, e.Name())
		}
		if !validName(e.Name()) {
			return nil, fmt.Errorf("snapshot: %s: unexpected file name %q", dir, e.Name())
		}
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out, nil
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Finish writes SHA256SUMS and SHA256SUMS.sealed into the backup
// directory dir (whose other files are complete and synced), sealing m
// (Purpose, Sequence, Taken; Sums is filled in) under root, and fsyncs
// them and dir.
func Finish(dir string, root *seal.Root, m Meta) error {
	names, err := files(dir)
	if err != nil {
		return err
	}
	var sums bytes.Buffer
	for _, n := range names {
		s, err := fileSum(filepath.Join(dir, n))
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		fmt.Fprintf(&sums, "%s  %s\n", s, n)
	}
	d := sha256.Sum256(sums.Bytes())
	m.Sums = hex.EncodeToString(d[:])
	plain, err := json.Marshal(m)
	if err != nil {
		return err
	}
	sl, err := sealer(root, m.Purpose)
	if err != nil {
		return err
	}
	sealed, err := sl.Seal("snapshot", []byte(SealedFile), 1, plain)
	if err != nil {
		return err
	}
	if err := durable.WriteNew(filepath.Join(dir, SumsFile), bytes.NewReader(sums.Bytes())); err != nil {
		return err
	}
	if err := durable.WriteNew(filepath.Join(dir, SealedFile), bytes.NewReader(sealed)); err != nil {
		return err
	}
	return durable.SyncDir(dir)
}

// OpenMeta opens dir's SHA256SUMS.sealed with the data key's root and
// checks it against SHA256SUMS. It returns os.ErrNotExist (wrapped) when
// dir has no SHA256SUMS.sealed (an ordinary data dir).
func OpenMeta(dir string, root *seal.Root, purpose string) (*Meta, error) {
	sealed, err := readSmall(filepath.Join(dir, SealedFile), maxSealed)
	if err != nil {
		return nil, err
	}
	sums, err := readSmall(filepath.Join(dir, SumsFile), maxSums)
	if errors.Is(err, os.ErrNotExist) {
		return nil, invalid("%s without %s", SealedFile, SumsFile)
	}
	if err != nil {
		return nil, err
	}
	sl, err := sealer(root, purpose)
	if err != nil {
		return nil, err
	}
	plain, err := sl.Open("snapshot", []byte(SealedFile), 1, sealed)
	if err != nil {
		return nil, invalid("%s does not open with this data key: the backup belongs to another deployment or service, or was altered", SealedFile)
	}
	var m Meta
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, invalid("%s: %v", SealedFile, err)
	}
	d := sha256.Sum256(sums)
	if m.Purpose != purpose || m.Sums != hex.EncodeToString(d[:]) {
		return nil, invalid("%s does not match %s", SealedFile, SumsFile)
	}
	return &m, nil
}

// VerifyFiles checks that dir holds exactly the files its SHA256SUMS
// lists (besides the two sums files), each with its digest.
func VerifyFiles(dir string) error {
	sums, err := readSmall(filepath.Join(dir, SumsFile), maxSums)
	if err != nil {
		return err
	}
	listed, err := parseSums(sums)
	if err != nil {
		return err
	}
	names, err := files(dir)
	if err != nil {
		return invalid("%v", err)
	}
	if len(names) != len(listed) {
		return invalid("%s lists %d files, the directory holds %d", SumsFile, len(listed), len(names))
	}
	for _, n := range names {
		want, ok := listed[n]
		if !ok {
			return invalid("%q is not in %s", n, SumsFile)
		}
		got, err := fileSum(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		if got != want {
			return invalid("%q does not match its SHA-256 in %s", n, SumsFile)
		}
	}
	return nil
}

func readSmall(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, invalid("%s is over %d bytes", filepath.Base(path), max)
	}
	return b, nil
}

// Write writes the finished backup directory dir to w as a gzip-compressed
// tar: its files sorted by name, then SHA256SUMS, then SHA256SUMS.sealed.
// An error part way leaves w without the last file, which readers (Vault's
// client, Extract) refuse.
func Write(w io.Writer, dir string) error {
	names, err := files(dir)
	if err != nil {
		return err
	}
	for _, n := range []string{SumsFile, SealedFile} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("snapshot: %s is not finished: %w", dir, err)
		}
	}
	names = append(names, SumsFile, SealedFile)
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		if err := addFile(tw, dir, n); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func addFile(tw *tar.Writer, dir, name string) error {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: fi.Size(), Mode: 0o600, ModTime: fi.ModTime().UTC().Truncate(time.Second), Format: tar.FormatPAX}); err != nil {
		return err
	}
	// A file that grew or shrank since Stat makes the tar writer fail
	// (ErrWriteTooLong or a short copy): the archive stays incomplete.
	n, err := io.Copy(tw, io.LimitReader(f, fi.Size()))
	if err != nil {
		return err
	}
	if n != fi.Size() {
		return fmt.Errorf("snapshot: %s shrank while it was archived", name)
	}
	return nil
}

// Summary describes an archive that Extract or Check accepted.
type Summary struct {
	Files int
	Bytes int64
}

// Check reads a whole archive and verifies it as Extract does, writing
// nothing.
func Check(r io.Reader, lim Limits) (*Summary, error) {
	return walk(r, lim, nil)
}

// Extract unpacks the archive from r into dir, which must not exist:
// into a new sibling directory first, renamed to dir only after every
// file matched SHA256SUMS and was synced. On any error nothing is left.
func Extract(r io.Reader, dir string, lim Limits) (*Summary, error) {
	if _, err := os.Lstat(dir); err == nil {
		return nil, fmt.Errorf("snapshot: %s already exists: restore into a new directory", dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".restore-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	sum, err := walk(r, lim, func(name string, body io.Reader) error {
		return durable.WriteNew(filepath.Join(tmp, name), body)
	})
	if err != nil {
		return nil, err
	}
	if err := durable.SyncDir(tmp); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	ok = true
	return sum, durable.SyncDir(parent)
}

// walk reads the archive, hands every file's content to save (when not
// nil) while hashing it, and checks the whole against SHA256SUMS: every
// file listed once with its digest, nothing unlisted, the two sums files
// last.
func walk(r io.Reader, lim Limits, save func(name string, body io.Reader) error) (*Summary, error) {
	if lim.Files <= 0 {
		lim.Files = defaultFiles
	}
	if lim.Bytes <= 0 {
		lim.Bytes = defaultBytes
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, invalid("not a gzip stream: %v", err)
	}
	zr.Multistream(false)
	tr := tar.NewReader(zr)
	got := map[string]string{}
	var order []string
	var sums, sealed []byte
	var total int64
	// small reads one of the two sums files (bounded before) and saves it.
	small := func(h *tar.Header) ([]byte, error) {
		b, err := io.ReadAll(io.LimitReader(tr, h.Size))
		if err != nil {
			return nil, invalid("tar: %v", err)
		}
		if save != nil {
			if err := save(h.Name, bytes.NewReader(b)); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, invalid("tar: %v", err)
		}
		if sealed != nil {
			return nil, invalid("%q after %s, which must be last", h.Name, SealedFile)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, invalid("%q is not a regular file", h.Name)
		}
		if !validName(h.Name) {
			return nil, invalid("file name %q: only plain names", h.Name)
		}
		if _, dup := got[h.Name]; dup || (h.Name == SumsFile && sums != nil) {
			return nil, invalid("%q appears twice", h.Name)
		}
		if len(order) >= lim.Files {
			return nil, invalid("over %d files", lim.Files)
		}
		if h.Size < 0 || h.Size > lim.Bytes-total {
			return nil, invalid("over %d bytes", lim.Bytes)
		}
		total += h.Size
		switch h.Name {
		case SumsFile:
			if h.Size > int64(max(len(order), 1))*maxSumLine {
				return nil, invalid("%s is too long for %d files", SumsFile, len(order))
			}
			if sums, err = small(h); err != nil {
				return nil, err
			}
			continue
		case SealedFile:
			if sums == nil {
				return nil, invalid("%s before %s", SealedFile, SumsFile)
			}
			if h.Size == 0 || h.Size > maxSealed {
				return nil, invalid("%s of %d bytes", SealedFile, h.Size)
			}
			if sealed, err = small(h); err != nil {
				return nil, err
			}
			continue
		}
		if sums != nil {
			return nil, invalid("%q after %s", h.Name, SumsFile)
		}
		hh := sha256.New()
		src := &readErr{r: io.LimitReader(tr, h.Size)}
		body := io.TeeReader(src, hh)
		if save != nil {
			err = save(h.Name, body)
		} else {
			_, err = io.Copy(io.Discard, body)
		}
		if src.err != nil {
			return nil, invalid("tar: %q: %v", h.Name, src.err)
		}
		if err != nil {
			return nil, err
		}
		got[h.Name] = hex.EncodeToString(hh.Sum(nil))
		order = append(order, h.Name)
	}
	if sealed == nil {
		return nil, invalid("no %s at the end: the archive is incomplete", SealedFile)
	}
	listed, err := parseSums(sums)
	if err != nil {
		return nil, err
	}
	if len(listed) != len(got) {
		return nil, invalid("%s lists %d files, the archive holds %d", SumsFile, len(listed), len(got))
	}
	for n, d := range listed {
		g, ok := got[n]
		if !ok {
			return nil, invalid("%s lists %q, which the archive does not hold", SumsFile, n)
		}
		if g != d {
			return nil, invalid("%q does not match its SHA-256 in %s", n, SumsFile)
		}
	}
	return &Summary{Files: len(order) + 2, Bytes: total}, nil
}

// readErr remembers a read error, to tell a broken archive from a failed
// write.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// parseSums reads SHA256SUMS strictly: "<64 lower-case hex>  <name>\n"
// lines, names valid and unique.
func parseSums(b []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, maxSumLine), maxSumLine)
	for sc.Scan() {
		line := sc.Text()
		if len(line) < 67 || line[64:66] != "  " {
			return nil, invalid("%s: malformed line %q", SumsFile, line)
		}
		d, n := line[:64], line[66:]
		if _, err := hex.DecodeString(d); err != nil || strings.ToLower(d) != d {
			return nil, invalid("%s: malformed digest in %q", SumsFile, line)
		}
		if !validName(n) || n == SumsFile || n == SealedFile {
			return nil, invalid("%s: bad file name %q", SumsFile, n)
		}
		if _, dup := out[n]; dup {
			return nil, invalid("%s lists %q twice", SumsFile, n)
		}
		out[n] = d
	}
	if err := sc.Err(); err != nil {
		return nil, invalid("%s: %v", SumsFile, err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return nil, invalid("%s does not end with a newline", SumsFile)
	}
	return out, nil
}
