//go:build unix

package syslog

import (
	"errors"
	"net"
	"syscall"
)

// peek looks at conn, a TCP connection, without reading or waiting
// (recv with MSG_PEEK|MSG_DONTWAIT, as rsyslog's own forwarder checks its
// connections): closed if the receiver has closed or reset it and nothing
// is pending before that, pending if bytes wait to be read.
func peek(conn net.Conn) (closed, pending bool) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true, false
	}
	var n int
	var rerr error
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	})
	switch {
	case err != nil:
		return true, false
	case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EWOULDBLOCK), errors.Is(rerr, syscall.EINTR):
		return false, false
	case rerr != nil:
		return true, false
	default:
		return n == 0, n > 0
	}
}
