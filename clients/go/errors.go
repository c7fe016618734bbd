package pluginhost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The host's stable error codes (README.md's error table). The code, not the message, is what
// a program should match on.
const (
	CodeInvalidJSON               = "invalid_json"
	CodeInvalidRequest            = "invalid_request"
	CodeInvalidPluginName         = "invalid_plugin_name"
	CodeWrongABIVersion           = "wrong_abi_version"
	CodeInvalidVersionRequirement = "invalid_version_requirement"
	CodePluginNotFound            = "plugin_not_found"
	CodeVersionNotFound           = "version_not_found"
	CodeFunctionNotFound          = "function_not_found"
	CodeBodyTimeout               = "body_timeout"
	CodeStreamTimeout             = "stream_timeout"
	CodeMethodNotAllowed          = "method_not_allowed"
	CodeUnauthorized              = "unauthorized"
	CodeForbidden                 = "forbidden"
	CodeBodyTooLarge              = "body_too_large"
	CodeInputTooLarge             = "input_too_large"
	CodeStreamTooLarge            = "stream_too_large"
	CodeUnsupportedMediaType      = "unsupported_media_type"
	CodeInvalidArgument           = "invalid_argument"
	CodePluginError               = "plugin_error"
	CodePluginTrapped             = "plugin_trapped"
	CodeBufferFault               = "buffer_fault"
	CodeConfigurationRefused      = "configuration_refused"
	CodeInvalidConfiguration      = "invalid_configuration"
	CodePluginCrashed             = "plugin_crashed"
	CodeABIViolation              = "abi_violation"
	CodeInvalidModule             = "invalid_module"
	CodePluginInstantiationFailed = "plugin_instantiation_failed"
	CodeMemoryLimit               = "memory_limit"
	CodePluginTooLarge            = "plugin_too_large"
	CodeDigestMismatch            = "digest_mismatch"
	CodeInvalidArtifact           = "invalid_artifact"
	CodeSignatureMissing          = "signature_missing"
	CodeSignatureInvalid          = "signature_invalid"
	CodeUntrustedSigner           = "untrusted_signer"
	CodeStoreError                = "store_error"
	CodeInternalError             = "internal_error"
	CodeOverloaded                = "overloaded"
	CodeNoWorkers                 = "no_workers"
	CodeWorkerLost                = "worker_lost"
	CodePluginQuarantined         = "plugin_quarantined"
	CodeStoreUnavailable          = "store_unavailable"
	CodePluginTimeout             = "plugin_timeout"
)

// Error is an answer of the host other than success: an HTTP status with the host's JSON
// error body, `{"error": {"code": ..., "message": ...}}`. Match it with [errors.As]:
//
//	var hostErr *pluginhost.Error
//	if errors.As(err, &hostErr) && hostErr.Code == pluginhost.CodePluginNotFound { ... }
type Error struct {
	// StatusCode is the HTTP status, such as 404.
	StatusCode int
	// Code is the host's stable error code, such as "plugin_not_found" (the Code* constants);
	// empty when the answer had no JSON error body (a proxy's answer, say).
	Code string
	// Message is the host's explanation, for humans; it may change between releases.
	Message string
	// Transient reports whether the same request can succeed later without any change: the
	// host answers every such failure, and only those, with 503.
	Transient bool
	// RetryAfter is the delay the host asked for in its Retry-After header; zero without one.
	RetryAfter time.Duration
	// RequestID is the answer's x-request-id, which is on every log line of the request.
	RequestID string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("plugin host: HTTP %d: %s", e.StatusCode, e.Message)
	}
	return fmt.Sprintf("plugin host: %s (HTTP %d): %s", e.Code, e.StatusCode, e.Message)
}

// ErrIncompleteStream is the error (wrapped) of a stream whose output had begun when the host
// cut it off: the plugin failed mid-stream, or the stream broke one of the host's limits. The
// host logs the cause with the request id; the output written so far is not the whole output.
var ErrIncompleteStream = errors.New("plugin host: the stream's output was cut off before its end")

// IsTransient reports whether err is a failure that retrying the same request can cure: an
// [*Error] whose Transient is set, or a connection refused (a host that is starting or
// restarting), or closed or reset before any answer.
func IsTransient(err error) bool {
	var hostErr *Error
	if errors.As(err, &hostErr) {
		return hostErr.Transient
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// maxErrorBody bounds how much of an error answer is read: the host's are a few hundred bytes.
const maxErrorBody = 64 << 10

// errorFrom reads and closes an unsuccessful response's body and turns it into an [*Error].
func errorFrom(resp *http.Response) *Error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	hostErr := &Error{
		StatusCode: resp.StatusCode,
		Transient:  resp.StatusCode == http.StatusServiceUnavailable,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		RequestID:  resp.Header.Get("X-Request-Id"),
	}
	var decoded struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &decoded) == nil && decoded.Error.Code != "" {
		hostErr.Code = decoded.Error.Code
		hostErr.Message = decoded.Error.Message
	} else {
		hostErr.Message = strings.TrimSpace(string(body))
		if hostErr.Message == "" {
			hostErr.Message = http.StatusText(resp.StatusCode)
		}
	}
	return hostErr
}

// parseRetryAfter reads a Retry-After header: a number of seconds, or an HTTP date.
func parseRetryAfter(value string, now time.Time) time.Duration {
	if value == "" {
		return 0
	}
	if seconds, err := strconv.ParseUint(strings.TrimSpace(value), 10, 32); err == nil {
		return time.Duration(seconds) * time.Second
	}
	if when, err := http.ParseTime(value); err == nil && when.After(now) {
		return when.Sub(now)
	}
	return 0
}
