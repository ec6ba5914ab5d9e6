module github.com/sharedenclave/sharedenclave

go 1.25.0

require (
	github.com/fxamacker/cbor/v2 v2.10.0
	github.com/pelletier/go-toml/v2 v2.4.3
)

require github.com/x448/float16 v0.8.4 // indirect
