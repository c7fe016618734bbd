package pluginhost_test

// These tests run the client against a real wasm-plugin-host server, whose address they read
// from PLUGIN_HOST_URL; without it they are skipped. `cargo nextest run -p host -E
// 'test(go_client)'` starts the server the way they expect (see host/tests/all/go_client.rs):
// the example plugins, `calc` in versions 1.0.0 (simple), 1.4.2 (hello) and 2.0.0 (abi),
// `digest` in versions 0.9.0 and 1.0.0 (sha256), `hostile` (plugins/faults/v2-hostile.c), and
// --max-in-flight 1, so that one open stream makes every other call `overloaded`.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pluginhost "example.com/wasm-plugin-host/clients/go"
)

func hostURL(t *testing.T) string {
	t.Helper()
	address := os.Getenv("PLUGIN_HOST_URL")
	if address == "" {
		t.Skip("PLUGIN_HOST_URL is not set: no server to test against")
	}
	return address
}

func newClient(t *testing.T, opts ...pluginhost.Option) *pluginhost.Client {
	t.Helper()
	client, err := pluginhost.New(hostURL(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func hexDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// hostError asserts that err is an *Error and returns it.
func hostError(t *testing.T, err error) *pluginhost.Error {
	t.Helper()
	var hostErr *pluginhost.Error
	if !errors.As(err, &hostErr) {
		t.Fatalf("want a *pluginhost.Error, got %T: %v", err, err)
	}
	return hostErr
}

func TestRunCallsAnABIv1Plugin(t *testing.T) {
	client, ctx := newClient(t), testContext(t)
	result, err := client.Run(ctx, "hello", 21)
	if err != nil {
		t.Fatal(err)
	}
	if result.Output != 43 || result.Version != "" || result.RequestID == "" {
		t.Fatalf("hello 21: got %+v, want output 43 from the unversioned file", result)
	}
}

func TestCallPassesBytesBothWays(t *testing.T) {
	client, ctx := newClient(t), testContext(t)
	upper, err := client.Call(ctx, "text", "upper", []byte("hello, plugin"))
	if err != nil {
		t.Fatal(err)
	}
	if string(upper.Output) != "HELLO, PLUGIN" {
		t.Fatalf("text upper: got %q", upper.Output)
	}
	// Every byte value, including those that are not UTF-8 on their own.
	input := make([]byte, 4096)
	for i := range input {
		input[i] = byte(i)
	}
	digest, err := client.Call(ctx, "sha256", "sha256", input)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(digest.Output), hexDigest(input); got != want {
		t.Fatalf("sha256 of 4096 bytes: got %s, want %s", got, want)
	}
	// A streaming function called with bytes runs as one whole stream.
	whole, err := client.Call(ctx, "sha256", "sha256sum", input)
	if err != nil {
		t.Fatal(err)
	}
	if string(whole.Output) != hexDigest(input) {
		t.Fatalf("sha256sum as a call: got %s", whole.Output)
	}
}

// TestStreamOf100MiB sends 100 MiB, generated as it is sent, through the streaming sha256
// plugin and compares the digest with Go's own.
func TestStreamOf100MiB(t *testing.T) {
	client, ctx := newClient(t), testContext(t)
	const size = 100 << 20
	ours := sha256.New()
	source := io.TeeReader(io.LimitReader(rand.New(rand.NewSource(25)), size), ours)
	var output bytes.Buffer
	started := time.Now()
	result, err := client.Stream(ctx, "sha256", "sha256sum", source, &output)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(started)
	want := hex.EncodeToString(ours.Sum(nil))
	if output.String() != want || result.Written != 64 {
		t.Fatalf("100 MiB stream: got %q (%d bytes), want %s", output.String(), result.Written, want)
	}
	t.Logf("100 MiB streamed through sha256sum in %v (%.0f MiB/s)", took.Round(time.Millisecond), 100/took.Seconds())
}

func TestFailuresAreTypedErrorsWithTheHostsCodes(t *testing.T) {
	client, ctx := newClient(t, pluginhost.WithRetryPolicy(pluginhost.NoRetry)), testContext(t)
	cases := []struct {
		name   string
		call   func() error
		status int
		code   string
	}{
		{"absent plugin", func() error { _, err := client.Run(ctx, "no_such_plugin", 1); return err },
			404, pluginhost.CodePluginNotFound},
		{"absent function", func() error { _, err := client.Call(ctx, "text", "shout", []byte("x")); return err },
			404, pluginhost.CodeFunctionNotFound},
		{"no matching version", func() error { _, err := client.Run(ctx, "calc", 1, pluginhost.WithVersion("^9")); return err },
			404, pluginhost.CodeVersionNotFound},
		{"invalid requirement", func() error { _, err := client.Run(ctx, "calc", 1, pluginhost.WithVersion("latest")); return err },
			400, pluginhost.CodeInvalidVersionRequirement},
		{"plugin refused its input", func() error { _, err := client.Run(ctx, "abi", -1); return err },
			422, pluginhost.CodeInvalidArgument},
		{"plugin failed", func() error { _, err := client.Run(ctx, "abi", 46341); return err },
			500, pluginhost.CodePluginError},
		{"integer call of a v2 plugin", func() error { _, err := client.Run(ctx, "text", 1); return err },
			400, pluginhost.CodeWrongABIVersion},
		{"input over the buffer", func() error {
			_, err := client.Call(ctx, "sha256", "sha256", make([]byte, 65537))
			return err
		}, 413, pluginhost.CodeInputTooLarge},
		{"invalid plugin name", func() error { _, err := client.Plugin(ctx, "no spaces"); return err },
			400, pluginhost.CodeInvalidPluginName},
		{"plugin broke the buffer contract", func() error {
			_, err := client.Call(ctx, "hostile", "overflow", []byte("x"))
			return err
		}, 500, pluginhost.CodeBufferFault},
		{"stream of an absent function", func() error {
			_, err := client.Stream(ctx, "sha256", "nope", strings.NewReader("abc"), io.Discard)
			return err
		}, 404, pluginhost.CodeFunctionNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			hostErr := hostError(t, err)
			if hostErr.StatusCode != c.status || hostErr.Code != c.code || hostErr.Transient {
				t.Fatalf("got %+v, want HTTP %d %s, not transient", hostErr, c.status, c.code)
			}
			if hostErr.Message == "" || hostErr.RequestID == "" || pluginhost.IsTransient(err) {
				t.Fatalf("want a message, a request id and no transience: %+v", hostErr)
			}
			if !strings.Contains(err.Error(), c.code) {
				t.Fatalf("the error's text %q does not name its code", err)
			}
		})
	}
	// The message of a missing version lists those there are.
	_, err := client.Run(ctx, "calc", 1, pluginhost.WithVersion("^9"), pluginhost.WithRequestID("go-client-versions"))
	hostErr := hostError(t, err)
	if !strings.Contains(hostErr.Message, "1.4.2") || hostErr.RequestID != "go-client-versions" {
		t.Fatalf("version_not_found should list the versions and echo the request id: %+v", hostErr)
	}
}

// signallingWriter closes first when its first bytes arrive.
type signallingWriter struct {
	bytes.Buffer
	first chan struct{}
}

func (w *signallingWriter) Write(p []byte) (int, error) {
	if w.Len() == 0 && len(p) > 0 {
		close(w.first)
	}
	return w.Buffer.Write(p)
}

func TestAStreamCutOffMidwayIsIncomplete(t *testing.T) {
	client, ctx := newClient(t), testContext(t)
	// hostile's trap stream echoes its first chunk (4 KiB) and traps on the second. The second
	// goes out once the first's echo is back (or after a second: with worker processes, a
	// chunk's output comes when the next chunk does), so that the host has read the whole
	// body when it cuts the answer off: closing a connection with request bytes unread makes
	// the kernel reset it, which can discard the answer in flight too.
	reader, writer := io.Pipe()
	output := &signallingWriter{first: make(chan struct{})}
	go func() {
		writer.Write(bytes.Repeat([]byte("z"), 4096))
		select {
		case <-output.first:
		case <-time.After(time.Second):
		}
		writer.Write(bytes.Repeat([]byte("z"), 4096))
		writer.Close()
	}()
	result, err := client.Stream(ctx, "hostile", "trap", reader, output)
	var hostErr *pluginhost.Error
	if err != nil && !errors.Is(err, pluginhost.ErrIncompleteStream) && !errors.As(err, &hostErr) {
		// The host ends the connection with the cut-off answer; when the client's last bytes
		// cross that end, the kernel resets the connection and the answer in flight is lost.
		// The stream still failed, and says so: what must never happen is a success.
		t.Logf("the connection broke before the cut-off answer arrived: %v", err)
		return
	}
	if !errors.Is(err, pluginhost.ErrIncompleteStream) {
		t.Fatalf("want ErrIncompleteStream, got %v", err)
	}
	if result == nil || result.Written != 4096 || output.Len() != 4096 {
		t.Fatalf("want the first chunk's echo (4096 bytes) before the cut, got %+v and %d bytes", result, output.Len())
	}
}

func TestNDJSONStreamsAreFedWholeLines(t *testing.T) {
	client, ctx := newClient(t), testContext(t)
	var lines bytes.Buffer
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&lines, "%06d\n", i) // 7 bytes: no 4 KiB chunk ends at a line end by chance
	}
	var output bytes.Buffer
	// hostile's lines stream refuses (-3) a chunk that does not end at a line end.
	if _, err := client.Stream(ctx, "hostile", "lines", bytes.NewReader(lines.Bytes()), &output, pluginhost.WithNDJSON()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(output.Bytes(), lines.Bytes()) {
		t.Fatalf("the NDJSON stream echoed %d of %d bytes", output.Len(), lines.Len())
	}
	_, err := client.Stream(ctx, "hostile", "lines", bytes.NewReader(lines.Bytes()), io.Discard)
	var hostErr *pluginhost.Error
	if !(errors.As(err, &hostErr) && hostErr.Code == pluginhost.CodeInvalidArgument) && !errors.Is(err, pluginhost.ErrIncompleteStream) {
		t.Fatalf("without NDJSON, a chunk ends mid-line and the plugin refuses it: got %v", err)
	}
}

// endlessReader gives pseudo-random bytes forever and counts them.
type endlessReader struct {
	source *rand.Rand
	read   atomic.Int64
}

func (r *endlessReader) Read(p []byte) (int, error) {
	n, _ := r.source.Read(p)
	r.read.Add(int64(n))
	return n, nil
}

func TestCancellingTheContextEndsAStreamAtOnce(t *testing.T) {
	client := newClient(t)
	ctx, cancel := context.WithCancel(testContext(t))
	source := &endlessReader{source: rand.New(rand.NewSource(1))}
	go func() {
		for source.read.Load() < 8<<20 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	started := time.Now()
	_, err := client.Stream(ctx, "sha256", "sha256sum", source, io.Discard)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want an error wrapping context.Canceled, got %v", err)
	}
	if took := time.Since(started); took > 30*time.Second {
		t.Fatalf("the cancelled stream took %v to end", took)
	}
	t.Logf("cancelled after %d MiB", source.read.Load()>>20)
	// The host is none the worse: the next stream runs (after a retry, if the host has not
	// yet noticed that the cancelled one is gone).
	var output bytes.Buffer
	if _, err := client.Stream(testContext(t), "sha256", "sha256sum", strings.NewReader("abc"), &output); err != nil {
		t.Fatal(err)
	}
	if output.String() != hexDigest([]byte("abc")) {
		t.Fatalf("got %q", output.String())
	}
}

// openStream starts a stream that holds the host's one call slot (--max-in-flight 1) until
// the returned function is called, which ends it and checks its digest.
func openStream(t *testing.T, client *pluginhost.Client) (finish func()) {
	t.Helper()
	reader, writer := io.Pipe()
	first := bytes.Repeat([]byte("x"), 100000)
	done := make(chan error, 1)
	var output bytes.Buffer
	go func() {
		_, err := client.Stream(testContext(t), "sha256", "sha256sum", reader, &output)
		done <- err
	}()
	if _, err := writer.Write(first); err != nil {
		t.Fatal(err)
	}
	// The write returned: the transport has read the bytes, which it does only after the
	// host's 100 Continue, that is once the host has taken the call slot for the stream.
	var once sync.Once
	return func() {
		once.Do(func() {
			writer.Close()
			if err := <-done; err != nil {
				t.Errorf("the holding stream failed: %v", err)
			} else if output.String() != hexDigest(first) {
				t.Errorf("the holding stream's digest: got %q", output.String())
			}
		})
	}
}

func TestOverloadedCallsAreRetriedAfterRetryAfter(t *testing.T) {
	finish := openStream(t, newClient(t))
	defer finish()
	ctx := testContext(t)

	_, err := newClient(t, pluginhost.WithRetryPolicy(pluginhost.NoRetry)).Run(ctx, "hello", 21)
	refused := hostError(t, err)
	if refused.StatusCode != 503 || refused.Code != pluginhost.CodeOverloaded || !refused.Transient ||
		refused.RetryAfter != time.Second {
		t.Fatalf("with the only call slot held by a stream (the server must run with --max-in-flight 1): got %v, %+v",
			err, refused)
	}

	var retries []time.Duration
	policy := pluginhost.RetryPolicy{Notify: func(err error, delay time.Duration) {
		if hostErr := hostError(t, err); hostErr.Code != pluginhost.CodeOverloaded {
			t.Errorf("retried a %s", hostErr.Code)
		}
		retries = append(retries, delay)
		finish() // the slot is free again by the time the retry goes out
	}}
	started := time.Now()
	result, err := newClient(t, pluginhost.WithRetryPolicy(policy)).Run(ctx, "hello", 21)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(started)
	if result.Output != 43 || len(retries) != 1 || retries[0] < time.Second || took < time.Second {
		t.Fatalf("got %+v after retries %v in %v; want 43 after one retry of at least Retry-After (1 s)", result, retries, took)
	}
}

// onceReader is a reader that cannot be rewound: it gives its bytes once, and counts reads.
type onceReader struct {
	data  []byte
	reads atomic.Int64
}

func (r *onceReader) Read(p []byte) (int, error) {
	r.reads.Add(1)
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestARefusedStreamIsRetriedOnlyWhenNothingWasSent(t *testing.T) {
	finish := openStream(t, newClient(t))
	defer finish()
	input := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	source := &onceReader{data: append([]byte(nil), input...)}
	retried := 0
	policy := pluginhost.RetryPolicy{Notify: func(err error, delay time.Duration) {
		retried++
		if source.reads.Load() != 0 {
			t.Errorf("retrying a stream whose reader was read %d times", source.reads.Load())
		}
		finish()
	}}
	var output bytes.Buffer
	_, err := newClient(t, pluginhost.WithRetryPolicy(policy)).Stream(testContext(t), "sha256", "sha256sum", source, &output)
	if err != nil {
		t.Fatal(err)
	}
	if retried != 1 || output.String() != hexDigest(input) {
		t.Fatalf("after %d retries: got %q, want %s", retried, output.String(), hexDigest(input))
	}
}

// frontOf is a proxy in front of the real host whose answers the test chooses: answer
// returns false to pass a request on to the host.
func frontOf(t *testing.T, answer func(attempt int64, w http.ResponseWriter, r *http.Request) bool) (*httptest.Server, *atomic.Int64) {
	target, err := url.Parse(hostURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var attempts atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !answer(attempts.Add(1), w, r) {
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(front.Close)
	return front, &attempts
}

func overloaded(w http.ResponseWriter, retryAfter string) {
	w.Header().Set("Content-Type", "application/json")
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprint(w, `{"error":{"code":"overloaded","message":"the server is at its concurrency limit; retry shortly"}}`)
}

func TestRetriesHonourRetryAfterAndTheirBounds(t *testing.T) {
	ctx := testContext(t)
	t.Run("an HTTP-date Retry-After is waited for", func(t *testing.T) {
		front, attempts := frontOf(t, func(attempt int64, w http.ResponseWriter, r *http.Request) bool {
			if attempt == 1 {
				overloaded(w, time.Now().Add(2*time.Second).UTC().Format(http.TimeFormat))
				return true
			}
			return false
		})
		client, err := pluginhost.New(front.URL, pluginhost.WithHTTPClient(front.Client()))
		if err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		result, err := client.Run(ctx, "hello", 21)
		if err != nil || result.Output != 43 || attempts.Load() != 2 || time.Since(started) < time.Second {
			t.Fatalf("got %+v, %v after %d attempts in %v", result, err, attempts.Load(), time.Since(started))
		}
	})
	t.Run("attempts are bounded", func(t *testing.T) {
		front, attempts := frontOf(t, func(_ int64, w http.ResponseWriter, _ *http.Request) bool {
			overloaded(w, "")
			return true
		})
		client, _ := pluginhost.New(front.URL, pluginhost.WithRetryPolicy(pluginhost.RetryPolicy{
			MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond,
		}))
		_, err := client.Call(ctx, "text", "upper", []byte("a"))
		if hostErr := hostError(t, err); hostErr.Code != pluginhost.CodeOverloaded || attempts.Load() != 3 {
			t.Fatalf("got %v after %d attempts, want overloaded after 3", err, attempts.Load())
		}
	})
	t.Run("a Retry-After over MaxRetryAfter is not waited for", func(t *testing.T) {
		front, attempts := frontOf(t, func(attempt int64, w http.ResponseWriter, r *http.Request) bool {
			overloaded(w, "3600")
			return true
		})
		client, _ := pluginhost.New(front.URL)
		started := time.Now()
		_, err := client.Run(ctx, "hello", 21)
		if hostErr := hostError(t, err); hostErr.RetryAfter != time.Hour || attempts.Load() != 1 || time.Since(started) > 5*time.Second {
			t.Fatalf("got %+v after %d attempts in %v", hostErr, attempts.Load(), time.Since(started))
		}
	})
	t.Run("a stream whose body went out is never repeated", func(t *testing.T) {
		front, attempts := frontOf(t, func(attempt int64, w http.ResponseWriter, r *http.Request) bool {
			// Read the body, then refuse: the bytes read are gone from the caller's reader. (All
			// of it: answering with request bytes unread makes the kernel reset the connection,
			// which can lose the answer.)
			io.Copy(io.Discard, r.Body)
			overloaded(w, "0")
			return true
		})
		client, _ := pluginhost.New(front.URL)
		_, err := client.Stream(ctx, "sha256", "sha256sum", &onceReader{data: make([]byte, 1<<20)}, io.Discard)
		if hostErr := hostError(t, err); !hostErr.Transient || attempts.Load() != 1 {
			t.Fatalf("got %v after %d attempts, want the 503 after one", err, attempts.Load())
		}
	})
	t.Run("a failure that is not transient is not retried", func(t *testing.T) {
		retried := false
		client := newClient(t, pluginhost.WithRetryPolicy(pluginhost.RetryPolicy{
			Notify: func(error, time.Duration) { retried = true },
		}))
		_, err := client.Run(ctx, "abi", 46341)
		if hostErr := hostError(t, err); hostErr.Code != pluginhost.CodePluginError || retried {
			t.Fatalf("got %v, retried: %v", err, retried)
		}
	})
}

func TestVersionsAreListedChosenAndReported(t *testing.T) {
	client, ctx := newClient(t), testContext(t)
	versions, err := client.Versions(ctx, "calc")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, v := range versions.Versions {
		listed = append(listed, fmt.Sprintf("%s default=%v", v.Version, v.Default))
		if len(v.SHA256) != 64 {
			t.Errorf("version %s has no SHA-256: %q", v.Version, v.SHA256)
		}
	}
	if got := strings.Join(listed, ", "); versions.Name != "calc" ||
		got != "1.0.0 default=false, 1.4.2 default=false, 2.0.0 default=true" {
		t.Fatalf("calc's versions: %s", got)
	}
	for _, c := range []struct {
		requirement string
		output      int32
		version     string
	}{
		{"", 441, "2.0.0"},      // abi: x * x
		{"^1", 43, "1.4.2"},     // hello: 2x + 1
		{"=1.0.0", 22, "1.0.0"}, // simple: x + 1
		{">=1, <1.4", 22, "1.0.0"},
	} {
		var opts []pluginhost.CallOption
		if c.requirement != "" {
			opts = append(opts, pluginhost.WithVersion(c.requirement))
		}
		result, err := client.Run(ctx, "calc", 21, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if result.Output != c.output || result.Version != c.version {
			t.Errorf("calc %q: got %+v, want %d from %s", c.requirement, result, c.output, c.version)
		}
	}
	described, err := client.Plugin(ctx, "calc", pluginhost.WithVersion("~1.0"))
	if err != nil || described.Version != "1.0.0" || described.SHA256 != versions.Versions[0].SHA256 {
		t.Fatalf("calc ~1.0: %+v, %v", described, err)
	}

	called, err := client.Call(ctx, "digest", "sha256", []byte("abc"), pluginhost.WithVersion("^0.9"))
	if err != nil || called.Version != "0.9.0" || string(called.Output) != hexDigest([]byte("abc")) {
		t.Fatalf("digest ^0.9: %+v, %v", called, err)
	}
	var output bytes.Buffer
	streamed, err := client.Stream(ctx, "digest", "sha256sum", strings.NewReader("abc"), &output)
	if err != nil || streamed.Version != "1.0.0" || output.String() != hexDigest([]byte("abc")) {
		t.Fatalf("digest's stream: %+v, %q, %v", streamed, output.String(), err)
	}
}

func TestListingsAndProbes(t *testing.T) {
	client, ctx := newClient(t), testContext(t)
	plugins, err := client.Plugins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]pluginhost.Plugin{}
	for _, p := range plugins {
		byName[p.Name] = p
	}
	hello, text, sha := byName["hello"], byName["text"], byName["sha256"]
	if hello.ABI == nil || !hello.ABI.Compliant || hello.ABI.Version != 1 || hello.ABI.V2 != nil || len(hello.SHA256) != 64 {
		t.Fatalf("hello: %+v", hello)
	}
	if text.ABI == nil || text.ABI.V2 == nil || text.ABI.V2.Input.Capacity != 65536 {
		t.Fatalf("text: %+v", text)
	}
	kinds := map[string]string{}
	for _, f := range append(text.ABI.V2.Functions, sha.ABI.V2.Functions...) {
		kinds[f.Name] = f.Kind
	}
	if kinds["upper"] != "call" || kinds["sha256sum"] != "stream" {
		t.Fatalf("function kinds: %v", kinds)
	}
	if byName["calc"].Version != "2.0.0" {
		t.Fatalf("calc is listed as a call without a requirement gets it: %+v", byName["calc"])
	}

	if err := client.Health(ctx); err != nil {
		t.Fatal(err)
	}
	ready, err := client.Ready(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ready.Status != "ready" || ready.Plugins != len(plugins) || ready.FileDescriptors.Limit == 0 {
		t.Fatalf("readiness: %+v with %d plugins listed", ready, len(plugins))
	}
}

func TestNewRefusesABaseURLWithoutAHost(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://host", "http://"} {
		if _, err := pluginhost.New(bad); err == nil {
			t.Errorf("New(%q) succeeded", bad)
		}
	}
}

// With tokens on, the client's token lets it call what its entry allows and nothing else;
// without one every call is unauthorized.
func TestTokensSayWhoTheClientIs(t *testing.T) {
	address, token := os.Getenv("PLUGIN_HOST_TOKENS_URL"), os.Getenv("PLUGIN_HOST_TOKEN")
	if address == "" || token == "" {
		t.Skip("PLUGIN_HOST_TOKENS_URL and PLUGIN_HOST_TOKEN are not set: no server with tokens")
	}
	ctx := context.Background()
	client, err := pluginhost.New(address, pluginhost.WithToken(token), pluginhost.WithRetryPolicy(pluginhost.NoRetry))
	if err != nil {
		t.Fatal(err)
	}
	result, err := client.Run(ctx, "hello", 21)
	if err != nil || result.Output != 43 {
		t.Fatalf("hello with the token: %v, %v", result, err)
	}
	var refused *pluginhost.Error
	if _, err := client.Call(ctx, "text", "upper", []byte("hi")); !errors.As(err, &refused) || refused.Code != pluginhost.CodeForbidden || refused.StatusCode != 403 {
		t.Fatalf("text with a token for hello only: %v", err)
	}
	anonymous, err := pluginhost.New(address, pluginhost.WithRetryPolicy(pluginhost.NoRetry))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anonymous.Run(ctx, "hello", 21); !errors.As(err, &refused) || refused.Code != pluginhost.CodeUnauthorized || refused.StatusCode != 401 {
		t.Fatalf("hello without a token: %v", err)
	}
}
