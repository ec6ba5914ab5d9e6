// Package policyfile reads attestation policies from TOML:
//
//	# which enclaves may connect
//	[peers]
//	mrenclave = ["68823bc62f409ee33a32ea270cfe45d4b19a6fb3c8570d7bc186cbe062398e8f"]
//	mrsigner = ["9affcfae47b848ec2caf1c49b4b283531e1cc425f93582b36806e52a43d78d1a"]
//	isvprodid = 1
//	min_isvsvn = 2
//	allow_debug = false                                   # the default
//	tcb_statuses = ["UpToDate", "SWHardeningNeeded"]      # the default
//	allow_simulated = false                               # the default
//
//	# relayd only, optional: who may register which client id
//	[[bindings]]
//	id = "alice"
//	mrenclave = ["…"]
//
// Unknown keys are errors, and so is a [peers] table that names no
// MRENCLAVE or MRSIGNER (it would accept nothing).
package policyfile
