package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"time"
)

// Record is one event as a sink delivers it: encoded in the sink's format,
// with its place in the sink's stream.
type Record struct {
	// ID is the event's unique ID: receivers drop duplicates by it.
	ID string
	// Seq is the record's sequence number in its sink's stream, from 1.
	Seq uint64
	// Type and Time are the event's, for sinks that send them beside the
	// data (Splunk HEC's time, a syslog header's timestamp).
	Type string
	Time time.Time
	// Data is the encoded event, with its hash-chain fields, without a
	// trailing newline.
	Data []byte
}

// A Sink delivers records to one destination: a file, a collector. It is
// called from one goroutine per sink, in stream order.
//
// Deliver returns nil only when every record of batch is delivered as
// durably as the destination acknowledges (written to the file, indexed
// by Splunk, accepted by the syslog server's TCP stack, added to the
// stream). An error means the whole batch is delivered again later, in
// order, so the destination may receive a record twice; it drops
// duplicates by ID. Deliver must return when ctx ends.
type Sink interface {
	Deliver(ctx context.Context, batch []Record) error
	// Close releases the sink's connections and files.
	Close() error
}

// Chain is an event's place in its sink's stream.
type Chain struct {
	// Seq is the event's sequence number in the stream, from 1.
	Seq uint64
	// Prev is the hash of the stream's previous record, hex; "" for the
	// first.
	Prev string
}

// An Encoder appends an event in one format to dst, with its chain
// fields: the sequence number, the previous record's hash, and a member
// "hash" whose value is the empty string, written as the last "hash"
// member of the encoding. The stream then fills in the record's own hash
// there (see Chainer). The encoding is one JSON value without a newline
// (spool and sinks keep one record per line), and the same input always
// encodes to the same bytes. On an error an Encoder returns dst as it got
// it. The stream calls its Encoder from one goroutine at a time, with a
// dst it uses again for the next record.
type Encoder func(dst []byte, e Event, c Chain) ([]byte, error)

// hashPlaceholder is what an Encoder writes for the record's own hash.
var hashPlaceholder = []byte(`"hash":""`)

// Chainer links the records of one stream: each record's hash is a SHA-256
// (an HMAC-SHA256 with a key) over the previous record's hash and the
// record with its own hash left empty, so that an edited, removed,
// reordered or truncated record breaks the chain from there on.
type Chainer struct {
	key []byte
}

// NewChainer returns a Chainer; key, if not empty, makes the hashes
// HMACs, which only holders of the key can recompute.
func NewChainer(key []byte) *Chainer { return &Chainer{key: key} }

func (c *Chainer) newHash() hash.Hash {
	if len(c.key) > 0 {
		return hmac.New(sha256.New, c.key)
	}
	return sha256.New()
}

// Seal computes the hash of data, an encoding with the hash placeholder,
// chained to prev, and returns data with the hash filled in and the hash.
func (c *Chainer) Seal(prev string, data []byte) ([]byte, string, error) {
	i := bytes.LastIndex(data, hashPlaceholder)
	if i < 0 {
		return nil, "", errNoPlaceholder
	}
	sum := c.newSealer().sum(prev, data)
	return appendSealed(make([]byte, 0, len(data)+len(sum)), data, i, sum), string(sum), nil
}

var errNoPlaceholder = errors.New("audit: encoded event has no hash placeholder")

// sealer computes the hashes of one stream's records. Its hash and buffers
// are used again for every record, so it is not safe for concurrent use.
type sealer struct {
	h    hash.Hash
	head []byte // the previous record's hash and a newline
	raw  [sha256.Size]byte
	hex  [2 * sha256.Size]byte
}

func (c *Chainer) newSealer() *sealer { return &sealer{h: c.newHash()} }

// sum returns the hash, in hex, of data (an encoding with the hash
// placeholder) chained to prev. It is valid until the next call.
func (s *sealer) sum(prev string, data []byte) []byte {
	s.head = append(append(s.head[:0], prev...), '\n')
	s.h.Reset()
	s.h.Write(s.head)
	s.h.Write(data)
	hex.Encode(s.hex[:], s.h.Sum(s.raw[:0]))
	return s.hex[:]
}

// appendSealed appends data, whose hash placeholder is at i, with the hash
// sum filled in, to dst.
func appendSealed(dst, data []byte, i int, sum []byte) []byte {
	dst = append(dst, data[:i]...)
	dst = append(dst, `"hash":"`...)
	dst = append(dst, sum...)
	return append(dst, data[i+len(hashPlaceholder)-1:]...)
}

// Open checks a sealed record against prev: it returns the record's hash,
// or an error if the record is not what was sealed after prev.
func (c *Chainer) Open(prev string, sealed []byte) (string, error) {
	const key = `"hash":"`
	i := bytes.LastIndex(sealed, []byte(key))
	if i < 0 || len(sealed) < i+len(key)+64+1 || sealed[i+len(key)+64] != '"' {
		return "", errors.New("no record hash")
	}
	got := string(sealed[i+len(key) : i+len(key)+64])
	data := make([]byte, 0, len(sealed))
	data = append(data, sealed[:i]...)
	data = append(data, hashPlaceholder...)
	data = append(data, sealed[i+len(key)+64+1:]...)
	h := c.newHash()
	h.Write([]byte(prev))
	h.Write([]byte{'\n'})
	h.Write(data)
	if want := hex.EncodeToString(h.Sum(nil)); !hmac.Equal([]byte(want), []byte(got)) {
		return "", errors.New("the record's hash does not match its content and the previous record")
	}
	return got, nil
}
