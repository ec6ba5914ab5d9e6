package kms

import (
	"errors"

	vault "github.com/hashicorp/vault/api"
)

func asResponseError(err error, re **vault.ResponseError) bool { return errors.As(err, re) }
