// Package durable holds the two file-system steps every crash-safe write
// in this repository is made of: a new file written and fsynced, and a
// directory fsynced so that the file's name survives a crash.
package durable

import (
	"io"
	"os"
)

// WriteNew creates path (0600; it must not exist), copies r into it and
// fsyncs it. On error the partial file is removed; an existing path is
// reported as an error wrapping os.ErrExist and left alone.
func WriteNew(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// SyncDir fsyncs the directory dir (its entries: a new or renamed file's
// name).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
