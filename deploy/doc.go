// Package deploy holds no code: it is the home of the deployment files —
// Gramine manifest templates and build script (gramine/), EGo enclave
// configurations (ego/), systemd units (systemd/) — and of the tests that
// check them. docs/DEPLOY.md walks through using them.
package deploy
