package kms

import (
	"errors"
	"net/http"
)

// Error is an API error with the HTTP status Vault would use.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return "kms: " + e.Msg }

func badRequest(msg string) error { return &Error{http.StatusBadRequest, msg} }
func notFound(msg string) error   { return &Error{http.StatusNotFound, msg} }
func forbidden() error            { return &Error{http.StatusForbidden, "permission denied"} }

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
