//go:build !unix

package syslog

import "net"

// peek cannot look at a socket here: a connection the receiver closed is
// found by the write that fails.
func peek(net.Conn) (closed, pending bool) { return false, false }
