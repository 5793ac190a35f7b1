// Command corpusplay plays the golden ledger corpus (state/testdata/corpus)
// in a binary of its own and checks every block's outcomes and state hash
// against the scripts. Its test builds it twice with different -ldflags
// -X values, so that protobuf-go's build-seeded randomness (detrand)
// differs between the two, and shows both agree with the scripts.
//
//	go run ./state/internal/corpusplay state/testdata/corpus/*.txt
//
// It prints the protobuf-go parse error text of this build (which differs
// between builds), then each script's outcomes and hashes; it exits 1 if
// any differs from the script.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/corpus"
	"github.com/dcep/dcep/state/statepb"
)

// buildNote is set with -ldflags -X by the test, to make builds differ.
var buildNote = ""

func main() {
	err := proto.Unmarshal([]byte{0xff, 0x01}, &statepb.Tx{})
	fmt.Printf("protobuf error text: %q (build note of %d bytes)\n", err.Error(), len(buildNote))
	bad := false
	for _, path := range os.Args[1:] {
		ok, err := play(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(2)
		}
		bad = bad || !ok
	}
	if bad {
		os.Exit(1)
	}
}

// play runs one script: datadriven's format (a command line, input lines,
// "----", the expected output up to a blank line).
func play(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	p := corpus.NewPlayer()
	defer p.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	ok, line := true, 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return sc.Text(), true
	}
	for {
		l, more := next()
		if !more {
			return ok, sc.Err()
		}
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		at := line
		fields := strings.Fields(l)
		var input, want []string
		for l, more = next(); more && l != "----"; l, more = next() {
			input = append(input, l)
		}
		for l, more = next(); more && l != ""; l, more = next() {
			want = append(want, l)
		}
		out, err := p.Run(fields[0], corpus.ParseArgs(fields[1:]), strings.Join(input, "\n"))
		if err != nil {
			return false, fmt.Errorf("line %d: %w", at, err)
		}
		fmt.Print(out)
		if got := strings.TrimSuffix(out, "\n"); got != strings.Join(want, "\n") {
			fmt.Printf("MISMATCH at %s:%d: the script says\n%s\n", path, at, strings.Join(want, "\n"))
			ok = false
		}
	}
}
