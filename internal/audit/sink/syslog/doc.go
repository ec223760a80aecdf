// Package syslog is the audit sink that delivers records to a syslog
// receiver (rsyslog, syslog-ng, a SIEM's collector) as RFC 5424 messages,
// over TCP (RFC 6587) or TLS (RFC 5425).
//
// # Wire format
//
// Each record is one octet-counted frame, MSG-LEN SP SYSLOG-MSG (RFC 6587,
// section 3.4.1; RFC 5425, section 4.3), with nothing after it. With the
// data cut short to fit here, and its length counted as cut:
//
//	155 <38>1 2026-11-25T10:00:00.123456Z proxy-0 jitproxy - grant.approved [jitproxy@32473 id="6f1c0a" seq="42"] {"version":"jitproxy.audit/v1","id":"6f1c0a",...}
//
// Its fields:
//
//   - MSG-LEN is the decimal number of octets of SYSLOG-MSG (not of
//     characters). A receiver must take octet-counted framing; rsyslog's
//     imtcp and syslog-ng's syslog() source do. One that only splits at
//     line feeds does not.
//   - PRI is Facility*8 + 6: every record has severity 6, informational;
//     the default facility auth makes it 38. Tell events apart by MSGID.
//   - VERSION is 1.
//   - TIMESTAMP is Record.Time in RFC 3339 with six fraction digits
//     (microseconds, truncated), in its own offset ("Z" for the UTC times
//     the audit Recorder stamps); NILVALUE "-" for the zero time.
//   - HOSTNAME and APP-NAME are Config.Hostname and Config.AppName;
//     PROCID is NILVALUE.
//   - MSGID is Record.Type, each character outside printable ASCII
//     replaced by '_' and cut to 32 bytes; "-" (NILVALUE) for an empty
//     type, and "_" for the type "-". The data carries the type as it is.
//   - STRUCTURED-DATA is one element named Config.StructuredDataID
//     (jitproxy@32473 by default; 32473 is the enterprise number reserved
//     for documentation, see Config) with two parameters: id, Record.ID,
//     by which a receiver drops duplicates, and seq, Record.Seq, whose gaps
//     show a lost record. Values are UTF-8 with '"', '\' and ']' escaped by
//     a backslash (RFC 5424, section 6.3.3); an invalid UTF-8 byte becomes
//     U+FFFD.
//   - MSG, after one space, is Record.Data as it is: the encoded event
//     (the native format: UTF-8 JSON with the hash-chain fields), with no
//     byte-order mark (MSG-ANY in RFC 5424's terms, which receivers read as
//     UTF-8 when it is) and no line feed. Encoded JSON holds no control
//     characters, which receivers may rewrite (rsyslog writes a line feed
//     as #012).
//
// The sender sets no size limit, but receivers do. rsyslog's is
// maxMessageSize, 8 KiB unless configured (global(maxMessageSize="256k")):
// rsyslog 8.2302 logs a longer message as several, the first cut at the
// limit and the rest as messages of their own without header, and syslog-ng
// has log-msg-size. Configure the receiver for the largest event, or a
// long request record arrives in pieces and its hash no longer checks.
//
// # Delivery and what it guarantees
//
// The connection is opened by the first Deliver and kept. Deliver writes
// the batch's frames in order and returns nil when every one is written to
// the socket without error. For syslog over TCP or TLS that is all a sender
// can know: the protocol has no acknowledgement (RELP or an HTTP collector
// has one). A nil from Deliver means the batch is in this machine's
// kernel, in the socket's send buffer; it does not mean that the receiver
// has read it, parsed it or written it anywhere. Whatever sits in the
// local send buffer or the receiver's receive buffer, or in the receiver's
// memory queue, is lost if the receiver crashes or the connection breaks
// before the receiver has stored it, and Deliver has already returned nil
// for it. The record's seq and the hash chain in its data let the reader
// of the stream find such a loss; nothing here can prevent it.
//
// Two things narrow the gap. On any error (connect, TLS handshake, write,
// WriteTimeout, ctx ending) the connection is closed and the error
// returned, and the caller delivers the whole batch again later, so a batch
// that failed may arrive twice (receivers drop duplicates by id). And
// before each batch, Deliver checks, without waiting, whether the receiver
// has closed or reset the connection since the last batch (a restart, a
// crash: the kernel then has an end-of-file or reset pending; rsyslog's own
// forwarder makes the same check), and if so connects anew. Without that
// check the first batch after a receiver restart would be written into the
// dead connection, reported delivered and lost, because the first write to
// a TCP connection the peer has closed succeeds. The check cannot see a
// close that happens while or just after a batch is written, nor a
// receiver whose machine vanished without a reset: writes then succeed
// until the send buffer is full and one times out after WriteTimeout.
//
// Sink is safe for concurrent use. Its test against a real rsyslogd, over
// TCP and TLS, with the receiver stopped, killed and restarted, is
// TestSyslogSinkAgainstRsyslog in jitproxy's test directory.
package syslog
