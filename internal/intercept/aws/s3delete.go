package aws

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// S3 DeleteObjects (POST /BUCKET?delete) names its keys in an XML body:
//
//	<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
//	  <Object><Key>KEY</Key><VersionId>ID</VersionId></Object>...
//	  <Quiet>true</Quiet>
//	</Delete>
//
// Its resources are the objects it deletes. The body is read strictly, so
// that S3 cannot find a key jitproxy did not: no DTDs, comments or
// processing instructions, no unknown elements, no element twice where
// one is expected.

// s3Namespace is the XML namespace of S3's API.
const s3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

// maxDeleteObjects is S3's limit on the keys of one DeleteObjects request.
const maxDeleteObjects = 1000

// s3ObjectIdentifier are the members of a DeleteObjects <Object>.
var s3ObjectIdentifier = map[string]bool{"Key": true, "VersionId": true, "ETag": true, "LastModifiedTime": true, "Size": true}

// deleteObjects completes the classification of a DeleteObjects request:
// s3:DeleteObject on every key, or s3:DeleteObjectVersion when every
// object names a version (a mix needs both, and is refused).
func deleteObjects(c *call, bucket string, o operation) (operation, error) {
	if len(c.r.Header.Values("Content-Type")) > 0 && !hasMediaType(c, "application/xml", "text/xml") {
		return operation{}, errors.New("the body of an S3 DeleteObjects request must be XML")
	}
	if err := checkEncoding(c); err != nil {
		return operation{}, err
	}
	b, err := c.readBody()
	if err != nil {
		return operation{}, err
	}
	objects, err := parseDelete(b)
	if err != nil {
		return operation{}, fmt.Errorf("S3 DeleteObjects body: %w", err)
	}
	versions := 0
	for _, obj := range objects {
		if obj.version {
			versions++
		}
		if err := checkKeySegments(obj.key); err != nil {
			return operation{}, err
		}
		o.add("arn:"+c.partition+":s3:::"+bucket+"/"+obj.key, "")
	}
	switch versions {
	case 0:
		o.action = "DeleteObject"
	case len(objects):
		o.action = "DeleteObjectVersion"
	default:
		return operation{}, errors.New("the S3 DeleteObjects request deletes both objects and object versions, which need s3:DeleteObject and s3:DeleteObjectVersion; jitproxy judges one action per request, so send them separately")
	}
	for _, x := range s3ExtraPermissions[o.action] {
		if len(c.r.Header.Values(x.header)) > 0 {
			return operation{}, fmt.Errorf("the request sets %s, which needs s3:%s besides s3:%s; jitproxy judges one action per request, so send it without that header", x.header, x.action, o.action)
		}
	}
	return o, nil
}

type deleteObject struct {
	key     string
	version bool
}

// parseDelete reads the objects of a DeleteObjects body.
func parseDelete(b []byte) ([]deleteObject, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	d.Entity = nil
	var (
		path    []string // names of the open elements
		objects []deleteObject
		seen    map[string]bool // members of the current <Object>
		text    strings.Builder
		obj     deleteObject
		quiet   bool
		started bool
		closed  bool // the root element has ended
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errors.New("not well-formed XML")
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" || started {
				return nil, errors.New("processing instructions are not allowed")
			}
		case xml.Directive, xml.Comment:
			return nil, errors.New("DTDs and comments are not allowed")
		case xml.StartElement:
			if closed {
				return nil, errors.New("more than one root element")
			}
			started = true
			if t.Name.Space != "" && t.Name.Space != s3Namespace {
				return nil, fmt.Errorf("element %q is not in S3's namespace", t.Name.Local)
			}
			for _, a := range t.Attr {
				if a.Name.Space != "xmlns" && !(a.Name.Space == "" && a.Name.Local == "xmlns") {
					return nil, fmt.Errorf("attribute %q is not allowed", a.Name.Local)
				}
			}
			name := t.Name.Local
			switch depth := len(path); {
			case depth == 0 && name == "Delete":
			case depth == 1 && name == "Object":
				if len(objects) == maxDeleteObjects {
					return nil, fmt.Errorf("more than %d objects", maxDeleteObjects)
				}
				obj, seen = deleteObject{}, map[string]bool{}
			case depth == 1 && name == "Quiet" && !quiet:
				quiet = true
			case depth == 2 && path[1] == "Object" && s3ObjectIdentifier[name]:
				if seen[name] {
					return nil, fmt.Errorf("element %s is given twice in one Object", name)
				}
				seen[name] = true
				text.Reset()
			default:
				return nil, fmt.Errorf("unexpected element %q", name)
			}
			path = append(path, name)
		case xml.CharData:
			if len(path) == 3 {
				text.Write(t)
			} else if len(path) != 2 || path[1] != "Quiet" {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, errors.New("unexpected text")
				}
			}
		case xml.EndElement:
			switch name := path[len(path)-1]; {
			case len(path) == 3 && name == "Key":
				obj.key = text.String()
			case len(path) == 3 && name == "VersionId":
				obj.version = true
			case len(path) == 2 && name == "Object":
				if obj.key == "" {
					return nil, errors.New("an Object has no Key")
				}
				if len(obj.key) > maxS3Key {
					return nil, fmt.Errorf("a key is longer than S3's limit of %d bytes", maxS3Key)
				}
				objects = append(objects, obj)
			}
			path = path[:len(path)-1]
			closed = len(path) == 0
		}
	}
	if !started || len(objects) == 0 {
		return nil, errors.New("no objects to delete")
	}
	return objects, nil
}
