package kms

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an API error with the HTTP status Vault would use.
type Error struct {
	Status int
	Msg    string
	// noKey marks "the key named does not exist" (see keyNotFound).
	noKey bool
}

func (e *Error) Error() string { return "kms: " + e.Msg }

func badRequest(msg string) error { return &Error{Status: http.StatusBadRequest, Msg: msg} }
func notFound(msg string) error   { return &Error{Status: http.StatusNotFound, Msg: msg} }

// keyNotFound is Vault's answer to an operation on a key that does not
// exist: 400 "encryption key not found" (reading the key itself is 404,
// see readKey).
func keyNotFound(name string) error {
	return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("encryption key not found: %q", name), noKey: true}
}

func isKeyNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.noKey
}

func forbidden() error { return &Error{Status: http.StatusForbidden, Msg: "permission denied"} }

// Sentinels callers branch on.
var (
	ErrNotFound  = errors.New("kms: not found")
	ErrForbidden = errors.New("kms: permission denied")
)

// Is lets errors.Is match the sentinels by status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	}
	return false
}

func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}
