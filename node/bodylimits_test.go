package node_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/node/nodetest"
)

// TestBodyLimitAndContentType (issue 16, defect 5): an oversized body gets
// 413 and a wrong content type 415, each with a body naming the limit or
// the types served (they were 429 and an empty 415).
func TestBodyLimitAndContentType(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 1})
	c.StartAll()
	url := c.URL(c.Names[0]) + nodepbconnect.LedgerServiceSubmitProcedure
	post := func(ct string, body []byte) (int, string) {
		resp, err := http.Post(url, ct, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("application/json", bytes.Repeat([]byte("x"), 300<<10)); code != 413 || !strings.Contains(body, "limits.max_request_bytes (262144 bytes)") {
		t.Errorf("oversized body: %d %q", code, body)
	}
	if code, body := post("text/plain", []byte("{}")); code != 415 || !strings.Contains(body, `"text/plain"`) || !strings.Contains(body, "application/proto") {
		t.Errorf("wrong content type: %d %q", code, body)
	}
	// A proper request still works: a Connect JSON submit with no tx is
	// refused by the node, not by these checks.
	if code, body := post("application/json", []byte(`{}`)); code == 413 || code == 415 {
		t.Errorf("valid request refused: %d %q", code, body)
	}
}
