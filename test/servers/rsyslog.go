package servers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Rsyslog is a running rsyslogd (Debian's rsyslog and rsyslog-gnutls)
// receiving syslog messages on two imtcp listeners: plain TCP on Addr and
// TLS (RFC 5425, GnuTLS driver, clients not authenticated) on TLSAddr.
// Both accept octet-counted and LF-terminated framing (RFC 6587) and
// messages of up to 256 KiB. It writes every message it receives, parsed
// as RFC 5424, as one JSON line to File (see Received); its own messages
// (errors such as a failed TLS handshake) go to its log, rsyslogd.log.
type Rsyslog struct {
	*Process
	Addr    string // 127.0.0.1:PORT, plain TCP
	TLSAddr string // 127.0.0.1:PORT, TLS
	File    string // where received messages go
	CAFile  string // the CA that signed the TLS listener's certificate
	CAPEM   []byte
	Version string // rsyslogd's, as it reports it: "8.2302.0"
	Bin     string

	tlsConf *tls.Config
}

// RsyslogMaxMessageSize is the largest message the server takes whole.
const RsyslogMaxMessageSize = 256 << 10

// rsyslogConf is the configuration: RainerScript, as rsyslog 8 reads it.
// Nothing in it needs privileges: no /dev/log (imuxsock), no kernel log,
// no privilege drop, ports above 1024, every file under the directory.
const rsyslogConf = `# Written by test/servers/rsyslog.go.
global(
  workDirectory="{{dir}}"
  maxMessageSize="{{maxsize}}"
  defaultNetstreamDriverCAFile="{{dir}}/ca.crt"
  defaultNetstreamDriverCertFile="{{dir}}/server.crt"
  defaultNetstreamDriverKeyFile="{{dir}}/server.key"
)
module(load="imtcp")

# One JSON object a line (jsonf adds the newline); rawmsg is the message
# as received, without its framing.
template(name="received" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app_name" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="structured_data" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="rawmsg" name="rawmsg" format="jsonf")
}

ruleset(name="received") {
  action(type="omfile" file="{{dir}}/received.jsonl" template="received")
}

input(type="imtcp" address="127.0.0.1" port="{{port}}" ruleset="received")
input(type="imtcp" address="127.0.0.1" port="{{tlsport}}" ruleset="received"
  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
`

// StartRsyslog starts rsyslogd in the foreground on two free ports, with
// its configuration, certificate, work files and output under dir/rsyslog.
// It runs as the calling user, root or not.
func StartRsyslog(ctx context.Context, dir string) (*Rsyslog, error) {
	bin, err := rsyslogdBin()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(filepath.Join(dir, "rsyslog"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	tlsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	cert, err := newServingCert("rsyslog")
	if err != nil {
		return nil, err
	}
	r := &Rsyslog{
		Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		TLSAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort)),
		File:    filepath.Join(dir, "received.jsonl"),
		CAFile:  filepath.Join(dir, "ca.crt"),
		CAPEM:   cert.CAPEM,
		Bin:     bin,
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cert.CAPEM)
	r.tlsConf = &tls.Config{RootCAs: pool}
	if err := cert.write(r.CAFile, filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")); err != nil {
		return nil, err
	}
	conf := strings.NewReplacer(
		"{{dir}}", dir, "{{port}}", strconv.Itoa(port), "{{tlsport}}", strconv.Itoa(tlsPort),
		"{{maxsize}}", strconv.Itoa(RsyslogMaxMessageSize),
	).Replace(rsyslogConf)
	confFile := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, bin, "-v").Output()
	if err != nil {
		return nil, fmt.Errorf("rsyslogd -v: %w", err)
	}
	if f := strings.Fields(string(out)); len(f) > 1 {
		r.Version = f[1]
	}
	// -n: foreground; -i: the pid file, which rsyslogd uses to refuse a
	// second instance.
	p, err := start("rsyslogd", dir, bin, []string{"-n", "-f", confFile, "-i", filepath.Join(dir, "rsyslogd.pid")}, nil)
	if err != nil {
		return nil, err
	}
	r.Process = p
	if err := p.waitReady(ctx, 30*time.Second, r.ready); err != nil {
		p.Stop()
		return nil, fmt.Errorf("rsyslog: %w", err)
	}
	return r, nil
}

// rsyslogdBin finds rsyslogd: on PATH, or in /usr/sbin, which a user's
// PATH may lack.
func rsyslogdBin() (string, error) {
	if p, err := Bin("rsyslogd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("rsyslogd: %w", ErrMissing)
}

// ready wants a TCP connection to the plain listener and a TLS handshake
// with the other, checked against the CA.
func (r *Rsyslog) ready(ctx context.Context) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", r.Addr)
	if err != nil {
		return err
	}
	c.Close()
	tc, err := (&tls.Dialer{NetDialer: &d, Config: r.tlsConf}).DialContext(ctx, "tcp", r.TLSAddr)
	if err != nil {
		return err
	}
	return tc.Close()
}

// TLSConfig returns a client configuration that trusts the server's
// certificate (issued for 127.0.0.1 and localhost).
func (r *Rsyslog) TLSConfig() *tls.Config { return r.tlsConf.Clone() }

// Restart stops the server if it still runs and starts it again on the
// same ports with the same files; File keeps what it received.
func (r *Rsyslog) Restart(ctx context.Context) error {
	if err := r.Process.restart(ctx, 30*time.Second, r.ready); err != nil {
		return fmt.Errorf("rsyslog: %w", err)
	}
	return nil
}

// RsyslogMessage is one received message as rsyslog parsed it. Fields the
// message left out (NILVALUE) are "-".
type RsyslogMessage struct {
	PRI            string `json:"pri"`
	Timestamp      string `json:"timestamp"`
	Hostname       string `json:"hostname"`
	AppName        string `json:"app_name"`
	ProcID         string `json:"procid"`
	MsgID          string `json:"msgid"`
	StructuredData string `json:"structured_data"`
	Msg            string `json:"msg"`
	// Raw is the message as received, without its framing.
	Raw string `json:"rawmsg"`
}

// Received returns the messages written to File so far (whole lines), in
// the order rsyslog wrote them. rsyslog writes asynchronously: a message accepted by
// its TCP stack shows up some milliseconds later.
func (r *Rsyslog) Received() ([]RsyslogMessage, error) {
	b, err := os.ReadFile(r.File)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// A line still being written is left for the next call.
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	var out []RsyslogMessage
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 4*RsyslogMaxMessageSize)
	for sc.Scan() {
		var m RsyslogMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("%s: %w in %q", r.File, err, sc.Text())
		}
		out = append(out, m)
	}
	return out, sc.Err()
}
