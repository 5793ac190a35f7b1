package statepb

import (
	"errors"
	"fmt"
	"strings"
)

// Error is a rejection with its stable code. Message names the field or rule.
type Error struct {
	Code    Code
	Message string
}

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	return e.Code.Short() + ": " + e.Message
}

// Short is the code's stable name without the CODE_ prefix, e.g. "INPUT_SPENT".
func (c Code) Short() string {
	return strings.TrimPrefix(c.String(), "CODE_")
}

// CodeOf returns the code of err if it is (or wraps) an *Error, else
// CODE_UNSPECIFIED.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Code_CODE_UNSPECIFIED
}

// ParseCode maps a short or full code name ("INPUT_SPENT" or
// "CODE_INPUT_SPENT") to its Code.
func ParseCode(name string) (Code, bool) {
	if !strings.HasPrefix(name, "CODE_") {
		name = "CODE_" + name
	}
	v, ok := Code_value[name]
	return Code(v), ok
}
