package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Client talks to one wasm-plugin-host server. It is safe for concurrent use; make one and
// share it.
type Client struct {
	base   string
	http   *http.Client
	retry  RetryPolicy
	jitter *jitter
	token  string
}

// Option configures a [Client] made by [New].
type Option func(*Client)

// WithHTTPClient makes the client send its requests through hc (its transport, its proxy
// and TLS settings). Without it, [http.DefaultClient] is used. A Timeout on hc bounds every
// request, streams included: prefer a context deadline per call. Streams rely on the
// transport's ExpectContinueTimeout (one second in [http.DefaultTransport]) to learn of a
// refusal before sending; with zero there, a refused stream is not retried.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.http = hc }
}

// WithToken makes the client send token as its bearer token (`Authorization: Bearer`), for
// a host started with a tokens file: which plugins it may call, and whether it may read the
// listings, depends on the token. Without it, requests carry no token.
func WithToken(token string) Option {
	return func(c *Client) { c.token = token }
}

// WithRetryPolicy replaces [DefaultRetryPolicy]; [NoRetry] turns retries off.
func WithRetryPolicy(policy RetryPolicy) Option {
	return func(c *Client) { c.retry = policy.withDefaults() }
}

// New returns a client of the host at baseURL, such as "http://127.0.0.1:8080" (a path
// prefix, for a host behind a proxy, is kept).
func New(baseURL string, opts ...Option) (*Client, error) {
	parsed, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("plugin host: invalid base URL: %w", err)
	}
	if (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return nil, fmt.Errorf("plugin host: the base URL %q must be http:// or https:// with a host", baseURL)
	}
	c := &Client{
		base:   strings.TrimSuffix(parsed.String(), "/"),
		http:   http.DefaultClient,
		retry:  DefaultRetryPolicy,
		jitter: newJitter(),
	}
	for _, opt := range opts {
		opt(c)
	}
	return c, nil
}

// CallOption adjusts one call.
type CallOption func(*callOptions)

type callOptions struct {
	version   string
	ndjson    bool
	requestID string
}

// WithVersion chooses among a plugin's versions with a requirement in Cargo's syntax: `^1.2`
// (or `1.2`), `~1.4.0`, `=1.4.2`, `>=1, <3`, `*`. The highest version that satisfies it runs;
// none is an [*Error] with [CodeVersionNotFound]. Without it, the highest release runs (or the
// unversioned plugin file).
func WithVersion(requirement string) CallOption {
	return func(o *callOptions) { o.version = requirement }
}

// WithNDJSON sends a stream as `application/x-ndjson`: the host then feeds the plugin whole
// lines only, so it never sees part of a record.
func WithNDJSON() CallOption {
	return func(o *callOptions) { o.ndjson = true }
}

// WithRequestID sends id as the request's x-request-id, which the host puts on every log
// line of the request (without it, the host makes one; results and errors carry it).
func WithRequestID(id string) CallOption {
	return func(o *callOptions) { o.requestID = id }
}

func gather(opts []CallOption) callOptions {
	var o callOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func (o callOptions) query() url.Values {
	if o.version == "" {
		return nil
	}
	return url.Values{"version": {o.version}}
}

// RunResult is the answer of an ABI v1 plugin.
type RunResult struct {
	// Output is what the plugin's process function returned.
	Output int32
	// Version is the version that ran; "" for an unversioned plugin file.
	Version string
	// RequestID is the answer's x-request-id.
	RequestID string
}

// Run calls an ABI v1 plugin: its process function with input (`POST /run`).
func (c *Client) Run(ctx context.Context, plugin string, input int32, opts ...CallOption) (*RunResult, error) {
	o := gather(opts)
	body, err := json.Marshal(struct {
		Plugin  string `json:"plugin"`
		Input   int32  `json:"input"`
		Version string `json:"version,omitempty"`
	}{plugin, input, o.version})
	if err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, func() (*http.Request, error) {
		req, err := c.request(ctx, http.MethodPost, "/run", nil, bytes.NewReader(body), o)
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			markIdempotent(req)
		}
		return req, err
	}, always)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var answer struct {
		Output  *int32 `json:"output"`
		Version string `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil && ctx.Err() != nil {
		return nil, c.readFailure(ctx, err)
	} else if err != nil || answer.Output == nil {
		return nil, fmt.Errorf("plugin host: POST /run answered 200 without an integer output (%v)", err)
	}
	return &RunResult{Output: *answer.Output, Version: answer.Version, RequestID: resp.Header.Get("X-Request-Id")}, nil
}

// Result is the answer of an ABI v2 function.
type Result struct {
	// Output is the function's output bytes.
	Output []byte
	// Version is the version that ran; "" for an unversioned plugin file.
	Version string
	// RequestID is the answer's x-request-id.
	RequestID string
}

// Call calls a function of an ABI v2 plugin with input as its bytes
// (`POST /plugins/{plugin}/functions/{function}`). The input may be at most the plugin's
// input capacity ([CodeInputTooLarge] beyond); a streaming function gets it as a whole stream.
func (c *Client) Call(ctx context.Context, plugin, function string, input []byte, opts ...CallOption) (*Result, error) {
	o := gather(opts)
	resp, err := c.send(ctx, func() (*http.Request, error) {
		req, err := c.request(ctx, http.MethodPost, functionPath(plugin, function), o.query(), bytes.NewReader(input), o)
		if err == nil {
			req.Header.Set("Content-Type", "application/octet-stream")
			markIdempotent(req)
		}
		return req, err
	}, always)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	output, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, c.readFailure(ctx, err)
	}
	return &Result{Output: output, Version: resp.Header.Get("X-Plugin-Version"), RequestID: resp.Header.Get("X-Request-Id")}, nil
}

// StreamResult is the answer of a streaming function.
type StreamResult struct {
	// Written is the number of output bytes written to the writer.
	Written int64
	// Version is the version that ran; "" for an unversioned plugin file.
	Version string
	// RequestID is the answer's x-request-id.
	RequestID string
}

// Stream sends everything r gives, until io.EOF, to a streaming function of an ABI v2
// plugin as the request body (chunked, of any length up to the host's --stream-max-bytes),
// and writes the function's output to w as it arrives. It never closes r or w.
//
// An error before the output began is an [*Error]; a stream the host cut off after that is
// [ErrIncompleteStream], and what was written to w is then not the whole output. Cancelling
// ctx ends the stream at once on both sides. A stream is retried only while nothing of r has
// been read (see the package documentation). A nil w discards the output.
func (c *Client) Stream(ctx context.Context, plugin, function string, r io.Reader, w io.Writer, opts ...CallOption) (*StreamResult, error) {
	o := gather(opts)
	if r == nil {
		r = bytes.NewReader(nil)
	}
	if w == nil {
		w = io.Discard
	}
	var body *streamBody
	resp, err := c.send(ctx, func() (*http.Request, error) {
		body = &streamBody{r: r}
		req, err := c.request(ctx, http.MethodPost, functionPath(plugin, function), o.query(), body, o)
		if err != nil {
			return nil, err
		}
		// Unknown length: chunked. No GetBody: the transport must never replay it by itself.
		req.ContentLength = -1
		req.Header.Set("Expect", "100-continue")
		if o.ndjson {
			req.Header.Set("Content-Type", "application/x-ndjson")
		} else {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		return req, nil
	}, func() bool { return body.detach() })
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	result := &StreamResult{Version: resp.Header.Get("X-Plugin-Version"), RequestID: resp.Header.Get("X-Request-Id")}
	out := &trackedWriter{w: w}
	result.Written, err = io.Copy(out, resp.Body)
	if err != nil {
		if out.err != nil {
			return result, fmt.Errorf("plugin host: writing the stream's output: %w", out.err)
		}
		return result, c.readFailure(ctx, err)
	}
	return result, nil
}

// readFailure explains an answer's body that broke off: the caller's context ended, or the
// host cut the answer off.
func (c *Client) readFailure(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("plugin host: reading the answer: %w", ctxErr)
	}
	return fmt.Errorf("%w: %v", ErrIncompleteStream, err)
}

// streamBody is one attempt's view of a stream's reader. The transport may still hold an
// attempt's body after the attempt failed, so a retry detaches it first: a detached body
// never reads again, and a body that has started reading cannot be detached, so the reader is
// read by one attempt only and a request whose bytes went out is never repeated.
type streamBody struct {
	r     io.Reader
	state atomic.Int32 // bodyFresh, bodyReading or bodyDetached
}

const (
	bodyFresh int32 = iota
	bodyReading
	bodyDetached
)

var errDetached = errors.New("plugin host: the stream's attempt was abandoned")

func (b *streamBody) Read(p []byte) (int, error) {
	if !b.state.CompareAndSwap(bodyFresh, bodyReading) && b.state.Load() == bodyDetached {
		return 0, errDetached
	}
	return b.r.Read(p)
}

// Close does not close the caller's reader: it is theirs.
func (b *streamBody) Close() error { return nil }

// detach reports whether nothing was read, in which case the body never reads again.
func (b *streamBody) detach() bool {
	return b.state.CompareAndSwap(bodyFresh, bodyDetached)
}

// trackedWriter remembers the writer's own error, to tell it from a broken answer.
type trackedWriter struct {
	w   io.Writer
	err error
}

func (t *trackedWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil {
		t.err = err
	}
	return n, err
}

func always() bool { return true }

// markIdempotent lets the transport resend a call it wrote on a kept-alive connection that
// the host had closed meanwhile (as the host does after refusing a request without reading its
// body): a plugin call runs on a fresh instance, so running it twice is harmless. The empty
// header is not sent (see [http.Transport]).
func markIdempotent(req *http.Request) {
	req.Header["Idempotency-Key"] = nil
}

func functionPath(plugin, function string) string {
	return "/plugins/" + pathSegment(plugin) + "/functions/" + pathSegment(function)
}

func (c *Client) request(ctx context.Context, method, path string, query url.Values, body io.Reader, o callOptions) (*http.Request, error) {
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("plugin host: %w", err)
	}
	if o.requestID != "" {
		req.Header.Set("X-Request-Id", o.requestID)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// send makes attempts of a request until one gets a 2xx answer, the failure is not
// transient, replayable says the request must not be repeated, or the policy's attempts or
// the context run out. Every failure is an [*Error] or the transport's error.
func (c *Client) send(ctx context.Context, newRequest func() (*http.Request, error), replayable func() bool) (*http.Response, error) {
	return c.sendWith(ctx, c.retry, newRequest, replayable)
}

func (c *Client) sendWith(ctx context.Context, policy RetryPolicy, newRequest func() (*http.Request, error), replayable func() bool) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		req, err := newRequest()
		if err != nil {
			return nil, err
		}
		resp, err := c.http.Do(req)
		var failure error
		switch {
		case err != nil:
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, fmt.Errorf("plugin host: %s %s: %w", req.Method, req.URL.Path, ctxErr)
			}
			failure = err
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			failure = errorFrom(resp)
		default:
			return resp, nil
		}
		if attempt >= policy.MaxAttempts || !IsTransient(failure) || !replayable() {
			return nil, failure
		}
		var asked time.Duration
		var hostErr *Error
		if errors.As(failure, &hostErr) {
			asked = hostErr.RetryAfter
		}
		wait, ok := policy.delay(ctx, c.jitter, attempt, asked)
		if !ok {
			return nil, failure
		}
		if policy.Notify != nil {
			policy.Notify(failure, wait)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("plugin host: %w while waiting to retry after: %v", err, failure)
		}
	}
}

// getJSON GETs path and decodes its JSON answer into out.
func (c *Client) getJSON(ctx context.Context, policy RetryPolicy, path string, query url.Values, out interface{}) (*http.Response, error) {
	resp, err := c.sendWith(ctx, policy, func() (*http.Request, error) {
		return c.request(ctx, http.MethodGet, path, query, nil, callOptions{})
	}, always)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("plugin host: reading the answer: %w", ctxErr)
		}
		return nil, fmt.Errorf("plugin host: GET %s: undecodable answer: %w", path, err)
	}
	return resp, nil
}

// pathSegment escapes a name for one segment of a URL's path (valid names need no escaping;
// this keeps an invalid one from reaching another endpoint, so the host can refuse it).
func pathSegment(name string) string {
	return url.PathEscape(name)
}
