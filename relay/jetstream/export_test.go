package jetstream

// StopPrefetch turns off the prefetch of id's mailbox on this node, as
// an overflow or a lost consumer would, so that a test can see delivery
// fall back to notifications and reads from the stream.
func (mb *Mailboxes) StopPrefetch(id string) bool {
	bx := mb.box(id)
	if bx == nil {
		return false
	}
	bx.stopPrefetch()
	return true
}
